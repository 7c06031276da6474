"""Private hotfix: release tag + cherry-picked fixes, built, signed and private to one customer.

Order of refusals, cheapest first, so a refused hotfix leaves nothing behind: licence, release
tag, fix commits; then branch `hotfix/<customer>/<version>-<n>` is created and checked out in a
throwaway worktree. A cherry-pick conflict is aborted and reported with its files, a failed or
timed-out build is reported with the end of its log; in every failure the worktree and the branch
are removed. On success the branch stays (it is the record of what was built) and the bundle

    <out>/<customer>/<product>/<version>-<n>/
        build.log            combined stdout+stderr of the build command
        files/<path>         every artifact matching the product's output glob
        manifest.json        HotfixManifest, `private_to: <customer>`
        manifest.sig

is sealed and copied into the store.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import git

from artifacts.bundle import HotfixManifest, manifest_fields, seal, staged_bundle
from artifacts.errors import BuildFailed, CherryPickConflict, GitRefError, InvalidInput
from artifacts.gitops import check_ref_part, identity_env, open_repo, resolve_commit
from artifacts.licences import check_licence
from artifacts.products import ProductSpec
from artifacts.progress import Progress, silent
from artifacts.signing import Signer
from artifacts.store import ArtifactStore

LOG_FILE = "build.log"
FILES_DIR = "files"
_LOG_TAIL_LINES = 5


def build_hotfix(
    *,
    product: ProductSpec,
    version: str,
    commits: list[str],
    customer: str,
    grants: list[dict],
    out_dir: Path,
    signer: Signer,
    store: ArtifactStore,
    builder: str,
    now: datetime | None = None,
    progress: Progress = silent,
) -> HotfixManifest:
    """Build a hotfix of `product` `version` for `customer`, whose licence `grants` must cover it."""
    check_licence(customer=customer, grants=grants, product=product.name, version=version)
    check_ref_part(customer, what="customer id")
    check_ref_part(version, what="version")
    if not commits:
        raise InvalidInput("hotfix: at least one fix commit is needed")
    now = now or datetime.now(UTC)
    steps = len(commits) + 3
    repo = open_repo(product.repo)
    tag = product.tag_for(version)
    if tag not in {t.name for t in repo.tags}:
        raise GitRefError(f"{product.repo}: no release tag {tag} for {product.name} {version}")
    source = repo.tags[tag].commit
    picks = [resolve_commit(repo, sha) for sha in commits]
    hotfix_id = f"{version}-{_next_number(repo, customer, version)}"
    branch = f"hotfix/{customer}/{hotfix_id}"
    repo.create_head(branch, source)
    worktree = Path(tempfile.mkdtemp(prefix="rr-hotfix-"))
    env = identity_env(builder, builder)
    succeeded = False
    try:
        repo.git.worktree("add", "--quiet", str(worktree), branch)
        checkout = git.Repo(worktree)
        for done, pick in enumerate(picks):
            progress(done, steps, f"cherry-picking {pick.hexsha[:12]}")
            _cherry_pick(checkout, pick, env)
        tip = checkout.head.commit
        progress(len(picks), steps, f"building {product.name} {hotfix_id}")
        started = time.monotonic()
        log = _run_build(product, worktree, env | {"SOURCE_DATE_EPOCH": str(tip.committed_date)})
        seconds = round(time.monotonic() - started, 3)
        outputs = sorted(p for p in worktree.glob(product.output) if p.is_file())
        if not outputs:
            raise BuildFailed(f"{product.name}: build produced no file matching {product.output!r}{_tail(log)}")
        progress(len(picks) + 1, steps, "signing and storing")
        with staged_bundle(out_dir / customer / product.name / hotfix_id) as staging:
            (staging / LOG_FILE).write_bytes(log)
            for output in outputs:
                target = staging / FILES_DIR / output.relative_to(worktree)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(output, target)
            manifest = HotfixManifest(
                version=hotfix_id,
                commit=tip.hexsha,
                private_to=customer,
                product=product.name,
                product_version=version,
                source_tag=tag,
                source_commit=source.hexsha,
                branch=branch,
                cherry_picked=[pick.hexsha for pick in picks],
                build_command=product.build,
                build_seconds=seconds,
                builder=builder,
                built_at=now,
                **manifest_fields(staging, signer=signer),
            )
            seal(staging, manifest, signer=signer, store=store)
        succeeded = True
    finally:
        with suppress(git.GitCommandError):  # absent if `worktree add` itself failed
            repo.git.worktree("remove", "--force", str(worktree))
        shutil.rmtree(worktree, ignore_errors=True)
        repo.git.worktree("prune")
        if not succeeded:
            repo.delete_head(branch, force=True)
    progress(steps, steps, f"built {branch}")
    return manifest


def _next_number(repo: git.Repo, customer: str, version: str) -> int:
    pattern = re.compile(rf"^hotfix/{re.escape(customer)}/{re.escape(version)}-(\d+)$")
    taken = [int(m[1]) for head in repo.branches if (m := pattern.match(head.name))]
    return max(taken, default=0) + 1


def _cherry_pick(checkout: git.Repo, pick: git.Commit, env: dict[str, str]) -> None:
    """Cherry-pick with `-x` (records the origin); on failure abort and say why."""
    try:
        checkout.git.cherry_pick("-x", pick.hexsha, env=env)
    except git.GitCommandError as exc:
        conflicted = checkout.git.diff("--name-only", "--diff-filter=U").split()
        if (Path(checkout.git_dir) / "CHERRY_PICK_HEAD").exists():
            checkout.git.cherry_pick("--abort")
        if conflicted:
            raise CherryPickConflict(pick.hexsha, sorted(conflicted)) from exc
        reason = (exc.stderr or "").strip().splitlines()
        raise GitRefError(f"cherry-pick of {pick.hexsha}: {reason[-1] if reason else exc}") from exc


def _run_build(product: ProductSpec, cwd: Path, extra_env: dict[str, str]) -> bytes:
    """Run the build command in its own process group; kill the whole group on timeout."""
    try:
        proc = subprocess.Popen(
            product.build,
            cwd=cwd,
            env=os.environ | extra_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise BuildFailed(f"{product.name}: cannot run {product.build[0]!r}: {exc.strerror}") from exc
    try:
        log, _ = proc.communicate(timeout=product.timeout_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        raise BuildFailed(f"{product.name}: build timed out after {product.timeout_seconds} s{_tail(log)}") from None
    if proc.returncode != 0:
        raise BuildFailed(f"{product.name}: build exited with {proc.returncode}{_tail(log)}")
    return log


def _tail(log: bytes) -> str:
    lines = log.decode("utf-8", "replace").strip().splitlines()[-_LOG_TAIL_LINES:]
    return f"; log ends: {' | '.join(lines)}" if lines else ""
