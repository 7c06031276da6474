"""Requests over real HTTP: intake, visibility, triage, timeline, validation."""

from __future__ import annotations

import pytest

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
