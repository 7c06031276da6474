"""The automated segments with real git, YARA-X, signing and channels — and SIGKILLed mid-way."""

from __future__ import annotations

import json

import git
import pytest
from sqlalchemy import select

from release_requests import db
from release_requests.audit.service import verify_chain
from release_requests.notifications.models import Notification
from release_requests.pipeline import segments, service
from release_requests.pipeline.models import Build, StageRun
from release_requests.pipeline.schemas import SignoffIn
from release_requests.releases.models import ChannelHistory, ChannelPointer
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.schemas import Duplicate
from release_requests.requests.states import Status
from release_requests.workflows import intake
from tests.conftest import Builder


def state(w, request_id):
    with db.transaction(w.seg.sessions) as s:
        request = s.get(ReleaseRequest, request_id)
        build = service.latest_build(s, request_id=request_id)
        runs = {r.stage: r.status for r in s.scalars(select(StageRun).where(StageRun.request_id == request_id))}
        return request.status, build, runs


def sign(w, request_id, person, stage):
    with db.transaction(w.seg.sessions) as s:
        return service.sign(
            s,
            actor=person,
            request_id=request_id,
            data=SignoffIn(stage=stage),
            config=w.config,
            repo_path=w.settings.signature_repo,
        )


def run_build(w, request_id):
    trigger = w.trigger(request_id, "build:")
    return segments.run_build(w.seg, request_id=request_id, attempt=1, trigger_key=trigger.key)


def run_publish(w, request_id, stage):
    trigger = w.trigger(request_id, f"publish:{stage}:")
    _, _, build_id = trigger.step.split(":")
    return segments.run_publish(
        w.seg, request_id=request_id, stage=stage, build_id=int(build_id), trigger_key=trigger.key
    )


def notices_per_recipient(w, request_id) -> dict[tuple[str, str, str, str], int]:
    """How often each distinct notice (event, medium, recipient, content) was queued: 1 means never twice."""
    with db.transaction(w.seg.sessions) as s:
        rows = s.execute(
            select(Notification.event, Notification.channel, Notification.recipient, Notification.context).where(
                Notification.request_id == request_id
            )
        ).all()
    counts: dict = {}
    for event, channel, recipient, context in rows:
        key = (event, channel, recipient, json.dumps(context, sort_keys=True))
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_false_positive_from_accept_to_the_customer_channel(world_pipeline, fp_request):
    w, rid = world_pipeline, fp_request["id"]
    assert "verified" in run_build(w, rid)
    status, build, runs = state(w, rid)
    assert status == Status.awaiting_approval and build.passed and runs == {"internal": "awaiting"}
    repo = git.Repo(w.settings.signature_repo)
    assert build.branch == f"fix/{rid}" and build.version in [t.name for t in repo.tags]
    assert f"Request: {rid}" in repo.commit(build.commit).message
    events = {key[0] for key in notices_per_recipient(w, rid)}
    assert {"build.started", "verification.passed", "approval.requested"} <= events

    sign(w, rid, fp_request["build_engineer"], "internal")
    assert "published" in run_publish(w, rid, "internal")
    for stage in ("canary", "customer"):
        assert state(w, rid)[2][stage] == "awaiting"
        sign(w, rid, fp_request["build_engineer"], stage)
        sign(w, rid, fp_request["release_manager"], stage)  # critical: canary soak is skipped, sign-off is not
        assert "published" in run_publish(w, rid, stage)
    status, build, runs = state(w, rid)
    assert status == Status.awaiting_approval and runs["global"] == "awaiting"
    customer_mail = ("release.customer", "email", f"soc-{fp_request['customer'][2:]}@example.com")
    assert customer_mail in {key[:3] for key in notices_per_recipient(w, rid)}
    sign(w, rid, fp_request["release_manager"], "global")
    sign(w, rid, fp_request["release_manager_2"], "global")
    assert "published" in run_publish(w, rid, "global")
    status, build, runs = state(w, rid)
    assert status == Status.released and set(runs.values()) == {"published"}
    with db.transaction(w.seg.sessions) as s:
        pointers = {p.channel: p.version for p in s.scalars(select(ChannelPointer))}
        assert verify_chain(s).ok
    channels = ["internal", "canary", f"customer-{fp_request['customer']}", "global"]
    assert pointers == dict.fromkeys(channels, build.version)  # global keeps the channels it passed through


@pytest.mark.parametrize("point", ["build:claimed", "build:fix_committed", "build:built", "build:verified"])
def test_build_segment_survives_sigkill(world_pipeline, fp_request, point):
    w, rid = world_pipeline, fp_request["id"]
    trigger = w.trigger(rid, "build:")
    killed = w.worker("build", rid, "1", trigger.key, crash_at=point)
    assert killed.returncode == -9, killed.stderr
    finished = w.worker("build", rid, "1", trigger.key)
    assert finished.returncode == 0 and "verified" in finished.stdout, finished.stderr
    status, build, runs = state(w, rid)
    assert status == Status.awaiting_approval and runs == {"internal": "awaiting"}
    repo = git.Repo(w.settings.signature_repo)
    fix_commits = [c for c in repo.iter_commits(f"fix/{rid}") if f"Request: {rid}" in c.message]
    base_tags = [t for t in repo.tags if t.commit.hexsha == build.commit]
    assert len(fix_commits) == 1 and len(base_tags) == 1  # the fix and the base were not made twice
    assert all(n == 1 for n in notices_per_recipient(w, rid).values())


@pytest.mark.parametrize("point", ["publish:claimed", "publish:after_channel"])
def test_publish_segment_survives_sigkill(world_pipeline, fp_request, point):
    w, rid = world_pipeline, fp_request["id"]
    run_build(w, rid)
    sign(w, rid, fp_request["build_engineer"], "internal")
    trigger = w.trigger(rid, "publish:internal:")
    build_id = trigger.step.split(":")[2]
    killed = w.worker("publish", rid, "internal", build_id, trigger.key, crash_at=point)
    assert killed.returncode == -9, killed.stderr
    finished = w.worker("publish", rid, "internal", build_id, trigger.key)
    assert finished.returncode == 0 and "published" in finished.stdout, finished.stderr
    status, build, runs = state(w, rid)
    assert status == Status.awaiting_approval and runs == {"internal": "published", "canary": "awaiting"}
    with db.transaction(w.seg.sessions) as s:
        publishes = s.scalars(
            select(ChannelHistory).where(ChannelHistory.channel == "internal", ChannelHistory.action == "publish")
        ).all()
        assert [p.to_version for p in publishes] == [build.version]  # published exactly once
    assert all(n == 1 for n in notices_per_recipient(w, rid).values())


def test_failed_verification_tells_the_customer_and_allows_a_rebuild(world_pipeline, fp_request):
    w, rid = world_pipeline, fp_request["id"]
    with db.transaction(w.seg.sessions) as s:
        build = s.scalar(select(Build).where(Build.request_id == rid))
        build.fix = {"type": "ref", "ref": "no-such-branch"}
    assert "failed" in run_build(w, rid)
    status, build, _ = state(w, rid)
    assert status == Status.failed and "no-such-branch" in build.error
    assert any(k[0] == "verification.failed" for k in notices_per_recipient(w, rid))
    from release_requests.pipeline.schemas import FixInput

    with db.transaction(w.seg.sessions) as s:
        rebuilt = service.provide_fix(
            s, actor=fp_request["build_engineer"], request_id=rid, data=FixInput(type="allowlist")
        )
        assert rebuilt.attempt == 2
    trigger = w.trigger(rid, "build:2")
    assert "verified" in segments.run_build(w.seg, request_id=rid, attempt=2, trigger_key=trigger.key)


def test_duplicates_share_the_build_and_each_customer_is_told(world_pipeline, fp_request):
    w, rid = world_pipeline, fp_request["id"]
    with db.transaction(w.seg.sessions) as s:
        b = Builder(s, w.config)
        other = b.customer(language="en")
        duplicate = b.request(by=b.person("customer", customer_id=other.id), customer=other, severity=2)
        intake.triage(
            s,
            actor=fp_request["triage"],
            request_id=duplicate.id,
            decision=Duplicate(decision="duplicate", duplicate_of=rid),
            config=w.config,
        )
        duplicate_id, other_id = duplicate.id, other.id
    run_build(w, rid)
    for stage, signers in (
        ("internal", ["build_engineer"]),
        ("canary", ["build_engineer", "release_manager"]),
        ("customer", ["build_engineer", "release_manager"]),
    ):
        for who in signers:
            sign(w, rid, fp_request[who], stage)
        run_publish(w, rid, stage)
    with db.transaction(w.seg.sessions) as s:
        pointers = {p.channel: p.version for p in s.scalars(select(ChannelPointer))}
        told = s.scalars(
            select(Notification.event).where(
                Notification.request_id == duplicate_id, Notification.audience == "customer"
            )
        ).all()
    version = state(w, rid)[1].version
    assert pointers[f"customer-{fp_request['customer']}"] == version and pointers[f"customer-{other_id}"] == version
    assert {"build.started", "verification.passed", "release.customer"} <= set(told)


def test_a_missing_signature_repository_fails_the_build_with_the_reason(world_pipeline, fp_request):
    import shutil

    w, rid = world_pipeline, fp_request["id"]
    shutil.rmtree(w.settings.signature_repo)
    assert "failed" in run_build(w, rid)
    status, build, _ = state(w, rid)
    assert status == Status.failed and "RR_SIGREPO" in build.error
