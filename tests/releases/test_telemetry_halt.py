"""Telemetry input (validated, rate-limited) and the automatic halt it drives, end to end."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from artifacts.store import LocalStore
from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import verify_chain
from release_requests.notifications.models import Notification
from release_requests.releases import service, telemetry
from release_requests.releases.models import ChannelHistory, ChannelPointer, TelemetryDetection
from release_requests.releases.schemas import DetectionBatch
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.service import db_now
from release_requests.requests.states import Status
from tests.releases.conftest import SYSTEM, put, release_request_in

RULE = "trojan.Trojan_Win32_Dropper_001"


def detection(version: str, sha256: str, *, rule: str = RULE, verdict: str = "detected") -> dict:
    return {"base_version": version, "rule": rule, "file_sha256": sha256, "verdict": verdict}


def client_id() -> str:
    return f"ws-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"file_sha256": "abc"}, "detections.0.file_sha256"),
        ({"file_sha256": "A" * 64}, "detections.0.file_sha256"),
        ({"verdict": "deleted"}, "detections.0.verdict"),
        ({"rule": "no namespace"}, "detections.0.rule"),
        ({"surprise": 1}, "detections.0.surprise"),
        ({"base_version": "latest"}, "detections.0.base_version"),
    ],
)
def test_telemetry_input_is_validated(world, releases, change, field):
    body = {"client_id": client_id(), "detections": [detection(releases.v1, "a" * 64) | change]}
    with world.client() as http:
        response = http.post("/api/v1/telemetry/detections", json=body)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.json()["fields"]]


def test_telemetry_refuses_bad_batches_and_unknown_bases(world, releases, config):
    limit = config.stages.telemetry.rate_limit_per_client_per_minute
    with world.client() as http:
        post = lambda body: http.post("/api/v1/telemetry/detections", json=body)  # noqa: E731
        assert post({"client_id": "x", "detections": [detection(releases.v1, "a" * 64)]}).status_code == 422
        assert post({"client_id": client_id(), "detections": []}).status_code == 422
        assert post({"client_id": client_id(), "detections": [], "extra": True}).status_code == 422
        unknown = post({"client_id": client_id(), "detections": [detection("1999.01.01.1", "a" * 64)]})
        assert unknown.status_code == 422 and "1999.01.01.1" in unknown.json()["message"]
        big = post({"client_id": client_id(), "detections": [detection(releases.v1, "a" * 64)] * (limit + 1)})
        assert big.status_code == 422 and big.json()["field"] == "detections"


def test_telemetry_is_rate_limited_per_client(world, releases, config):
    limit = config.stages.telemetry.rate_limit_per_client_per_minute
    noisy, quiet = client_id(), client_id()
    with world.client() as http:
        post = lambda cid, n: http.post(  # noqa: E731
            "/api/v1/telemetry/detections",
            json={"client_id": cid, "detections": [detection(releases.v1, "b" * 64)] * n},
        )
        first = post(noisy, limit - 5)
        assert first.status_code == 202 and first.json() == {"accepted": limit - 5}
        assert post(noisy, 5).status_code == 202
        limited = post(noisy, 1)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"] == "rate_limited"
        assert post(quiet, 1).status_code == 202, "the limit is per client"


def test_known_clean_files_are_added_by_admins_only(world):
    sha = uuid.uuid4().hex * 2
    with world.client(world.user("admin")) as http:
        added = http.post("/api/v1/known-clean", json={"sha256": sha, "reason": "signed in-house installer"})
        assert added.status_code == 201 and added.json()["sha256"] == sha
        assert http.post("/api/v1/known-clean", json={"sha256": sha, "reason": "again"}).json()["reason"] == (
            "signed in-house installer"
        )
        assert http.post("/api/v1/known-clean", json={"sha256": "zz", "reason": "bad"}).status_code == 422
    with world.client(world.user("release_manager")) as http:
        assert http.post("/api/v1/known-clean", json={"sha256": sha, "reason": "x y z"}).status_code == 403


def test_detections_on_known_clean_files_halt_the_canary(world, api_url, releases, fresh_base, settings, config):
    """Request releasing, its base on canary at 5 %; clients detect allowlisted and known-clean files → halt."""
    customer = world.customer()
    submitter = world.user("customer", customer)
    with db.transaction(world.sessions) as s:
        request = release_request_in(
            s, customer_id=customer, submitter_id=submitter.id, config=config, status=Status.releasing
        )
        bad = service.register_release(
            s,
            actor=SYSTEM,
            bundle_dir=fresh_base,
            store=LocalStore(settings.artifacts_dir),
            request_id=request.id,
            public_key=service.server_public_key(settings.data_dir),
        )
        put(s, "canary", releases.v1, bad.version, config=config)
    assert releases.fp_sha256 in bad.allowlist
    clean_sha = uuid.uuid4().hex * 2
    with world.client(world.user("admin")) as http:
        assert http.post("/api/v1/known-clean", json={"sha256": clean_sha, "reason": "vendor tool"}).status_code == 201
    limit = config.stages.telemetry.max_clean_file_detections
    hits = [releases.fp_sha256, clean_sha] * limit
    with world.client() as http:
        for sha in hits[:limit]:
            body = {"client_id": client_id(), "detections": [detection(bad.version, sha)]}
            assert http.post("/api/v1/telemetry/detections", json=body).status_code == 202
        # noise that must not count: another verdict, another base
        http.post(
            "/api/v1/telemetry/detections",
            json={
                "client_id": client_id(),
                "detections": [
                    detection(bad.version, releases.fp_sha256, verdict="allowed"),
                    detection(releases.v1, clean_sha),
                ],
            },
        )
    with db.transaction(world.sessions) as s:
        assert telemetry.evaluate_halt(s, channel="canary", config=config, now=db_now(s)) is None
    with world.client() as http:
        body = {"client_id": client_id(), "detections": [detection(bad.version, hits[limit])]}
        assert http.post("/api/v1/telemetry/detections", json=body).status_code == 202

    with db.transaction(world.sessions) as s:
        now = db_now(s)
        decision = telemetry.evaluate_halt(s, channel="canary", config=config, now=now)
        assert decision is not None
        assert (decision.version, decision.revert_to, decision.request_id) == (bad.version, releases.v1, request.id)
        assert f"{limit + 1} detections by {bad.version} on known-clean" in decision.reason
        pointer = service.halt(s, channel="canary", decision=decision, config=config, now=now)
        assert (pointer.version, pointer.rollout_percent) == (releases.v1, 100)
    with db.transaction(world.sessions) as s:
        assert service.halt(s, channel="canary", decision=decision, config=config, now=now).version == releases.v1
        failed = s.get(ReleaseRequest, request.id)
        assert failed.status == Status.failed
        last = s.scalars(
            select(ChannelHistory).where(ChannelHistory.channel == "canary").order_by(ChannelHistory.id.desc())
        ).first()
        assert (last.action, last.from_version, last.to_version, last.actor) == (
            "halt",
            bad.version,
            releases.v1,
            "system:telemetry",
        )
        events = {e.action: e for e in s.scalars(select(AuditEvent).where(AuditEvent.request_id == request.id))}
        assert events["request.failed"].reason == decision.reason
        assert events["channel.halted"].after["request_failed"] is True
        notices = s.scalars(
            select(Notification).where(Notification.request_id == request.id, Notification.event == "release.halted")
        ).all()
        assert {(n.audience, n.channel) for n in notices} == {("internal", "slack"), ("customer", "email")}
        assert notices[0].context["to_version"] == releases.v1
        assert verify_chain(s).ok
    with world.client() as http:
        every = [
            http.get("/updates/canary/manifest.json", params={"client_id": f"ws-{i:04d}"}).json()["version"]
            for i in range(30)
        ]
        assert set(every) == {releases.v1}, "the halted base is no longer served to anyone"


def test_a_rule_firing_on_many_clients_is_a_spike(session, releases, config):
    put(session, "canary", releases.v1, releases.v2, config=config)
    pointer = session.get(ChannelPointer, "canary")
    policy = config.stages.telemetry
    rule = f"generic.Spike_{uuid.uuid4().hex[:8]}"
    before = 4  # the same rule on other bases just before: 4 clients × factor 5 = 20 is the bar
    session.add_all(
        TelemetryDetection(
            client_id=client_id(),
            base_version=releases.v1,
            rule=rule,
            file_sha256=f"{i:064x}",
            verdict="detected",
            received_at=pointer.published_at - timedelta(minutes=5),
        )
        for i in range(before)
    )
    later = pointer.published_at + timedelta(minutes=10)

    def report(n: int) -> None:
        for i in range(n):
            batch = DetectionBatch(
                client_id=client_id(), detections=[detection(releases.v2, f"{i + 100:064x}", rule=rule)]
            )
            telemetry.record_detections(session, batch=batch, config=config)

    report(int(policy.spike_factor * before))
    assert telemetry.evaluate_halt(session, channel="canary", config=config, now=later) is None
    report(1)
    decision = telemetry.evaluate_halt(session, channel="canary", config=config, now=later)
    assert decision is not None and decision.evidence["spikes"] == [
        {"rule": rule, "clients": 21, "clients_before": before}
    ]
    assert f"sharp rise of {rule} (21 clients, 4 before)" in decision.reason


def test_revert_is_announced_to_the_team_and_the_customer(session, world, fresh_base, settings, config, releases):
    customer = world.customer()
    submitter = world.user("customer", customer)
    request = release_request_in(
        session, customer_id=customer, submitter_id=submitter.id, config=config, status=Status.releasing
    )
    release = service.register_release(
        session,
        actor=SYSTEM,
        bundle_dir=fresh_base,
        request_id=request.id,
        store=LocalStore(settings.artifacts_dir),
        public_key=service.server_public_key(settings.data_dir),
    )
    channel = f"customer-{customer}"
    put(session, channel, releases.v1, release.version, config=config)
    service.revert(
        session, actor=SYSTEM, channel=channel, to_version=None, reason="customer reports slowdown", config=config
    )
    notices = session.scalars(
        select(Notification).where(Notification.request_id == request.id, Notification.event == "release.reverted")
    ).all()
    assert {n.audience for n in notices} == {"internal", "customer"}
    assert notices[0].context["reason"] == "customer reports slowdown"
    # the request is untouched by a manual revert: people decide what happens next
    assert session.get(ReleaseRequest, request.id).status == Status.releasing
