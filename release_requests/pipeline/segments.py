"""The automated segments between human decisions: build-and-verify, and publishing one stage.

Prefect runs them at least once, so each is written to be re-run from any point after a crash:
progress is claimed and recorded in Postgres between the steps, the fix commit and the base build are
found again rather than redone, channel publishes are compare-and-swap (publishing the version that is
already current is a no-op), and every notice goes through the outbox with a deduplicating key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import git
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from artifacts import errors as artifact_errors
from artifacts.base import build_base
from artifacts.bundle import BaseManifest, HotfixManifest, read_verified
from artifacts.fixes import existing_fix, fix_false_negative, fix_false_positive
from artifacts.hotfix import build_hotfix
from artifacts.products import product_spec
from artifacts.signing import signing_key
from artifacts.store import LocalStore
from artifacts.verify import verify_base
from release_requests.audit.service import record
from release_requests.config import AppConfig
from release_requests.crashpoints import crash_point
from release_requests.customers.models import Customer
from release_requests.db import transaction
from release_requests.pipeline.models import Build, StageRun
from release_requests.pipeline.service import (
    PIPELINE,
    affected,
    finish_trigger,
    open_stage,
    pipeline_of,
    readiness,
    stored_samples,
    tell,
)
from release_requests.releases import service as releases
from release_requests.releases.models import ChannelPointer
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.service import db_now, transition
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
    def key(self):
        return signing_key(data_dir=self.settings.data_dir)


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
                targets=["customer", "internal_channel"],
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


def _fix_commit(seg: Segment, *, request: ReleaseRequest, build: Build, samples: list[Path]) -> tuple[str, str]:
    """The fix commit on fix/<request>: found again after a crash, made otherwise."""
    repo_path = seg.settings.signature_repo
    branch = f"fix/{request.id}"
    fix = build.fix
    if fix["type"] == "ref":
        return fix["ref"], existing_fix(repo_path=repo_path, ref=fix["ref"])
    repo = git.Repo(repo_path)
    if branch in repo.heads and f"Request: {request.id}" in repo.heads[branch].commit.message:
        return branch, repo.heads[branch].commit.hexsha
    if not samples:
        raise artifact_errors.InvalidInput(f"{request.id}: no stored sample to build the fix against")
    author = f"{build.builder} <release-pipeline@vendor.example>"
    if fix["type"] == "allowlist":
        result = None
        for sample in samples:
            result = fix_false_positive(
                repo_path=repo_path,
                sample=sample,
                request_id=request.id,
                author=author,
                reason=f"{request.id}: {request.title}",
            )
    else:
        result = fix_false_negative(
            repo_path=repo_path,
            rule_text=fix["rule_text"],
            sample=samples[0],
            request_id=request.id,
            author=author,
            family=fix.get("family", "generic"),
        )
    return result.branch, result.commit


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
    with transaction(seg.sessions) as session:
        request, build = session.get(ReleaseRequest, request_id), _build(session, request_id, attempt)
        samples = _samples(seg, session, request_id)
        branch, commit = (build.branch, build.commit) if build.commit else (None, None)
    if commit is None:
        branch, commit = _fix_commit(seg, request=request, build=build, samples=samples)
        with transaction(seg.sessions) as session:
            build = _build(session, request_id, attempt)
            build.branch, build.commit = branch, commit
            record(
                session,
                actor=PIPELINE,
                action="build.fix_committed",
                entity_type="build",
                entity_id=str(build.id),
                request_id=request_id,
                after={"branch": branch, "commit": commit},
            )
    crash_point("build:fix_committed")
    key = seg.key
    bundle = _existing_base(seg, commit)
    if bundle is None:
        manifest = build_base(
            repo_path=seg.settings.signature_repo,
            ref=commit,
            out_dir=seg.settings.bundles_dir / "base",
            key=key,
            store=seg.store,
            builder=build.builder,
        )
        bundle = seg.settings.bundles_dir / "base" / manifest.version
    manifest = read_verified(bundle, public_key=key.public_key(), model=BaseManifest)
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
        public_key=key.public_key(),
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


def _existing_hotfix(bundle_root: Path, *, customer: str, product: str, version: str, commits: list[str], key):
    """A hotfix bundle already built from these commits (the segment crashed after building): reuse it."""
    for bundle in sorted(bundle_root.glob(f"{customer}/{product}/{version}-*")):
        if not (bundle / "manifest.sig").exists():
            continue
        manifest = read_verified(bundle, public_key=key.public_key(), model=HotfixManifest)
        picked = manifest.cherry_picked
        if len(picked) == len(commits) and all(p.startswith(c.lower()) for p, c in zip(picked, commits, strict=True)):
            return bundle, manifest
    return None


def _build_hotfix(seg: Segment, *, request_id: str, attempt: int, trigger_key: str) -> str:
    with transaction(seg.sessions) as session:
        request, build = session.get(ReleaseRequest, request_id), _build(session, request_id, attempt)
        customer = session.get(Customer, request.customer_id)
        version = build.fix.get("product_version") or request.product_version
        grants = list(customer.licensed_products)
    if not request.product or not version:
        raise artifact_errors.InvalidInput(f"{request_id}: a hotfix needs the product and its version")
    key = seg.key
    root = seg.settings.bundles_dir / "hotfix"
    commits = build.fix["commits"]
    found = _existing_hotfix(
        root, customer=request.customer_id, product=request.product, version=version, commits=commits, key=key
    )
    if found is None:
        manifest = build_hotfix(
            product=product_spec(seg.settings.config_dir / "products.toml", request.product),
            version=version,
            commits=commits,
            customer=request.customer_id,
            grants=grants,
            out_dir=root,
            key=key,
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
            build.status = "verifying"
            transition(
                session,
                actor=PIPELINE,
                request=locked,
                target=Status.verifying,
                action="request.verifying",
                details={"version": manifest.version},
            )
    read_verified(bundle, public_key=key.public_key(), model=HotfixManifest)  # signature and every file hash again
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
        release = releases.register_release(
            session,
            actor=PIPELINE,
            bundle_dir=bundle,
            store=seg.store,
            request_id=request_id,
            private_to=request.customer_id if build.kind == "hotfix" else None,
            product=request.product if build.kind == "hotfix" else None,
            public_key=seg.key.public_key(),
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
            targets=["customer", "internal_channel"],
            config=seg.config,
            at=now,
            key=str(attempt),
            context=context,
        )
        _, pipeline = pipeline_of(request, seg.config)
        open_stage(session, request=request, build=build, stage=pipeline.stages[0], config=seg.config)
        finish_trigger(session, key=trigger_key)
        return f"build {attempt} verified: {build.version}"


def _fail(seg: Segment, *, request_id: str, attempt: int, trigger_key: str, reason: str) -> None:
    with transaction(seg.sessions) as session:
        request = _locked(session, request_id)
        _fail_locked(seg, session, request, _build(session, request_id, attempt), trigger_key, reason=reason)


def _fail_locked(seg: Segment, session: Session, request, build: Build, trigger_key: str, *, reason: str) -> str:
    build.status, build.error = "failed", reason[:4000]
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


def stage_channels(
    session: Session, *, request: ReleaseRequest, build: Build, stage: str, config: AppConfig
) -> list[str]:
    """The channels a stage publishes to; the customer stage serves every customer who shares the fix."""
    customers = (
        dict.fromkeys(r.customer_id for r in affected(session, primary=request))
        if stage == "customer"
        else {request.customer_id: None}
    )
    return list(
        dict.fromkeys(
            releases.channel_for(config=config, kind=request.kind, stage=stage, customer_id=c, product=request.product)
            for c in customers
        )
    )


def run_publish(seg: Segment, *, request_id: str, stage: str, build_id: int, trigger_key: str) -> str:
    with transaction(seg.sessions) as session:
        request = _locked(session, request_id)
        build = session.get(Build, build_id)
        run = session.scalar(select(StageRun).where(StageRun.build_id == build_id, StageRun.stage == stage))
        if run is None or run.status == "published":
            finish_trigger(session, key=trigger_key)
            return f"stage {stage} already published"
        if run.status == "awaiting":
            if not readiness(session, request=request, build=build, run=run, config=seg.config).ready(db_now(session)):
                finish_trigger(session, key=trigger_key)  # a sign-off was revoked meanwhile: a new decision re-triggers
                return f"stage {stage} no longer ready"
            run.status = "publishing"
            run.channels = stage_channels(session, request=request, build=build, stage=stage, config=seg.config)
            transition(
                session,
                actor=PIPELINE,
                request=request,
                target=Status.releasing,
                action="request.releasing",
                details={"stage": stage, "version": build.version, "channels": run.channels},
            )
        channels, version = list(run.channels), build.version
    crash_point("publish:claimed")
    for channel in channels:
        with transaction(seg.sessions) as session:
            _publish(
                seg,
                session,
                channel=channel,
                version=version,
                request_id=request_id,
                reason=f"stage {stage} of {request_id}",
            )
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


def _publish(seg: Segment, session: Session, *, channel: str, version: str, request_id: str, reason: str) -> None:
    """Compare-and-swap from whatever the channel serves now; already current is a no-op (crash re-runs)."""
    current = session.get(ChannelPointer, channel)
    releases.publish(
        session,
        actor=PIPELINE,
        channel=channel,
        version=version,
        request_id=request_id,
        reason=reason,
        expected_current=current.version if current else None,
        config=seg.config,
    )


def _announce_stage(
    seg: Segment, session: Session, *, request, build: Build, stage: str, channels: list[str], now
) -> None:
    context = {
        "title": request.title,
        "version": build.version,
        "stage": stage,
        "channels": channels,
        "how_to_get": "; ".join(f"relreq client fetch --channel {c} --client-id <host> --dest <dir>" for c in channels),
    }
    # the customer hears it in their own words; the team always gets the engineering notice
    customer_event = {"customer": "release.customer", "global": "release.global"}.get(stage)
    if customer_event is not None:
        tell(
            session,
            primary=request,
            event=customer_event,
            targets=["customer"],
            config=seg.config,
            at=now,
            key=f"{build.id}",
            context=context,
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
