"""Requests over real HTTP: intake, visibility, triage, timeline, validation."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from release_requests import db
from release_requests.errors import InvalidInput
from release_requests.people.models import Person
from release_requests.requests.schemas import SubmitRequest
from release_requests.workflows import intake
from tests.api.conftest import new_request


def test_tam_files_critical_phone_request_and_triage_accepts_it(world, cast):
    created = new_request(world, cast.tam, cast.customer_id, detection_name="Trojan.Win32.Generic")
    assert created["id"].startswith("RR-20")
    assert created["status"] == "submitted" and created["version"] == 1
    assert created["channel"] == "phone" and created["severity"] == 1
    assert "accepted" in created["allowed_transitions"]

    with world.client(cast.triage) as c:
        accepted = c.post(f"/api/v1/requests/{created['id']}/triage", json={"decision": "accept", "version": 1})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["version"] == 2
    assert accepted.json()["assignee"].startswith(cast.triage.name)

    with world.client(cast.customer_user) as c:
        events = c.get(f"/api/v1/requests/{created['id']}/timeline").json()
    events = [e for e in events if e["entity"].startswith("request:")]
    assert [e["action"] for e in events] == ["request.submitted", "request.routed", "request.accepted"]
    assert events[2]["before"]["status"] == "submitted" and events[2]["after"]["status"] == "accepted"
    assert cast.triage.name in events[2]["actor"]


def test_customer_files_for_own_customer_by_default(world, cast):
    created = new_request(world, cast.customer_user, None, channel="portal", severity=3)
    assert created["customer_id"] == cast.customer_id


@pytest.mark.parametrize(
    ("who", "expected"),
    [("customer_user", 200), ("tam", 200), ("triage", 200), ("other_customer_user", 404)],
)
def test_visibility_of_a_request(world, cast, who, expected):
    created = new_request(world, cast.tam, cast.customer_id)
    with world.client(getattr(cast, who)) as c:
        assert c.get(f"/api/v1/requests/{created['id']}").status_code == expected
        assert c.get(f"/api/v1/requests/{created['id']}/timeline").status_code == expected


def test_tam_of_another_customer_sees_nothing(world, cast):
    created = new_request(world, cast.tam, cast.customer_id)
    stranger = world.user("tam", tam_for=[cast.other_customer_id])
    with world.client(stranger) as c:
        assert c.get(f"/api/v1/requests/{created['id']}").status_code == 404
        listed = c.get("/api/v1/requests", params={"customer_id": cast.customer_id}).json()
        assert listed["total"] == 0
        refused = c.post(
            "/api/v1/requests",
            json={
                "customer_id": cast.customer_id,
                "kind": "false_positive",
                "severity": 2,
                "channel": "tam",
                "title": "x",
            },
        )
    assert refused.status_code == 422 and refused.json()["field"] == "customer_id"


def test_list_filters_and_pagination(world, cast):
    ids = [new_request(world, cast.tam, cast.customer_id, severity=s)["id"] for s in (1, 2, 2, 4)]
    with world.client(cast.triage) as c:
        page = c.get("/api/v1/requests", params={"customer_id": cast.customer_id, "limit": 2}).json()
        assert page["total"] == 4 and len(page["items"]) == 2
        assert [r["id"] for r in page["items"]] == ids[::-1][:2]
        second = c.get("/api/v1/requests", params={"customer_id": cast.customer_id, "limit": 2, "offset": 2})
        assert [r["id"] for r in second.json()["items"]] == ids[::-1][2:]
        sev2 = c.get("/api/v1/requests", params={"customer_id": cast.customer_id, "severity": 2}).json()
        assert sorted(r["id"] for r in sev2["items"]) == sorted(ids[1:3])
        both = c.get(
            "/api/v1/requests",
            params=[
                ("customer_id", cast.customer_id),
                ("status", "submitted"),
                ("status", "accepted"),
                ("kind", "false_positive"),
            ],
        )
        assert both.json()["total"] == 4
        bad = c.get("/api/v1/requests", params={"status": "nonsense"})
    assert bad.status_code == 422 and bad.json()["field"] == "status"


def test_needs_info_round_trip_and_other_decisions(world, cast):
    first = new_request(world, cast.tam, cast.customer_id)
    second = new_request(world, cast.tam, cast.customer_id)
    third = new_request(world, cast.tam, cast.customer_id)
    with world.client(cast.triage) as t, world.client(cast.customer_user) as cu:
        asked = t.post(
            f"/api/v1/requests/{first['id']}/triage",
            json={"decision": "needs_info", "question": "Which build of the payroll app?"},
        )
        assert asked.json()["status"] == "needs_info"
        answered = cu.post(f"/api/v1/requests/{first['id']}/answers", json={"message": "Build 4.2.1"})
        assert answered.status_code == 200 and answered.json()["status"] == "submitted"
        dup = t.post(
            f"/api/v1/requests/{second['id']}/triage", json={"decision": "duplicate", "duplicate_of": first["id"]}
        )
        assert dup.json()["status"] == "duplicate" and dup.json()["duplicate_of"] == first["id"]
        rejected = t.post(
            f"/api/v1/requests/{third['id']}/triage", json={"decision": "reject", "reason": "not a detection problem"}
        )
        assert rejected.json()["status"] == "rejected"
        timeline = cu.get(f"/api/v1/requests/{first['id']}/timeline").json()
    timeline = [e for e in timeline if e["entity"].startswith("request:")]
    assert [e["action"] for e in timeline] == [
        "request.submitted",
        "request.routed",
        "request.needs_info",
        "request.answered",
    ]
    assert timeline[2]["after"]["question"] == "Which build of the payroll app?"


def test_accept_can_change_severity_and_assign_an_engineer(world, cast):
    created = new_request(world, cast.tam, cast.customer_id, severity=2)
    with world.client(cast.triage) as c:
        body = {"decision": "accept", "severity": 1, "assignee": str(cast.build_engineer.id), "note": "outage"}
        accepted = c.post(f"/api/v1/requests/{created['id']}/triage", json=body).json()
    assert accepted["severity"] == 1
    assert accepted["assignee"].startswith(cast.build_engineer.name)


def test_illegal_transition_is_409_listing_allowed_states(world, cast):
    created = new_request(world, cast.tam, cast.customer_id)
    with world.client(cast.triage) as c:
        c.post(f"/api/v1/requests/{created['id']}/triage", json={"decision": "reject", "reason": "no"})
        again = c.post(f"/api/v1/requests/{created['id']}/triage", json={"decision": "accept"})
    assert again.status_code == 409
    assert again.json()["error"] == "illegal_transition"
    assert again.json()["allowed"] == []
    assert "rejected" in again.json()["message"]


def test_stale_version_is_409_and_changes_nothing(world, cast):
    created = new_request(world, cast.tam, cast.customer_id)
    with world.client(cast.triage) as c:
        stale = c.post(f"/api/v1/requests/{created['id']}/triage", json={"decision": "accept", "version": 7})
        assert stale.status_code == 409 and stale.json()["error"] == "stale_version"
        assert c.get(f"/api/v1/requests/{created['id']}").json()["status"] == "submitted"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"severity": 0}, "severity"),
        ({"severity": 5}, "severity"),
        ({"kind": "virus"}, "kind"),
        ({"channel": "fax"}, "channel"),
        ({"title": "   "}, "title"),
        ({"sample_sha256": ["abc123"]}, "sample_sha256.0"),
        ({"colour": "red"}, "colour"),
        ({"received_at": "2026-01-01T10:00:00"}, "received_at"),
        ({"received_at": "2020-01-01T10:00:00Z"}, "received_at"),
        ({"received_at": "2099-01-01T10:00:00Z"}, "received_at"),
    ],
)
def test_bad_intake_is_422_naming_the_field_and_creates_nothing(world, cast, change, field):
    body = {
        "customer_id": cast.customer_id,
        "kind": "false_positive",
        "severity": 1,
        "channel": "phone",
        "title": "Payroll flagged",
        **change,
    }
    with world.client(cast.tam) as c:
        response = c.post("/api/v1/requests", json=body)
        total = c.get("/api/v1/requests", params={"customer_id": cast.customer_id}).json()["total"]
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body.get("field") or body["fields"][0]["field"]) == field
    assert total == 0


def test_unknown_customer_is_422(world, cast):
    with world.client(cast.admin) as c:
        response = c.post(
            "/api/v1/requests",
            json={
                "customer_id": "no-such-customer",
                "kind": "false_positive",
                "severity": 1,
                "channel": "phone",
                "title": "x",
            },
        )
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_input",
        "message": "unknown customer 'no-such-customer'",
        "field": "customer_id",
    }


def test_authentication_and_roles(world, cast):
    created = new_request(world, cast.tam, cast.customer_id)
    with world.client() as anonymous:
        assert anonymous.get("/api/v1/requests").status_code == 401
        wrong = anonymous.get("/api/v1/requests", headers={"Authorization": "Bearer rr_not-a-token"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert anonymous.get("/healthz").json()["status"] == "ok"  # + "notifications": each transport's state
    with world.client(cast.customer_user) as c:
        refused = c.post(f"/api/v1/requests/{created['id']}/triage", json={"decision": "accept"})
    assert refused.status_code == 403 and "triage" in refused.json()["message"]
    with world.client(cast.build_engineer) as c:
        filed = c.post(
            "/api/v1/requests",
            json={
                "customer_id": cast.customer_id,
                "kind": "false_positive",
                "severity": 1,
                "channel": "phone",
                "title": "x",
            },
        )
    assert filed.status_code == 403


def test_triage_decision_validation(world, cast):
    created = new_request(world, cast.tam, cast.customer_id)
    url = f"/api/v1/requests/{created['id']}/triage"
    with world.client(cast.triage) as c:
        assert c.post(url, json={"decision": "maybe"}).status_code == 422
        no_reason = c.post(url, json={"decision": "reject"})
        assert no_reason.status_code == 422 and "reason" in no_reason.json()["message"]
        self_dup = c.post(url, json={"decision": "duplicate", "duplicate_of": created["id"]})
        assert self_dup.status_code == 422 and self_dup.json()["field"] == "duplicate_of"
        missing = c.post(url, json={"decision": "duplicate", "duplicate_of": "RR-2026-999999"})
        assert missing.status_code == 422
        customer_assignee = c.post(url, json={"decision": "accept", "assignee": str(cast.customer_user.id)})
        assert customer_assignee.status_code == 422
        assert c.get(f"/api/v1/requests/{created['id']}").json()["version"] == 1


def test_openapi_is_published(world):
    with world.client() as c:
        spec = c.get("/openapi.json").json()
    assert "/api/v1/requests/{request_id}/triage" in spec["paths"]
    assert "/api/v1/requests/{request_id}/samples" in spec["paths"]


def test_a_duplicate_keeps_its_reason_in_the_timeline(world, cast):
    first = new_request(world, cast.tam, cast.customer_id)
    second = new_request(world, cast.tam, cast.customer_id)
    body = {"decision": "duplicate", "duplicate_of": first["id"], "reason": "same payroll.exe hash"}
    with world.client(cast.triage) as c:
        assert c.post(f"/api/v1/requests/{second['id']}/triage", json=body).json()["status"] == "duplicate"
        events = c.get(f"/api/v1/requests/{second['id']}/timeline").json()
    marked = next(e for e in events if e["action"] == "request.duplicate")
    assert marked["reason"] == "same payroll.exe hash"


def test_staff_assign_an_open_request_to_an_engineer_and_it_is_audited(world, cast):
    created = new_request(world, cast.tam, cast.customer_id)
    url = f"/api/v1/requests/{created['id']}/assignee"
    with world.client(cast.triage) as t:
        t.post(f"/api/v1/requests/{created['id']}/triage", json={"decision": "accept"})
        assigned = t.post(url, json={"assignee": str(cast.build_engineer.id), "version": 2})
        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["assignee"].startswith(cast.build_engineer.name)
        again = t.post(url, json={"assignee": str(cast.build_engineer.id)})
        assert again.status_code == 422 and again.json()["field"] == "assignee"
        customer = t.post(url, json={"assignee": str(cast.customer_user.id)})
        assert customer.status_code == 422 and "not vendor staff" in customer.json()["message"]
        nobody = t.post(url, json={"assignee": "nobody@example.com"})
        assert nobody.status_code == 422 and nobody.json()["field"] == "assignee"
        stale = t.post(url, json={"assignee": str(cast.tam.id), "version": 2})
        assert stale.status_code == 409
        events = t.get(f"/api/v1/requests/{created['id']}/timeline").json()
    with world.client(cast.build_engineer) as b:
        refused = b.post(url, json={"assignee": str(cast.build_engineer.id)})
    assert refused.status_code == 403 and refused.json()["action"] == "request.assign"
    with world.client(cast.other_customer_user) as o:
        assert o.post(url, json={"assignee": str(cast.triage.id)}).status_code == 403  # the table, before visibility
    assigned_event = next(e for e in events if e["action"] == "request.assigned")
    assert assigned_event["after"]["assignee"].startswith(cast.build_engineer.name)
    assert assigned_event["actor"].startswith(cast.triage.name)


# --------------------------------------------------------------------------------------------------
# submission_key: a retried or doubled submission files one request


def _submit(world, user, body: dict):
    with world.client(user) as c:
        return c.post("/api/v1/requests", json=body)


def _keyed_body(customer_id: str, key: str, **overrides) -> dict:
    body = {"customer_id": customer_id, "kind": "false_positive", "severity": 2, "channel": "phone", "title": "Retry"}
    return {**body, "submission_key": key, **overrides}


def test_the_same_key_sent_twice_files_one_request_and_one_audit_event(world, cast):
    key = f"key-{uuid.uuid4().hex}"
    first = _submit(world, cast.tam, _keyed_body(cast.customer_id, key, sample_sha256=["a" * 64]))
    again = _submit(world, cast.tam, _keyed_body(cast.customer_id, key, title="Retry", sample_sha256=["b" * 64]))
    assert first.status_code == again.status_code == 201, again.text  # a replay answers like the filing did
    assert again.json()["id"] == first.json()["id"]
    assert [s["sha256"] for s in again.json()["samples"]] == ["a" * 64]  # the replay's body files nothing
    with world.client(cast.tam) as c:
        events = c.get(f"/api/v1/requests/{first.json()['id']}/timeline").json()
        listed = c.get("/api/v1/requests", params={"customer_id": cast.customer_id}).json()
    actions = [e["action"] for e in events]
    assert actions.count("request.submitted") == 1 and actions.count("request.routed") == 1
    assert listed["total"] == 1

    # a key is one person's: another person's same key is another filing; without a key nothing is held back
    other = _submit(world, cast.admin, _keyed_body(cast.customer_id, key))
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    plain = [_submit(world, cast.tam, _keyed_body(cast.customer_id, None)) for _ in range(2)]
    assert len({answer.json()["id"] for answer in plain}) == 2
    bad = _submit(world, cast.tam, _keyed_body(cast.customer_id, "short"))
    assert bad.status_code == 422 and "submission_key" in bad.text


def test_two_threads_sending_one_key_at_once_file_one_request(world, cast):
    keys = [f"race-{uuid.uuid4().hex}" for _ in range(3)]
    answers: dict[str, list] = {key: [] for key in keys}
    for key in keys:
        start = threading.Barrier(2)

        def send(key=key, start=start):
            with world.client(cast.customer_user) as c:
                start.wait()
                answers[key].append(c.post("/api/v1/requests", json=_keyed_body(None, key, channel="portal")))

        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    for key in keys:
        assert [a.status_code for a in answers[key]] == [201, 201], [a.text for a in answers[key]]
        assert len({a.json()["id"] for a in answers[key]}) == 1
    with world.client(cast.customer_user) as c:
        assert c.get("/api/v1/requests").json()["total"] == len(keys)


def test_a_retry_whose_received_at_has_left_the_limit_since_gets_the_request_filed_then(world, cast, config):
    """A call logged near the back-dating limit whose answer was lost: its retry, now past the limit (or under a
    lower limit), is the same submission and gets its request; without the key the date is refused."""
    data = SubmitRequest(
        **_keyed_body(cast.customer_id, f"late-{uuid.uuid4().hex}", received_at=datetime.now(UTC) - timedelta(hours=2))
    )
    with db.transaction(world.sessions) as s:
        first = intake.file_request(s, actor=s.get(Person, cast.tam.id), data=data, config=config)
    requests = config.intake.requests.model_copy(update={"max_backdate_hours": 1})
    stricter = config.model_copy(update={"intake": config.intake.model_copy(update={"requests": requests})})
    with db.transaction(world.sessions) as s:
        again = intake.file_request(s, actor=s.get(Person, cast.tam.id), data=data, config=stricter)
        assert again.replayed and again.request.id == first.request.id
    unkeyed = data.model_copy(update={"submission_key": None})
    with pytest.raises(InvalidInput, match="received_at is more than 1 h ago"), db.transaction(world.sessions) as s:
        intake.file_request(s, actor=s.get(Person, cast.tam.id), data=unkeyed, config=stricter)


def test_a_key_racing_an_uncommitted_filing_waits_for_it_and_gets_that_request(world, cast, config):
    """The unique constraint settles the race a first look cannot: the second submission's insert waits for the
    first transaction, then gets its request (the SAVEPOINT rolls back only the refused insert)."""
    data = SubmitRequest(**_keyed_body(cast.customer_id, f"held-{uuid.uuid4().hex}"))
    second: dict = {}

    def submit_second():
        with db.transaction(world.sessions) as s:
            submission = intake.file_request(s, actor=s.get(Person, cast.tam.id), data=data, config=config)
            second.update(id=submission.request.id, replayed=submission.replayed)

    with db.transaction(world.sessions) as s:
        first = intake.file_request(s, actor=s.get(Person, cast.tam.id), data=data, config=config)
        thread = threading.Thread(target=submit_second)
        thread.start()
        deadline = time.monotonic() + 10
        waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted")
        with world.sessions() as watcher:  # the second insert waits on the first transaction's id
            while not watcher.scalar(waiting):
                assert time.monotonic() < deadline, "the second submission never waited for the first"
                watcher.rollback()
                time.sleep(0.02)
        assert not first.replayed and thread.is_alive()
        first_id = first.request.id
    thread.join(30)
    assert second == {"id": first_id, "replayed": True}
    with world.client(cast.tam) as c:
        actions = [e["action"] for e in c.get(f"/api/v1/requests/{first_id}/timeline").json()]
        assert c.get("/api/v1/requests", params={"customer_id": cast.customer_id}).json()["total"] == 1
    assert actions.count("request.submitted") == 1
