"""`workflows.rollout.watch_rollouts` (run by `reconcile`): a canary step once its soak has passed, then the
halt telemetry calls for — the channel reverted and marked, the request failed — and the halted fix taken
off the release line, across three domains, on a real pipeline (git, YARA-X, signed bases)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import git
from sqlalchemy import select

from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.clock import db_now
from release_requests.releases import clients, telemetry
from release_requests.releases.models import ChannelPointer
from release_requests.releases.schemas import ClientEnrolIn, DetectionBatch
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.requests.states import Status
from release_requests.workflows.rollout import watch_rollouts
from tests.conftest import Builder
from tests.pipeline.conftest import FP_RULE, staff, world_pipeline  # noqa: F401 (fixtures)
from tests.pipeline.driving import new_request, release, sample_bytes


def report(w, *, customer_ids: list[str], clients_each: int, version: str, sha256: str) -> None:
    """Enrolled clients of these customers each report the file as detected by `version`."""
    with db.transaction(w.seg.sessions) as s:
        b = Builder(s, w.config)
        for customer_id in customer_ids:
            person = b.person("customer", customer_id=customer_id)
            for _ in range(clients_each):
                client, _ = clients.enrol(s, person=person, data=ClientEnrolIn(name=f"ws-{uuid.uuid4().hex[:6]}"))
                batch = DetectionBatch(
                    batch_id=uuid.uuid4(),
                    sent_at=datetime.now(UTC),
                    detections=[
                        {"base_version": version, "rule": FP_RULE, "file_sha256": sha256, "verdict": "detected"}
                    ],
                )
                telemetry.record_detections(s, client=client, batch=batch, config=w.config)


def test_the_watch_steps_the_canary_then_halts_it_and_takes_the_fix_off_the_line(world_pipeline, staff):  # noqa: F811
    w = world_pipeline
    request_id = new_request(w, staff, sample_bytes(w, "payroll"))
    release(w, staff, request_id, ["internal", "canary"])
    with db.transaction(w.seg.sessions) as s:
        pointer = s.get(ChannelPointer, "canary")
        bad, sha256 = pointer.version, s.scalar(select(Sample.sha256).where(Sample.request_id == request_id))
        customer_id, later = s.get(ReleaseRequest, request_id).customer_id, db_now(s) + timedelta(days=1)
        assert pointer.rollout_percent == 5
    line = git.Repo(w.settings.signature_repo)
    branch = w.config.stages.release_line.branch
    fix_commit = line.commit(branch).hexsha  # the fix joined the line at the internal stage

    # nothing condemns it yet: once the first step has soaked, the canary takes its next step
    assert watch_rollouts(w.seg.sessions, config=w.config, settings=w.settings, now=later).as_dict() == {
        "rollouts_advanced": ["canary:25%"],
        "halted": [],
    }

    # clients of two organisations detect the very file the fix allowlists: the base is halted at once
    with db.transaction(w.seg.sessions) as s:
        other = Builder(s, w.config).customer().id
    report(w, customer_ids=[customer_id, other], clients_each=2, version=bad, sha256=sha256)
    done = watch_rollouts(w.seg.sessions, config=w.config, settings=w.settings)  # the database's time
    assert done.rollouts_advanced == [] and sorted(done.halted) == ["canary", "internal"]  # both served it

    with db.transaction(w.seg.sessions) as s:
        for channel in ("canary", "internal"):
            pointer = s.get(ChannelPointer, channel)
            assert pointer.halted_version == bad and pointer.halted_at is not None  # (nothing before it to revert to)
        assert s.get(ReleaseRequest, request_id).status == Status.failed
        actions = list(
            s.scalars(select(AuditEvent.action).where(AuditEvent.request_id == request_id).order_by(AuditEvent.seq))
        )
        [reverted] = s.scalars(
            select(AuditEvent).where(AuditEvent.request_id == request_id, AuditEvent.action == "line.reverted")
        ).all()  # once, though two channels were halted
        assert reverted.actor == "system:telemetry" and reverted.reason.startswith(f"halted on {done.halted[0]}: ")
    assert actions.index("channel.halted") < actions.index("line.reverted")  # the halt first, then the line
    tip = line.commit(branch)
    assert tip.hexsha != fix_commit and f"Reverts-Request: {request_id}" in tip.message

    # a halted channel waits for a person: later passes neither judge it again nor roll the condemned base on
    # (with nothing before it to fall back to, the halt left it at its canary step)
    again = watch_rollouts(w.seg.sessions, config=w.config, settings=w.settings, now=later + timedelta(days=1))
    assert again.as_dict() == {"rollouts_advanced": [], "halted": []}
    with db.transaction(w.seg.sessions) as s:
        assert s.get(ChannelPointer, "canary").rollout_percent == 25
