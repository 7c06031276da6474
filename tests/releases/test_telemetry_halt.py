"""Telemetry from enrolled clients only (validated, replay-proof, rate-limited), the automatic halt it drives
(enough clients of enough organisations), and resuming a halted channel — end to end over the real API."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from artifacts.store import LocalStore
from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import verify_chain
from release_requests.clock import db_now
from release_requests.errors import Conflict, Forbidden
from release_requests.notifications.models import Notification
from release_requests.releases import clients, registry, stopping, telemetry
from release_requests.releases.models import ChannelHistory, ChannelPointer, KnownCleanFile, TelemetryDetection
from release_requests.releases.schemas import ClientEnrolIn, DetectionBatch
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.states import Status
from tests.releases.fixtures import SYSTEM, batch, enrol, put, release_request_in

RULE = "trojan.Trojan_Win32_Dropper_001"
REPORT = "/api/v1/telemetry/detections"


def detection(version: str, sha256: str, *, rule: str = RULE, verdict: str = "detected") -> dict:
    return {"base_version": version, "rule": rule, "file_sha256": sha256, "verdict": verdict}


def stored(sha256: str) -> int:
    """How many detections of this file are stored (tests use a file hash of their own)."""
    return select(func.count()).select_from(TelemetryDetection).where(TelemetryDetection.file_sha256 == sha256)


@pytest.fixture(scope="module")
def reporter(world):
    """One enrolled client (of a customer of its own) for tests about input rather than halts."""
    return enrol(world, world.user("customer", world.customer()), name="ws-validation")


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
def test_telemetry_input_is_validated(world, releases, reporter, change, field):
    body = batch(detection(releases.v1, "a" * 64) | change)
    with world.client() as http:
        response = http.post(REPORT, json=body, headers=reporter.headers)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.json()["fields"]]


def test_telemetry_refuses_bad_batches_and_unknown_bases(world, releases, reporter, config):
    limit = config.stages.telemetry.rate_limit_per_client_per_minute
    one = detection(releases.v1, "a" * 64)
    with world.client() as http:
        post = lambda body: http.post(REPORT, json=body, headers=reporter.headers)  # noqa: E731
        assert post(batch()).status_code == 422
        assert post(batch(one, extra=True)).status_code == 422
        for missing in ("batch_id", "sent_at"):
            body = {k: v for k, v in batch(one).items() if k != missing}
            assert missing in [f["field"] for f in post(body).json()["fields"]]
        naive = post(batch(one) | {"sent_at": datetime.now(UTC).replace(tzinfo=None).isoformat()})
        assert naive.status_code == 422 and naive.json()["fields"][0]["field"] == "sent_at"
        assert post(batch(one) | {"batch_id": "not-a-uuid"}).json()["fields"][0]["field"] == "batch_id"
        unknown = post(batch(detection("1999.01.01.1", "a" * 64)))
        assert unknown.status_code == 422 and "1999.01.01.1" in unknown.json()["message"]
        big = post(batch(*[one] * (limit + 1)))
        assert big.status_code == 422 and big.json()["field"] == "detections"


def test_only_enrolled_live_clients_may_report(world, releases, reporter):
    """No credential, an unknown one, a person's API token or a revoked client: 401, and nothing is stored."""
    customer = world.customer()
    owner = world.user("customer", customer)
    revoked = enrol(world, owner)
    sha = uuid.uuid4().hex * 2
    body = batch(detection(releases.v1, sha))
    with world.client() as http:
        missing = http.post(REPORT, json=body)
        assert missing.status_code == 401 and "only enrolled update clients" in missing.json()["message"]
        assert missing.headers["www-authenticate"] == "Bearer"
        assert http.post(REPORT, json={"garbage": True}).status_code == 401, "checked before the body"
        for secret in ("rrc_not-a-real-credential", owner.token):
            unknown = http.post(REPORT, json=body, headers={"Authorization": f"Bearer {secret}"})
            assert unknown.status_code == 401 and "unknown client credential" in unknown.json()["message"]
        with world.client(owner) as as_owner:
            gone = as_owner.delete(f"/api/v1/clients/{revoked.id}")
            assert gone.status_code == 200 and gone.json()["revoked_at"]
        refused = http.post(REPORT, json=body, headers=revoked.headers)
        assert refused.status_code == 401 and f"client {revoked.id} was revoked" in refused.json()["message"]
    with db.transaction(world.sessions) as s:
        assert s.scalar(stored(sha)) == 0
    with world.client() as http:
        assert http.post(REPORT, json=body, headers=reporter.headers).status_code == 202
    with db.transaction(world.sessions) as s:
        assert s.scalar(stored(sha)) == 1
        row = s.scalar(select(TelemetryDetection).where(TelemetryDetection.file_sha256 == sha))
        assert row.client_id == reporter.id, "the client id comes from the credential"


def test_a_forged_client_id_a_replay_and_a_stale_batch_are_refused(world, releases, reporter):
    sha = uuid.uuid4().hex * 2
    one = detection(releases.v1, sha)
    with world.client() as http:
        post = lambda body: http.post(REPORT, json=body, headers=reporter.headers)  # noqa: E731
        forged = post(batch(one, client_id="ws-somebody-else"))
        assert forged.status_code == 422 and forged.json()["field"] == "client_id"
        assert reporter.id in forged.json()["message"]
        assert post(batch(one, client_id=reporter.id)).status_code == 202, "naming itself is allowed"

        first = batch(one)
        assert post(first).status_code == 202
        replayed = post(first)
        assert replayed.status_code == 409 and "replayed" in replayed.json()["message"]
        assert replayed.json()["field"] == "batch_id"

        for skew in (timedelta(minutes=-6), timedelta(minutes=6)):
            stale = post(batch(one, sent_at=datetime.now(UTC) + skew))
            assert stale.status_code == 422 and stale.json()["field"] == "sent_at"
            assert "server's clock" in stale.json()["message"]
        assert post(batch(one, sent_at=datetime.now(UTC) - timedelta(minutes=4))).status_code == 202
    with db.transaction(world.sessions) as s:
        assert s.scalar(stored(sha)) == 3, "refused batches stored nothing, the replay counted once"


def test_telemetry_is_rate_limited_per_client(world, releases, config):
    limit = config.stages.telemetry.rate_limit_per_client_per_minute
    user = world.user("customer", world.customer())
    noisy, quiet = enrol(world, user), enrol(world, user)
    with world.client() as http:
        post = lambda client, n: http.post(  # noqa: E731
            REPORT, json=batch(*[detection(releases.v1, "b" * 64)] * n), headers=client.headers
        )
        first = post(noisy, limit - 5)
        assert first.status_code == 202 and first.json() == {"accepted": limit - 5}
        assert post(noisy, 5).status_code == 202
        limited = post(noisy, 1)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"] == "rate_limited"
        assert post(quiet, 1).status_code == 202, "the limit is per client"


def test_clients_are_enrolled_listed_and_revoked_per_organisation(world):
    customer, other = world.customer(), world.customer()
    own, stranger, engineer = (
        world.user("customer", customer),
        world.user("customer", other),
        world.user("build_engineer"),
    )
    mine = enrol(world, own, name="ws-0042")
    vendor = enrol(world, engineer, name="lab-01")
    assert (mine.organisation, vendor.organisation) == (customer, "vendor")
    assert mine.id.startswith("uc-") and mine.secret.startswith("rrc_")
    with world.client(own) as http:
        listed = http.get("/api/v1/clients").json()
        assert [c["client_id"] for c in listed] == [mine.id]
        assert listed[0]["name"] == "ws-0042" and "secret" not in listed[0]
    with world.client(engineer) as http:
        ids = {c["client_id"]: c for c in http.get("/api/v1/clients").json()}
        assert {mine.id, vendor.id} <= set(ids) and ids[vendor.id]["customer_id"] is None
    with world.client(stranger) as http:
        assert mine.id not in {c["client_id"] for c in http.get("/api/v1/clients").json()}
        for target in (mine.id, vendor.id):
            assert http.delete(f"/api/v1/clients/{target}").status_code == 404
        assert http.delete("/api/v1/clients/uc-doesnotexist").status_code == 404
        assert http.delete("/api/v1/clients/x").status_code == 422
        assert http.post("/api/v1/clients", json={"name": ""}).status_code == 422
    with world.client() as http:
        assert http.post("/api/v1/clients", json={}).status_code == 401
    with world.client(engineer) as http:
        revoked = http.delete(f"/api/v1/clients/{mine.id}").json()
        assert revoked["revoked_at"] and revoked["revoked_by"].startswith(engineer.name)
        assert http.delete(f"/api/v1/clients/{mine.id}").json()["revoked_at"] == revoked["revoked_at"]
    with db.transaction(world.sessions) as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.entity_id.in_([mine.id, vendor.id])).order_by(AuditEvent.seq)
        ).all()
        assert [(e.action, e.entity_id) for e in events] == [
            ("client.enrolled", mine.id),
            ("client.enrolled", vendor.id),
            ("client.revoked", mine.id),
        ]
        assert all(mine.secret not in str(e.after) and vendor.secret not in str(e.after) for e in events)


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


def _releasing_base(world, settings, config, fresh_base, customer: str):
    """A request of `customer` in `releasing` and its base, registered (not yet published)."""
    submitter = world.user("customer", customer)
    with db.transaction(world.sessions) as s:
        request = release_request_in(
            s, customer_id=customer, submitter_id=submitter.id, config=config, status=Status.releasing
        )
        bad = registry.register_release(
            s,
            actor=SYSTEM,
            bundle_dir=fresh_base,
            store=LocalStore(settings.artifacts_dir),
            request_id=request.id,
            public_key=registry.server_public_key(settings.data_dir),
        )
        return request.id, bad.version, bad.allowlist


def _evaluate(world, channel: str, config):
    with db.transaction(world.sessions) as s:
        return telemetry.evaluate_halt(s, channel=channel, config=config, now=db_now(s))


def test_detections_on_known_clean_files_halt_the_canary(
    world, releases, fresh_base, settings, config, resumes_halted_channels
):
    """Request releasing, its base on canary at 5 %; clients of two customers detect clean files → halt."""
    first, second = world.customer(), world.customer()
    request_id, bad, allowlist = _releasing_base(world, settings, config, fresh_base, first)
    with db.transaction(world.sessions) as s:
        put(s, "canary", releases.v2, bad, config=config)
    assert releases.fp_sha256 in allowlist
    clean_sha = uuid.uuid4().hex * 2
    with world.client(world.user("admin")) as http:
        assert http.post("/api/v1/known-clean", json={"sha256": clean_sha, "reason": "vendor tool"}).status_code == 201
    limit = config.stages.telemetry.max_clean_file_detections
    hits = [releases.fp_sha256, clean_sha] * limit
    users = [world.user("customer", first), world.user("customer", second)]
    reporters = [enrol(world, users[i % 2]) for i in range(limit + 1)]
    with world.client() as http:
        for client, sha in zip(reporters[:limit], hits, strict=False):
            assert http.post(REPORT, json=batch(detection(bad, sha)), headers=client.headers).status_code == 202
        # noise that must not count: another verdict, another base
        noise = batch(detection(bad, releases.fp_sha256, verdict="allowed"), detection(releases.v1, clean_sha))
        assert http.post(REPORT, json=noise, headers=reporters[0].headers).status_code == 202
    assert _evaluate(world, "canary", config) is None
    with world.client() as http:
        body = batch(detection(bad, hits[limit]))
        assert http.post(REPORT, json=body, headers=reporters[limit].headers).status_code == 202

    with db.transaction(world.sessions) as s:
        now = db_now(s)
        decision = telemetry.evaluate_halt(s, channel="canary", config=config, now=now)
        assert decision is not None
        assert (decision.version, decision.revert_to, decision.request_id) == (bad, releases.v2, request_id)
        assert f"{limit + 1} detections by {bad} on known-clean" in decision.reason
        assert f"from {limit + 1} clients of 2 organisations" in decision.reason
        pointer = stopping.halt(s, channel="canary", decision=decision, config=config, now=now)
        assert (pointer.version, pointer.rollout_percent, pointer.halted_version) == (releases.v2, 100, bad)
    with db.transaction(world.sessions) as s:
        assert stopping.halt(s, channel="canary", decision=decision, config=config, now=now).version == releases.v2
        failed = s.get(ReleaseRequest, request_id)
        assert failed.status == Status.failed
        last = s.scalars(
            select(ChannelHistory).where(ChannelHistory.channel == "canary").order_by(ChannelHistory.id.desc())
        ).first()
        assert (last.action, last.from_version, last.to_version, last.actor) == (
            "halt",
            bad,
            releases.v2,
            "system:telemetry",
        )
        events = {e.action: e for e in s.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id))}
        assert events["request.failed"].reason == decision.reason
        assert events["channel.halted"].after["request_failed"] is True
        notices = s.scalars(
            select(Notification).where(Notification.request_id == request_id, Notification.event == "release.halted")
        ).all()
        assert {(n.audience, n.channel) for n in notices} == {("internal", "slack"), ("customer", "email")}
        assert notices[0].context["to_version"] == releases.v2
        assert verify_chain(s).ok
    with world.client() as http:
        every = [
            http.get("/updates/canary/manifest.json", params={"client_id": f"ws-{i:04d}"}).json()["version"]
            for i in range(30)
        ]
        assert set(every) == {releases.v2}, "the halted base is no longer served to anyone"


def test_one_customer_cannot_halt_global_two_can_and_a_person_resumes_it(
    world, relreq, releases, fresh_base, settings, config, resumes_halted_channels
):
    """Many clients of one customer never halt `global`; a second customer's client does, and the halt names
    the clients, their organisations and the files. Publishing then waits for a release manager's resume."""
    first, second = world.customer(), world.customer()
    request_id, bad, _ = _releasing_base(world, settings, config, fresh_base, first)
    with db.transaction(world.sessions) as s:
        put(s, "global", releases.v2, bad, config=config)
    fleet = [enrol(world, world.user("customer", first)) for _ in range(8)]
    other_user = world.user("customer", second)
    with world.client() as http:
        for i, client in enumerate(fleet):  # 8 clients, 16 (client, file) pairs on allowlisted/known-clean files
            body = batch(detection(bad, releases.fp_sha256), detection(bad, f"{i:064x}", rule="generic.Noise"))
            assert http.post(REPORT, json=body, headers=client.headers).status_code == 202
    assert _evaluate(world, "global", config) is None, "one organisation cannot halt a channel everyone reads"

    witness = enrol(world, other_user)
    with world.client() as http:
        body = batch(detection(bad, releases.fp_sha256))
        assert http.post(REPORT, json=body, headers=witness.headers).status_code == 202
    assert _evaluate(world, "global", config) is not None
    with world.client(other_user) as http:  # revoked: what it reported no longer counts
        assert http.delete(f"/api/v1/clients/{witness.id}").status_code == 200
    assert _evaluate(world, "global", config) is None
    second_witness = enrol(world, other_user)
    with world.client() as http:
        body = batch(detection(bad, releases.fp_sha256))
        assert http.post(REPORT, json=body, headers=second_witness.headers).status_code == 202

    with db.transaction(world.sessions) as s:
        now = db_now(s)
        decision = telemetry.evaluate_halt(s, channel="global", config=config, now=now)
        evidence = decision.evidence
        named = {(c["client_id"], c["organisation"]) for c in evidence["clients"]}
        assert named == {(c.id, first) for c in fleet} | {(second_witness.id, second)}
        assert witness.id not in str(evidence), "a revoked client is no evidence"
        assert evidence["organisations"] == sorted([first, second])
        assert evidence["files"] == [releases.fp_sha256], "only the files that caused the halt"
        assert evidence["thresholds"] == {"min_clients": 3, "min_organisations": 2}
        stopping.halt(s, channel="global", decision=decision, config=config, now=now)
    with db.transaction(world.sessions) as s:
        pointer = s.get(ChannelPointer, "global")
        assert (pointer.version, pointer.halted_version, pointer.halted_reason) == (releases.v2, bad, decision.reason)
        halted = s.scalars(  # the newest: other tests may have halted the shared channel before
            select(AuditEvent)
            .where(AuditEvent.entity_id == "global", AuditEvent.action == "channel.halted")
            .order_by(AuditEvent.seq)
        ).all()[-1]
        assert {c["client_id"] for c in halted.after["evidence"]["clients"]} == {c for c, _ in named}
        assert halted.after["evidence"]["files"] == [releases.fp_sha256] and halted.after["halted_version"] == bad
        notices = {
            n.audience: n
            for n in s.scalars(
                select(Notification).where(
                    Notification.request_id == request_id, Notification.event == "release.halted"
                )
            )
        }
        assert notices["internal"].context["evidence"]["organisations"] == sorted([first, second])
        assert "evidence" not in notices["customer"].context, "other customers' machines are not the customer's"
        with pytest.raises(Conflict, match="admin or release_manager resumes it"):
            put(s, "global", bad, config=config)
        assert telemetry.evaluate_halt(s, channel="global", config=config, now=db_now(s)) is None

    engineer, manager = world.user("build_engineer"), world.user("release_manager")
    code, _, err = relreq("channels", "resume", "global", "--reason", "looks fine to me", token=engineer.token)
    assert code == 1 and "may not resume halted channels" in err and "403" in err
    with world.client(manager) as http:
        assert http.post("/api/v1/channels/global/resume", json={"reason": ""}).status_code == 422
    code, out, err = relreq(
        "channels", "resume", "global", "--reason", "fixed base is ready", "--json", token=manager.token
    )
    assert code == 0, err
    assert json.loads(out)["halted_at"] is None and json.loads(out)["version"] == releases.v2
    code, _, err = relreq("channels", "resume", "global", "--reason", "again", token=manager.token)
    assert code == 1 and "is not halted" in err
    with db.transaction(world.sessions) as s:
        resumed = s.scalars(
            select(AuditEvent).where(AuditEvent.entity_id == "global", AuditEvent.action == "channel.resumed")
        ).all()[-1]
        assert (resumed.actor_id, resumed.reason, resumed.request_id) == (manager.id, "fixed base is ready", request_id)
        assert resumed.before["halted_version"] == bad and resumed.after["halted_version"] is None
        assert telemetry.evaluate_halt(s, channel="global", config=config, now=db_now(s)) is None
        assert put(s, "global", bad, config=config).version == bad  # publishing works again
        assert verify_chain(s).ok


def test_a_customer_channel_needs_only_that_customer_but_still_several_clients(session, build, releases, config):
    """Only one organisation reads a customer's channel: its own clients may halt it, but never one of them."""
    customer = build.customer()
    user = build.person("customer", customer_id=customer.id)
    channel = f"customer-{customer.id}"
    put(session, channel, releases.v1, releases.v2, config=config)
    later = session.get(ChannelPointer, channel).published_at + timedelta(minutes=10)
    clean = [uuid.uuid4().hex * 2 for _ in range(5)]
    session.add_all(KnownCleanFile(sha256=sha, reason="in-house tool", added_by="tests") for sha in clean)
    lone, *others = [clients.enrol(session, person=user, data=ClientEnrolIn())[0] for _ in range(3)]

    def report(client, *shas: str) -> None:
        body = DetectionBatch(**batch(*[detection(releases.v2, sha) for sha in shas]))
        telemetry.record_detections(session, client=client, batch=body, config=config)

    report(lone, *clean)
    assert telemetry.evaluate_halt(session, channel=channel, config=config, now=later) is None, "5 pairs, 1 client"
    report(others[0], releases.fp_sha256)
    assert telemetry.evaluate_halt(session, channel=channel, config=config, now=later) is None, "2 clients"
    report(others[1], releases.fp_sha256)
    decision = telemetry.evaluate_halt(session, channel=channel, config=config, now=later)
    assert decision is not None and decision.evidence["thresholds"] == {"min_clients": 3, "min_organisations": 1}
    assert decision.evidence["organisations"] == [customer.id]
    assert decision.evidence["files"] == sorted([*clean, releases.fp_sha256])


def test_a_rule_firing_on_many_clients_is_a_spike(session, build, releases, fresh_base, settings, config):
    new = registry.register_release(
        session,
        actor=SYSTEM,
        bundle_dir=fresh_base,
        store=LocalStore(settings.artifacts_dir),
        request_id=None,
        public_key=registry.server_public_key(settings.data_dir),
    ).version
    put(session, "canary", releases.v2, new, config=config)
    pointer = session.get(ChannelPointer, "canary")
    policy = config.stages.telemetry
    rule = f"generic.Spike_{uuid.uuid4().hex[:8]}"
    people = [build.person("customer", customer_id=build.customer().id) for _ in range(2)]
    enrolled = lambda i: clients.enrol(session, person=people[i % 2], data=ClientEnrolIn())[0]  # noqa: E731
    before = 4  # the same rule on other bases just before: 4 clients × factor 5 = 20 is the bar
    session.add_all(
        TelemetryDetection(
            client_id=enrolled(i).id,
            base_version=releases.v2,
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
            body = DetectionBatch(**batch(detection(new, f"{i + 100:064x}", rule=rule)))
            telemetry.record_detections(session, client=enrolled(i), batch=body, config=config)

    report(int(policy.spike_factor * before))
    assert telemetry.evaluate_halt(session, channel="canary", config=config, now=later) is None
    report(1)
    decision = telemetry.evaluate_halt(session, channel="canary", config=config, now=later)
    assert decision is not None and decision.evidence["spikes"] == [
        {"rule": rule, "clients": 21, "clients_before": before}
    ]
    assert f"sharp rise of {rule} (21 clients, 4 before)" in decision.reason
    assert decision.evidence["clients_total"] == 21 and len(decision.evidence["files"]) == 20


def test_revert_is_announced_to_the_team_and_the_customer(session, world, fresh_base, settings, config, releases):
    customer = world.customer()
    submitter = world.user("customer", customer)
    request = release_request_in(
        session, customer_id=customer, submitter_id=submitter.id, config=config, status=Status.releasing
    )
    release = registry.register_release(
        session,
        actor=SYSTEM,
        bundle_dir=fresh_base,
        request_id=request.id,
        store=LocalStore(settings.artifacts_dir),
        public_key=registry.server_public_key(settings.data_dir),
    )
    channel = f"customer-{customer}"
    put(session, channel, releases.v1, release.version, config=config)
    stopping.revert(
        session, actor=SYSTEM, channel=channel, to_version=None, reason="customer reports slowdown", config=config
    )
    notices = session.scalars(
        select(Notification).where(Notification.request_id == request.id, Notification.event == "release.reverted")
    ).all()
    assert {n.audience for n in notices} == {"internal", "customer"}
    assert notices[0].context["reason"] == "customer reports slowdown"
    # the request is untouched by a manual revert: people decide what happens next
    assert session.get(ReleaseRequest, request.id).status == Status.releasing


def test_only_release_managers_and_admins_resume(session, build, releases, config):
    channel = f"customer-{build.customer().id}"
    put(session, channel, releases.v1, config=config)
    for role in ("build_engineer", "emergency", "tam"):
        with pytest.raises(Forbidden, match="may not resume"):
            stopping.resume(session, person=build.person(role), channel=channel, reason="why not")
    with pytest.raises(Conflict, match="is not halted"):
        stopping.resume(session, person=build.person("admin"), channel=channel, reason="nothing to do")
