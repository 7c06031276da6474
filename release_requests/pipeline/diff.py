"""What the people who sign a stage approve: the diff of a request's antivirus base against what the channel it
goes to next serves, and how the build was verified. Staff only (`pipeline.diff`): the allowlist holds every
customer's fixes, and a verification names the request's samples.

What the base is compared with (the "from" side):
- `channel`: the first stage of the request's pipeline not yet published for this build; its channel (the
  request's own customer's channel at the customer stage) as it serves now — the pointer's current version.
  Publishing compares-and-swaps against that version, so this is what the sign-off moves the channel from.
- `previous_release`: every stage is published; what the last stage's channel served before this build reached
  it (noted on the stage run when it opened) — the diff of the release just made.
- `line_base`: the channel serves nothing (yet, or did not before the release): the release-line commit the
  candidate was built on (`Build.line_base`; the fix commit's parent for a build without one). Not the empty
  tree: a first release of a 300-rule repository would list every rule as added and bury the fix. The
  commits between are then exactly the request's fix.

Rules are compared by name (`family.rule`, the family folder being the YARA-X namespace) over the rule files
the two trees differ in: added, removed, and changed (the rule's text differs, or it moved to another file).
Allowlist entries (`allowlist/sha256.tsv`) are compared by sha256, with the row's reason (its note), who added
it, when, and the reference column — an opaque fix reference, resolved here to the request behind it.
A private hotfix is built from the product's source, not the signature repository: it has no base diff.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal

import git
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from artifacts.allowlist import AllowlistEntry, parse_allowlist
from artifacts.errors import ArtifactError
from artifacts.gitops import open_repo, resolve_commit
from artifacts.sigrepo import ALLOWLIST_PATH, RULES_DIR
from artifacts.verify import Check, DetectionChange, SampleResult
from artifacts.yarax import RuleSource, rule_names
from release_requests import access
from release_requests.config import AppConfig
from release_requests.errors import Conflict, ServiceUnavailable
from release_requests.people.models import Person
from release_requests.pipeline.models import Build, StageRun
from release_requests.pipeline.queue import latest_build
from release_requests.releases.channels import channel_for
from release_requests.releases.models import ChannelPointer, Release
from release_requests.requests.lifecycle import get_visible
from release_requests.requests.models import ReleaseRequest

MAX_COMMITS = 200  # a diff against a channel many releases behind lists the newest commits only
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree: a root commit's "before"

Basis = Literal["channel", "previous_release", "line_base"]


class DiffFrom(BaseModel):
    channel: str | None = Field(description="The channel compared with (the request's own at that stage)")
    version: str | None = Field(description="The release it serves (or served); None when it serves nothing")
    commit: str | None = Field(description="The signature-repository commit compared with")


class DiffTo(BaseModel):
    version: str | None
    commit: str


class AllowlistChange(BaseModel):
    sha256: str
    note: str = Field(description="The entry's reason, as written in allowlist/sha256.tsv")
    reference: str = Field(description="The entry's reference column (an opaque fix reference)")
    request_id: str | None = Field(description="The request behind the reference, if it is one of ours")
    who: str
    when: datetime


class RuleChange(BaseModel):
    name: str = Field(description="`family.rule`: the family folder is the YARA-X namespace")
    file: str
    request_id: str | None = Field(
        default=None, description="The request whose fix the file is (<family>/<fix ref>.yar)"
    )


class CommitOut(BaseModel):
    sha: str
    subject: str
    author: str
    date: datetime


class BaseDiff(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    request_id: str
    stage: str = Field(description="The stage whose channel the base is compared with")
    basis: Basis = Field(description="channel: what it serves now; previous_release; line_base: it serves nothing")
    from_: DiffFrom = Field(alias="from")
    to: DiffTo
    allowlist_added: list[AllowlistChange]
    allowlist_removed: list[AllowlistChange]
    rules_added: list[RuleChange]
    rules_removed: list[RuleChange]
    rules_changed: list[RuleChange]
    commits: list[CommitOut] = Field(description=f"Newest first, at most {MAX_COMMITS}")
    commits_truncated: bool


class Verification(BaseModel):
    """A build's verification report (artifacts.verify; a hotfix's has checks only), every part optional."""

    passed: bool | None = None
    verified_at: datetime | None = None
    previous_version: str | None = None
    checks: list[Check] = Field(default_factory=list)
    samples: list[SampleResult] = Field(default_factory=list)
    changes: list[DetectionChange] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------------


def _reviewed_build(
    session: Session, *, actor: Person, request_id: str, action: str = "pipeline.diff"
) -> tuple[ReleaseRequest, Build | None]:
    access.authorize(actor, action)
    request = get_visible(session, actor=actor, request_id=request_id)
    return request, latest_build(session, request_id=request.id)


def verification(session: Session, *, actor: Person, request_id: str) -> Verification | None:
    """The latest build's verification (which samples, which corpora, the ClamAV cross-check), or None: for the
    vendor's staff (a TAM too, for their customers' requests), unlike the diff, which names every customer's fixes."""
    _, build = _reviewed_build(session, actor=actor, request_id=request_id, action="vendor.staff")
    if build is None or not build.verification:
        return None
    return Verification.model_validate(build.verification)


def base_diff(session: Session, *, actor: Person, request_id: str, config: AppConfig, repo_path: Path) -> BaseDiff:
    """What the request's current base changes against what the channel it goes to next serves (module doc)."""
    request, build = _reviewed_build(session, actor=actor, request_id=request_id)
    if build is not None and build.kind == "hotfix":
        raise Conflict(f"{request.id} ships a private hotfix built from the product's source: it has no base diff")
    if build is None or not build.commit:
        raise Conflict(f"{request.id} has no built base yet: nothing to compare")
    stage, channel, version, basis = _compared_with(session, request=request, build=build, config=config)
    old_commit = None
    if version is not None:
        release = session.get(Release, version)
        old_commit = (release.manifest or {}).get("commit") if release is not None else None
    repo = _open(repo_path)
    new = _commit(repo, build.commit, what=f"the base {build.version or build.commit[:12]}")
    if old_commit is None:
        basis = "line_base"
        old_commit = build.line_base or (new.parents[0].hexsha if new.parents else None)
    old = _commit(repo, old_commit, what=f"release {version}" if version else "the line base") if old_commit else None
    refs = _requests_of_refs(session)
    allow_added, allow_removed = _allowlist_diff(old, new, refs)
    added, removed, changed = _rules_diff(repo, old, new, refs)
    commits, truncated = _commits(repo, old, new)
    return BaseDiff(
        request_id=request.id,
        stage=stage,
        basis=basis,
        from_=DiffFrom(channel=channel, version=version, commit=old.hexsha if old else None),
        to=DiffTo(version=build.version, commit=new.hexsha),
        allowlist_added=allow_added,
        allowlist_removed=allow_removed,
        rules_added=added,
        rules_removed=removed,
        rules_changed=changed,
        commits=commits,
        commits_truncated=truncated,
    )


def _compared_with(
    session: Session, *, request: ReleaseRequest, build: Build, config: AppConfig
) -> tuple[str, str, str | None, Basis]:
    """(stage, channel, version it serves or served, basis) — the "from" side chosen as the module doc says."""
    _, pipeline = config.stages.pipeline_for(request.kind)
    runs = {r.stage: r for r in session.scalars(select(StageRun).where(StageRun.build_id == build.id))}
    upcoming = next((s for s in pipeline.stages if s not in runs or runs[s].status != "published"), None)
    stage = upcoming or pipeline.stages[-1]
    channel = channel_for(
        config=config, kind=request.kind, stage=stage, customer_id=request.customer_id, product=request.product
    )
    if upcoming is not None:
        pointer = session.get(ChannelPointer, channel)
        return stage, channel, pointer.version if pointer else None, "channel" if pointer else "line_base"
    before = (runs[stage].expected or {}).get(channel)
    return stage, channel, before, "previous_release" if before else "line_base"


def _open(repo_path: Path) -> git.Repo:
    try:
        return open_repo(repo_path)
    except ArtifactError:
        raise ServiceUnavailable(
            "the signature repository is missing or not a git repository (check RR_SIGREPO)"
        ) from None


def _commit(repo: git.Repo, sha: str, *, what: str) -> git.Commit:
    try:
        return resolve_commit(repo, sha)
    except ArtifactError:
        raise Conflict(f"{what} was built from commit {sha[:12]}, which the signature repository lacks") from None


def _requests_of_refs(session: Session):
    """fix reference → request id, looked up once per diff for the references it shows."""
    cache: dict[str, str | None] = {}

    def lookup(ref: str) -> str | None:
        if ref not in cache:
            cache[ref] = session.scalar(
                select(Build.request_id).where(Build.fix_ref == ref).order_by(Build.id).limit(1)
            )
        return cache[ref]

    return lookup


def _text(commit: git.Commit | None, path: str) -> str | None:
    if commit is None:
        return None
    try:
        return (commit.tree / path).data_stream.read().decode("utf-8", errors="replace")
    except KeyError:
        return None


def _allowlist(commit: git.Commit | None) -> dict[str, AllowlistEntry]:
    text = _text(commit, ALLOWLIST_PATH)
    if text is None:
        return {}
    try:
        return parse_allowlist(text, origin=f"{ALLOWLIST_PATH} at {commit.hexsha[:12]}")
    except ArtifactError as exc:
        raise Conflict(str(exc)) from None


def _allowlist_diff(old, new, refs) -> tuple[list[AllowlistChange], list[AllowlistChange]]:
    before, after = _allowlist(old), _allowlist(new)

    def change(entry: AllowlistEntry) -> AllowlistChange:
        return AllowlistChange(
            sha256=entry.sha256,
            note=entry.reason,
            reference=entry.request_id,
            request_id=refs(entry.request_id),
            who=entry.who,
            when=entry.when,
        )

    added = [change(e) for digest, e in after.items() if before.get(digest) != e]
    removed = [change(e) for digest, e in before.items() if after.get(digest) != e]
    return added, removed


_COMMENTS_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_RULE_START_RE = re.compile(r"^[ \t]*(?:(?:private|global)[ \t]+)*rule[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


def _rules_of(path: str, text: str | None) -> dict[str, tuple[str, str]]:
    """`family.rule` → (file, the rule's own text) for every rule a rule file declares."""
    if text is None or not path.endswith(".yar"):
        return {}
    family = path.split("/")[1] if path.count("/") == 2 else "?"
    names = set(rule_names([RuleSource(namespace=family, path=path, text=text)]))
    bare = _COMMENTS_RE.sub("", text)
    starts = list(_RULE_START_RE.finditer(bare))
    found = {}
    for index, match in enumerate(starts):
        name = f"{family}.{match[1]}"
        if name in names:
            end = starts[index + 1].start() if index + 1 < len(starts) else len(bare)
            found[name] = (path, bare[match.start() : end].strip())
    return found


def _rules_diff(repo: git.Repo, old, new, refs) -> tuple[list[RuleChange], list[RuleChange], list[RuleChange]]:
    paths = repo.git.diff("--name-only", "--no-renames", old.hexsha if old else EMPTY_TREE, new.hexsha, "--", RULES_DIR)
    before: dict[str, tuple[str, str]] = {}
    after: dict[str, tuple[str, str]] = {}
    for path in filter(None, paths.splitlines()):
        before |= _rules_of(path, _text(old, path))
        after |= _rules_of(path, _text(new, path))

    def change(name: str, where: tuple[str, str]) -> RuleChange:
        stem = Path(where[0]).stem
        return RuleChange(name=name, file=where[0], request_id=refs(stem) if stem.startswith("FX-") else None)

    added = [change(n, w) for n, w in sorted(after.items()) if n not in before]
    removed = [change(n, w) for n, w in sorted(before.items()) if n not in after]
    changed = [change(n, w) for n, w in sorted(after.items()) if n in before and before[n] != w]
    return added, removed, changed


def _commits(repo: git.Repo, old, new) -> tuple[list[CommitOut], bool]:
    revisions = f"{old.hexsha}..{new.hexsha}" if old else new.hexsha
    found = [
        CommitOut(
            sha=c.hexsha, subject=c.summary, author=f"{c.author.name} <{c.author.email}>", date=c.authored_datetime
        )
        for c in repo.iter_commits(revisions, max_count=MAX_COMMITS + 1)
    ]
    return found[:MAX_COMMITS], len(found) > MAX_COMMITS
