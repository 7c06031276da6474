"""The automated segments between human decisions: build-and-verify, and publishing one stage.

Prefect runs them at least once, so each is written to be re-run from any point after a crash:
progress is claimed and recorded in Postgres between the steps, the fix commit and the base build are
found again rather than redone, channel publishes are compare-and-swap (publishing the version that is
already current is a no-op), and every notice goes through the outbox with a deduplicating key.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import git
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from artifacts import errors as artifact_errors
from artifacts import releaseline
from artifacts.allowlist import parse_allowlist
from artifacts.base import build_base
from artifacts.bundle import BaseManifest, HotfixManifest, read_verified
from artifacts.digest import sha256_bytes
from artifacts.fixes import existing_fix, fix_false_negative, fix_false_positive, new_fix_ref
from artifacts.hotfix import build_hotfix
from artifacts.products import product_spec
from artifacts.signing import FileKeySigner
from artifacts.sigrepo import ALLOWLIST_PATH, read_text
from artifacts.store import LocalStore
from artifacts.verify import verify_base
from release_requests.audit.service import record
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.crashpoints import crash_point
from release_requests.customers.models import Customer
from release_requests.db import transaction
from release_requests.errors import ChannelHalted, LineBroken, StaleVersion
from release_requests.notifications.service import notify
from release_requests.pipeline.line import (
    LINE_AUTHOR,
    fix_ref_for,
    join_line,
    on_line,
    open_line,
    request_rebuild,
    requests_of_refs,
)
from release_requests.pipeline.models import Build, StageRun
from release_requests.pipeline.queue import PIPELINE, finish_trigger
from release_requests.pipeline.service import (
    affected,
    open_stage,
    pipeline_of,
    readiness,
    served_versions,
    stage_channels,
    start_publish_if_ready,
    stored_samples,
    tell,
)
from release_requests.releases import publishing, registry
from release_requests.releases.channels import channel_for, halted_channels
from release_requests.releases.models import ChannelPointer, Release
from release_requests.requests.lifecycle import transition
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.states import Status
from release_requests.samples.store import verified_sample_path
from release_requests.settings import Settings

log = logging.getLogger(__name__)
BASE_TAG_PREFIX = "20"  # base versions are YYYY.MM.DD.N tags


@dataclass(frozen=True)
class Segment:
    sessions: sessionmaker[Session]
    settings: Settings
    config: AppConfig

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.settings.artifacts_dir)

    @property
    def signer(self) -> FileKeySigner:
        """What signs the bundles this installation builds: its key file (RR_DATA_DIR/keys/signing.key)."""
        return FileKeySigner.load(self.settings.data_dir)


# --------------------------------------------------------------------------------------------------
# Build and verify


def run_build(seg: Segment, *, request_id: str, attempt: int, trigger_key: str) -> str:
    """Fix commit → bundle → verification → first stage up for sign-off (or failed, with the reason)."""
    with transaction(seg.sessions) as session:
        request = _locked(session, request_id)
        build = _build(session, request_id, attempt)
        if build.status in ("verified", "failed"):
            finish_trigger(session, key=trigger_key)
            return f"build {attempt} already {build.status}"
        if build.status == "pending":
            build.status = "building"
            if request.status != Status.building:  # a rebuild on a moved line is building since it was asked for
                transition(
                    session,
                    actor=PIPELINE,
                    request=request,
                    target=Status.building,
                    action="request.building",
                    details={"attempt": attempt},
                )
            tell(
                session,
                primary=request,
                event="build.started",
                targets=_told(build),
                config=seg.config,
                at=db_now(session),
                key=str(attempt),
                context={"title": request.title, "attempt": attempt, "kind": build.kind},
            )
    crash_point("build:claimed")
    try:
        if build.kind == "hotfix":
            return _build_hotfix(seg, request_id=request_id, attempt=attempt, trigger_key=trigger_key)
        return _build_base(seg, request_id=request_id, attempt=attempt, trigger_key=trigger_key)
    except artifact_errors.ArtifactError as exc:  # a refusal is a result, not a crash: record it and stop
        _fail(seg, request_id=request_id, attempt=attempt, trigger_key=trigger_key, reason=str(exc))
        return f"build {attempt} failed: {exc}"
    except (git.NoSuchPathError, git.InvalidGitRepositoryError) as exc:  # retrying cannot help: say what to fix
        reason = f"signature repository {exc} is missing or not a git repository (RR_SIGREPO)"
        _fail(seg, request_id=request_id, attempt=attempt, trigger_key=trigger_key, reason=reason)
        return f"build {attempt} failed: {reason}"


def _locked(session: Session, request_id: str) -> ReleaseRequest:
    """The request row, locked against other writers (NO KEY UPDATE: child rows may still reference it)."""
    return session.scalar(select(ReleaseRequest).where(ReleaseRequest.id == request_id).with_for_update(key_share=True))


def _build(session: Session, request_id: str, attempt: int) -> Build:
    return session.scalar(select(Build).where(Build.request_id == request_id, Build.attempt == attempt))


def _samples(seg: Segment, session: Session, request_id: str) -> list[Path]:
    root = seg.settings.samples_dir
    return [verified_sample_path(root, digest) for digest in stored_samples(session, request_id=request_id)]


def fix_branch(request_id: str, attempt: int) -> str:
    """One branch per build attempt: a re-run finds its own commits, a new attempt never reuses old ones."""
    return f"fix/{request_id}" if attempt == 1 else f"fix/{request_id}-attempt{attempt}"


def _resumable(repo: git.Repo, branch: str, base: str) -> git.Commit | None:
    """The fix branch's tip when it already holds fixes made on `base` (a re-run after a crash)."""
    if branch not in repo.heads:
        return None
    tip = repo.heads[branch].commit
    return tip if tip.hexsha != base and repo.is_ancestor(base, tip) else None


def _original_fix(session: Session, build: Build) -> dict:
    """What the engineer asked for, following a chain of rebuilds back to it."""
    while build.fix.get("type") == "rebase":
        build = session.get(Build, build.fix["from_build"])
    return build.fix


def _candidate(
    seg: Segment,
    repo: git.Repo,
    *,
    request: ReleaseRequest,
    build: Build,
    previous: Build | None,
    samples: list[Path],
    at: datetime,
) -> tuple[str, str, str]:
    """(branch, commit, change id) of the release line tip plus this request's fix, made once per attempt.

    A rebuild applies the previous base's change to the new tip; a new fix is committed on the tip itself.
    """
    branch, base = fix_branch(request.id, build.attempt), build.line_base
    fix, now = build.fix, at
    trailer = f"Request: {request.id}\nFix-Ref: {build.fix_ref}\n"
    if fix["type"] == "rebase":
        change = releaseline.change_of(repo, base=previous.line_base, commit=previous.commit)
        message = f"fix: {build.fix_ref} rebased onto {base[:12]}\n\nRebased-From: {previous.commit}\n{trailer}"
        commit = releaseline.apply_change(
            repo, change, onto=base, branch=branch, message=message, author=LINE_AUTHOR, when=now
        )
        if commit == base:  # the line holds the fix already: the new base is the tip itself
            return branch, commit, previous.change_id
        return branch, commit, releaseline.change_of(repo, base=base, commit=commit).change_id
    if fix["type"] == "ref":
        pushed = existing_fix(repo_path=seg.settings.signature_repo, ref=fix["ref"])
        commit = pushed
        if not releaseline.contains(repo, ancestor=base, descendant=pushed):
            start = repo.merge_base(base, pushed)[0].hexsha
            change = releaseline.change_of(repo, base=start, commit=pushed)
            message = f"fix: {fix['ref']} onto the release line\n\nPushed-As: {pushed}\n{trailer}"
            commit = releaseline.apply_change(
                repo, change, onto=base, branch=branch, message=message, author=LINE_AUTHOR, when=now
            )
        return fix["ref"], commit, releaseline.change_of(repo, base=base, commit=commit).change_id
    if not samples:
        raise artifact_errors.InvalidInput(f"{request.id}: no stored sample to build the fix against")
    author = f"{build.builder} <release-pipeline@vendor.example>"
    done = _resumable(repo, branch, base)
    if fix["type"] == "allowlist":
        fixed = set(parse_allowlist(read_text(done, ALLOWLIST_PATH), origin=ALLOWLIST_PATH)) if done else set()
        for sample in samples:
            if sample.name in fixed:  # stored samples are named by their sha256
                continue
            fix_false_positive(
                repo_path=seg.settings.signature_repo,
                sample=sample,
                request_id=request.id,
                fix_ref=build.fix_ref,
                author=author,
                base=base,
                branch=branch,
            )
    elif done is None:
        fix_false_negative(
            repo_path=seg.settings.signature_repo,
            rule_text=fix["rule_text"],
            sample=samples[0],
            request_id=request.id,
            fix_ref=build.fix_ref,
            author=author,
            family=fix.get("family", "generic"),
            base=base,
            branch=branch,
        )
    commit = repo.heads[branch].commit.hexsha
    return branch, commit, releaseline.change_of(repo, base=base, commit=commit).change_id


def _existing_base(seg: Segment, commit: str) -> Path | None:
    """A bundle already built from this commit (the build crashed after tagging): reuse it."""
    repo = git.Repo(seg.settings.signature_repo)
    for tag in repo.tags:
        if tag.name.startswith(BASE_TAG_PREFIX) and tag.commit.hexsha == commit:
            bundle = seg.settings.bundles_dir / "base" / tag.name
            if (bundle / "manifest.sig").exists():
                return bundle
    return None


def _build_base(seg: Segment, *, request_id: str, attempt: int, trigger_key: str) -> str:
    repo, branch = open_line(seg.settings.signature_repo, seg.config)
    with transaction(seg.sessions) as session:
        request, build = session.get(ReleaseRequest, request_id), _build(session, request_id, attempt)
        samples = _samples(seg, session, request_id)
        if build.line_base is None:  # fixed before any commit is made, so a re-run builds on the same tip
            build.line_base = releaseline.line_tip(repo, branch).hexsha
            build.fix_ref = build.fix_ref or fix_ref_for(session, request_id=request_id) or new_fix_ref()
        previous = session.get(Build, build.rebased_from_id) if build.rebased_from_id else None
        made_on, commit = (build.branch, build.commit) if build.commit else (None, None)
        now = db_now(session)
    if commit is None:
        made_on, commit, change_id = _candidate(
            seg, repo, request=request, build=build, previous=previous, samples=samples, at=now
        )
        if previous is not None and commit == previous.commit:  # a refusal that rebuilding cannot cure
            raise artifact_errors.GitRefError(
                f"rebuilding on the release line gives the same base ({commit[:12]}) that was refused; "
                "a channel serves a commit the line does not hold: a person must look (docs/releases.md)"
            )
        with transaction(seg.sessions) as session:
            build = _build(session, request_id, attempt)
            build.branch, build.commit, build.change_id = made_on, commit, change_id
            record(
                session,
                actor=PIPELINE,
                action="build.fix_committed",
                entity_type="build",
                entity_id=str(build.id),
                request_id=request_id,
                after={
                    "branch": made_on,
                    "commit": commit,
                    "line_base": build.line_base,
                    "change_id": change_id,
                    "fix_ref": build.fix_ref,
                },
            )
    crash_point("build:fix_committed")
    signer = seg.signer
    bundle = _existing_base(seg, commit)
    if bundle is None:
        manifest = build_base(
            repo_path=seg.settings.signature_repo,
            ref=commit,
            out_dir=seg.settings.bundles_dir / "base",
            signer=signer,
            store=seg.store,
            builder=build.builder,
        )
        bundle = seg.settings.bundles_dir / "base" / manifest.version
    manifest = read_verified(bundle, public_key=signer.public_key(), model=BaseManifest)
    crash_point("build:built")
    with transaction(seg.sessions) as session:
        request = _locked(session, request_id)
        build = _build(session, request_id, attempt)
        if build.version is None:
            build.version, build.bundle_dir, build.status = manifest.version, str(bundle), "verifying"
            transition(
                session,
                actor=PIPELINE,
                request=request,
                target=Status.verifying,
                action="request.verifying",
                details={"version": manifest.version, "commit": commit},
            )
    previous = seg.settings.bundles_dir / "base" / manifest.parent_version if manifest.parent_version else None
    report = verify_base(
        bundle_dir=bundle,
        public_key=signer.public_key(),
        samples=samples,
        expect="clean" if request.kind == "false_positive" else "detected",
        previous=previous if previous and previous.exists() else None,
        repo_path=seg.settings.signature_repo,
    )
    crash_point("build:verified")
    return _conclude(
        seg,
        request_id=request_id,
        attempt=attempt,
        trigger_key=trigger_key,
        bundle=bundle,
        passed=report.passed,
        report=report.model_dump(mode="json"),
    )


def _existing_hotfix(bundle_root: Path, *, customer: str, product: str, version: str, commits: list[str], signer):
    """A hotfix bundle already built from these commits (the segment crashed after building): reuse it."""
    for bundle in sorted(bundle_root.glob(f"{customer}/{product}/{version}-*")):
        if not (bundle / "manifest.sig").exists():
            continue
        manifest = read_verified(bundle, public_key=signer.public_key(), model=HotfixManifest)
        picked = manifest.cherry_picked
        if len(picked) == len(commits) and all(p.startswith(c.lower()) for p, c in zip(picked, commits, strict=True)):
            return bundle, manifest
    return None


def _hotfix_line(session: Session, config: AppConfig, *, request: ReleaseRequest, version: str) -> list[str]:
    """The fixes this customer is served already for this product version, on any stage's channel: a new
    hotfix keeps them (a private hotfix's release line is per customer, product and version)."""
    _, pipeline = pipeline_of(request, config)
    shipped: dict[str, None] = {}
    for stage in pipeline.stages:
        channel = channel_for(
            config=config, kind=request.kind, stage=stage, customer_id=request.customer_id, product=request.product
        )
        pointer = session.get(ChannelPointer, channel)
        served = session.get(Release, pointer.version) if pointer else None
        if served is None or served.private_to != request.customer_id:
            continue  # a staff channel shared by customers may serve another customer's hotfix: not this line
        if served.manifest.get("product_version") == version:
            shipped.update(dict.fromkeys(served.manifest.get("cherry_picked", [])))
    return list(shipped)


def _build_hotfix(seg: Segment, *, request_id: str, attempt: int, trigger_key: str) -> str:
    with transaction(seg.sessions) as session:
        request, build = session.get(ReleaseRequest, request_id), _build(session, request_id, attempt)
        customer = session.get(Customer, request.customer_id)
        fix = _original_fix(session, build)
        version = fix.get("product_version") or request.product_version
        grants = list(customer.licensed_products)
        if not request.product or not version:
            raise artifact_errors.InvalidInput(f"{request_id}: a hotfix needs the product and its version")
        shipped = _hotfix_line(session, seg.config, request=request, version=version)
    commits = shipped + [c for c in fix["commits"] if not any(p.startswith(c.lower()) for p in shipped)]
    signer = seg.signer
    root = seg.settings.bundles_dir / "hotfix"
    found = _existing_hotfix(
        root, customer=request.customer_id, product=request.product, version=version, commits=commits, signer=signer
    )
    if found is None:
        manifest = build_hotfix(
            product=product_spec(seg.settings.config_dir / "products.toml", request.product),
            version=version,
            commits=commits,
            customer=request.customer_id,
            grants=grants,
            out_dir=root,
            signer=signer,
            store=seg.store,
            builder=build.builder,
        )
        bundle = root / request.customer_id / request.product / manifest.version
    else:
        bundle, manifest = found
    crash_point("build:built")
    with transaction(seg.sessions) as session:
        locked = _locked(session, request_id)
        build = _build(session, request_id, attempt)
        if build.version is None:
            build.version, build.bundle_dir, build.branch, build.commit = (
                manifest.version,
                str(bundle),
                manifest.branch,
                manifest.commit,
            )
            # what engineers review is the request's own fixes: unchanged, their sign-offs hold for a rebuild
            build.change_id = sha256_bytes(",".join(c.lower() for c in fix["commits"]).encode())[:16]
            build.status = "verifying"
            transition(
                session,
                actor=PIPELINE,
                request=locked,
                target=Status.verifying,
                action="request.verifying",
                details={"version": manifest.version},
            )
    read_verified(bundle, public_key=signer.public_key(), model=HotfixManifest)  # signature and every file hash again
    report = {
        "passed": True,
        "checks": [
            {
                "name": "signature-and-hashes",
                "status": "passed",
                "detail": f"{len(manifest.files)} files match the signed manifest",
            }
        ],
    }
    return _conclude(
        seg, request_id=request_id, attempt=attempt, trigger_key=trigger_key, bundle=bundle, passed=True, report=report
    )


def _conclude(
    seg: Segment, *, request_id: str, attempt: int, trigger_key: str, bundle: Path, passed: bool, report: dict
) -> str:
    with transaction(seg.sessions) as session:
        request = _locked(session, request_id)
        build = _build(session, request_id, attempt)
        if build.status in ("verified", "failed"):
            finish_trigger(session, key=trigger_key)
            return f"build {attempt} already {build.status}"
        build.verification, build.passed = report, passed
        now = db_now(session)
        context = {"title": request.title, "version": build.version, "attempt": attempt}
        if not passed:
            failed = [c["name"] for c in report.get("checks", []) if c.get("status") == "failed"]
            return _fail_locked(seg, session, request, build, trigger_key, reason=f"verification failed: {failed}")
        release = registry.register_release(
            session,
            actor=PIPELINE,
            bundle_dir=bundle,
            store=seg.store,
            request_id=request_id,
            private_to=request.customer_id if build.kind == "hotfix" else None,
            product=request.product if build.kind == "hotfix" else None,
            public_key=seg.signer.public_key(),
        )
        build.version = release.version  # the release key channels point at (hotfixes: <customer>/<product>/<v>)
        build.status = "verified"
        transition(
            session,
            actor=PIPELINE,
            request=request,
            target=Status.awaiting_approval,
            action="request.awaiting_approval",
            details={"version": build.version},
        )
        tell(
            session,
            primary=request,
            event="verification.passed",
            targets=_told(build),
            config=seg.config,
            at=now,
            key=str(attempt),
            context=context,
        )
        if build.rebased_from_id is not None:
            _resume_stages(seg, session, request=request, build=build)
        else:
            _, pipeline = pipeline_of(request, seg.config)
            open_stage(session, request=request, build=build, stage=pipeline.stages[0], config=seg.config)
        finish_trigger(session, key=trigger_key)
        return f"build {attempt} verified: {build.version}"


def _told(build: Build) -> list[str]:
    """A rebuild on a moved line is the team's business; the customer already heard of this fix."""
    return ["internal_channel"] if build.rebased_from_id is not None else ["customer", "internal_channel"]


def _resume_stages(seg: Segment, session: Session, *, request: ReleaseRequest, build: Build) -> None:
    """Pick up where the rebuilt base stopped: its published stages stay published, the next one reopens,
    and it publishes at once if its sign-offs still hold (the fix's change id is unchanged)."""
    previous = session.get(Build, build.rebased_from_id)
    _, pipeline = pipeline_of(request, seg.config)
    published = {
        r.stage: r
        for r in session.scalars(
            select(StageRun).where(StageRun.build_id == previous.id, StageRun.status == "published")
        )
    }
    run = None
    for stage in pipeline.stages:
        done = published.get(stage)
        if done is None:
            session.flush()
            run = open_stage(session, request=request, build=build, stage=stage, config=seg.config)
            break
        session.add(
            StageRun(
                request_id=request.id,
                build_id=build.id,
                stage=stage,
                status="published",
                opened_at=done.opened_at,
                published_at=done.published_at,
                channels=done.channels,
                expected=done.expected,
            )
        )
    holds = build.change_id is not None and build.change_id == previous.change_id
    record(
        session,
        actor=PIPELINE,
        action="build.rebased",
        entity_type="build",
        entity_id=str(build.id),
        request_id=request.id,
        before={k: getattr(previous, k) for k in ("version", "commit", "line_base", "change_id")},
        after={
            **{k: getattr(build, k) for k in ("version", "commit", "line_base", "change_id")},
            "signoffs_carried": holds,
        },
        reason=(
            f"the fix's own change is unchanged (change id {build.change_id}): the sign-offs given to base "
            f"{previous.version} hold for {build.version}"
            if holds
            else f"the fix's change differs on the new line (was {previous.change_id}, now {build.change_id}): "
            "its stages need fresh sign-offs"
        ),
    )
    if run is not None:
        start_publish_if_ready(
            session, request=request, build=build, run=run, config=seg.config, decision_id=f"rebased-{build.id}"
        )


def _fail(seg: Segment, *, request_id: str, attempt: int, trigger_key: str, reason: str) -> None:
    with transaction(seg.sessions) as session:
        request = _locked(session, request_id)
        _fail_locked(seg, session, request, _build(session, request_id, attempt), trigger_key, reason=reason)


_SERVER_PATH_RE = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+([\w.@+-]+)")


def public_reason(reason: str) -> str:
    """A failure as the customer may read it: files by name (samples are named by their sha256), never a
    path on our servers."""
    return _SERVER_PATH_RE.sub(r"\1", reason)


def _fail_locked(seg: Segment, session: Session, request, build: Build, trigger_key: str, *, reason: str) -> str:
    reason = public_reason(reason)
    build.status, build.error = "failed", reason[:4000]
    for other in requests_of_refs(session, reason):  # a conflict on the line is reported on both requests
        if other == request.id:
            continue
        for on, party in ((request.id, other), (other, request.id)):
            record(
                session,
                actor=PIPELINE,
                action="line.conflict",
                entity_type="build",
                entity_id=str(build.id),
                request_id=on,
                after={"with_request": party, "attempt": build.attempt},
                reason=reason[:2000],
            )
    if request.status in (Status.building, Status.verifying):
        transition(
            session,
            actor=PIPELINE,
            request=request,
            target=Status.failed,
            action="request.failed",
            reason=reason[:2000],
        )
    tell(
        session,
        primary=request,
        event="verification.failed",
        targets=["customer", "internal_channel"],
        config=seg.config,
        at=db_now(session),
        key=str(build.attempt),
        context={"title": request.title, "version": build.version, "summary": reason[:500], "attempt": build.attempt},
    )
    finish_trigger(session, key=trigger_key)
    return f"build {build.attempt} failed: {reason}"


# --------------------------------------------------------------------------------------------------
# Publish one stage


def run_publish(seg: Segment, *, request_id: str, stage: str, build_id: int, trigger_key: str) -> str:
    """Publish a signed-off stage: never a base that would drop a fix its channels serve (rebuild instead)."""
    with transaction(seg.sessions) as session:
        request = _locked(session, request_id)
        build = session.get(Build, build_id)
        run = session.scalar(select(StageRun).where(StageRun.build_id == build_id, StageRun.stage == stage))
        if run is None or run.status in ("published", "superseded"):
            finish_trigger(session, key=trigger_key)
            return f"stage {stage} already {run.status if run else 'gone'}"
        if run.status == "awaiting":
            if not readiness(session, request=request, build=build, run=run, config=seg.config).ready(db_now(session)):
                finish_trigger(session, key=trigger_key)  # a sign-off was revoked meanwhile: a new decision re-triggers
                return f"stage {stage} no longer ready"
            channels = stage_channels(session, request=request, build=build, stage=stage, config=seg.config)
            halted = halted_channels(session, channels)
            if halted:  # nothing moves; the reconciler asks again once a release manager resumes the channel
                finish_trigger(session, key=trigger_key)
                return f"stage {stage} waits: {', '.join(halted)} halted (relreq channels resume)"
            refusal = _plan(seg, session, request=request, build=build, stage=stage, channels=channels)
            if refusal is not None:
                _refuse(session, request=request, build=build, stage=stage, reason=refusal)
                finish_trigger(session, key=trigger_key)
                return f"stage {stage} refused, rebuilding: {refusal}"
            # duplicates that joined after the stage opened bring their own channels: expect what those serve now
            run.expected = {**served_versions(session, channels), **run.expected}
            run.status, run.channels = "publishing", channels
            transition(
                session,
                actor=PIPELINE,
                request=request,
                target=Status.releasing,
                action="request.releasing",
                details={"stage": stage, "version": build.version},  # channels: other customers' names, staff view
            )
        channels, version, expected = list(run.channels), build.version, dict(run.expected)
    crash_point("publish:claimed")
    for channel in channels:
        try:
            refusal = _publish_channel(
                seg,
                request_id=request_id,
                run_id=run.id,
                channel=channel,
                version=version,
                expected=expected.get(channel),
            )
        except ChannelHalted:  # halted after the stage was claimed: wait for the resume, re-run from the start
            with transaction(seg.sessions) as session:
                request = _locked(session, request_id)
                run = session.get(StageRun, run.id)
                run.status = "awaiting"
                transition(
                    session,
                    actor=PIPELINE,
                    request=request,
                    target=Status.awaiting_approval,
                    action="request.awaiting_approval",
                    details={"waits_for_resume": channel},
                )
                finish_trigger(session, key=trigger_key)
            return f"stage {stage} waits: {channel} halted (relreq channels resume)"
        if refusal is not None:
            with transaction(seg.sessions) as session:
                request, build = _locked(session, request_id), session.get(Build, build_id)
                transition(
                    session,
                    actor=PIPELINE,
                    request=request,
                    target=Status.awaiting_approval,
                    action="request.awaiting_approval",
                    details={"refused": stage},
                )
                _refuse(session, request=request, build=build, stage=stage, reason=refusal)
                finish_trigger(session, key=trigger_key)
            return f"stage {stage} refused on {channel}, rebuilding: {refusal}"
        crash_point("publish:after_channel")
    with transaction(seg.sessions) as session:
        request = _locked(session, request_id)
        build, run = (
            session.get(Build, build_id),
            session.scalar(select(StageRun).where(StageRun.build_id == build_id, StageRun.stage == stage)),
        )
        if run.status == "published":
            finish_trigger(session, key=trigger_key)
            return f"stage {stage} already published"
        now = db_now(session)
        run.status, run.published_at = "published", now
        _announce_stage(seg, session, request=request, build=build, stage=stage, channels=channels, now=now)
        _, pipeline = pipeline_of(request, seg.config)
        index = pipeline.stages.index(stage)
        if index + 1 < len(pipeline.stages):
            transition(
                session,
                actor=PIPELINE,
                request=request,
                target=Status.awaiting_approval,
                action="request.awaiting_approval",
                details={"published": stage},
            )
            open_stage(session, request=request, build=build, stage=pipeline.stages[index + 1], config=seg.config)
        else:
            transition(
                session,
                actor=PIPELINE,
                request=request,
                target=Status.released,
                action="request.released",
                details={"version": build.version},
            )
        finish_trigger(session, key=trigger_key)
        return f"stage {stage} published: {version} → {', '.join(channels)}"


def _plan(
    seg: Segment, session: Session, *, request: ReleaseRequest, build: Build, stage: str, channels: list[str]
) -> str | None:
    """Why this base may not go out now (None: it may). Checks every channel before any moves, then lets the
    fix join the release line at the first stage."""
    release = session.get(Release, build.version)
    for channel in channels:
        try:
            publishing.check_keeps_fixes(
                session, channel=channel, release=release, repo_path=seg.settings.signature_repo
            )
        except LineBroken as exc:
            return str(exc)
    if build.kind != "base":
        return None
    repo, branch = open_line(seg.settings.signature_repo, seg.config)
    reverted = releaseline.reverted_since(repo, base=build.commit, until=releaseline.line_tip(repo, branch).hexsha)
    if reverted:
        return f"the base carries a fix taken off the release line since it was built ({', '.join(reverted)})"
    _, pipeline = pipeline_of(request, seg.config)
    if stage != pipeline.stages[0]:
        if not on_line(repo, branch, build):  # later stages ship only what the line holds
            return "the base is not on the release line (its fix left the line, or the line was rebuilt)"
        return None
    if not join_line(session, repo=repo, branch=branch, request=request, build=build):
        return "the release line moved since this base was built (another fix was released first)"
    return None


def _refuse(session: Session, *, request: ReleaseRequest, build: Build, stage: str, reason: str) -> None:
    """Nothing of this stage goes out: say why (staff) and rebuild the request on the current line tip."""
    record(
        session,
        actor=PIPELINE,
        action="line.publish_refused",
        entity_type="stage",
        entity_id=f"{build.id}:{stage}",
        request_id=request.id,
        after={"stage": stage, "version": build.version, "commit": build.commit},
        reason=reason,
    )
    request_rebuild(session, request=request, build=build, reason=reason, decision=f"refused-{build.id}-{stage}")


def _publish_channel(
    seg: Segment, *, request_id: str, run_id: int, channel: str, version: str, expected: str | None
) -> str | None:
    """Compare-and-swap one channel from the version the stage expected; None when it serves `version`.

    Already current is a no-op (a re-run after a crash). If another publisher moved the channel since the
    stage opened, the stage is re-planned against what it serves now: still a descendant, the new
    expectation is recorded and the swap retried; otherwise the refusal is returned and nothing moves.
    """
    for _ in range(2):
        with transaction(seg.sessions) as session:
            try:
                publishing.publish(
                    session,
                    actor=PIPELINE,
                    channel=channel,
                    version=version,
                    request_id=request_id,
                    reason=f"stage of {request_id}",
                    expected_current=expected,
                    config=seg.config,
                    repo_path=seg.settings.signature_repo,
                )
                return None
            except LineBroken as exc:
                return str(exc)
            except StaleVersion:
                pass
        with transaction(seg.sessions) as session:
            run = session.get(StageRun, run_id, with_for_update=True)
            served = served_versions(session, [channel])[channel]
            record(
                session,
                actor=PIPELINE,
                action="stage.replanned",
                entity_type="stage",
                entity_id=f"{run.build_id}:{run.stage}",
                request_id=request_id,
                before={"channel": channel, "expected": expected},
                after={"channel": channel, "expected": served},
                reason=f"{channel} moved since the stage opened; publishing again against what it serves now",
            )
            run.expected = {**run.expected, channel: served}
            expected = served
    raise StaleVersion(f"channel {channel} keeps moving under stage of {request_id}; the segment will retry")


def _announce_stage(
    seg: Segment, session: Session, *, request, build: Build, stage: str, channels: list[str], now
) -> None:
    def context_for(shown: list[str], title: str) -> dict:
        return {
            "title": title,
            "version": build.version,
            "stage": stage,
            "channels": shown,
            "how_to_get": "; ".join(
                f"relreq client fetch --channel {c} --client-id <host> --dest <dir>" for c in shown
            ),
        }

    context = context_for(channels, request.title)
    # the customer hears it in their own words, naming only channels they may read (their own, or public);
    # the team always gets the engineering notice
    customer_event = {"customer": "release.customer", "global": "release.global"}.get(stage)
    if customer_event is not None:
        for sharer in affected(session, primary=request):
            shown = channels
            if stage == "customer":
                shown = [
                    channel_for(
                        config=seg.config,
                        kind=request.kind,
                        stage=stage,
                        customer_id=sharer.customer_id,
                        product=request.product,
                    )
                ]
            notify(
                session,
                request=sharer,
                event=customer_event,
                targets=["customer"],
                config=seg.config,
                at=now,
                key=f"{build.id}",
                context={**context_for(shown, sharer.title), "advisory": sharer.advisory_id},
            )
    tell(
        session,
        primary=request,
        event="release.stage",
        targets=["internal_channel"],
        config=seg.config,
        at=now,
        key=f"{build.id}:{stage}",
        context=context,
    )
