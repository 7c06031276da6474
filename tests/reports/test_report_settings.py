"""Report preferences, a person's own digest and the TAM's notes, through the API: who may read and change
them, what the defaults are, and precise refusals."""

from __future__ import annotations

from sqlalchemy import select

from release_requests import db
from release_requests.audit.models import AuditEvent


def _prefs(customer_id: str) -> str:
    return f"/api/v1/customers/{customer_id}/report-preferences"


def test_defaults_are_a_quarterly_pdf_to_the_contacts_and_a_digest_at_nine(world, cast):
    with world.client(cast.customer_user) as c:
        p = c.get(_prefs(cast.customer_id)).json()
    assert p["frequency"] == "quarterly" and p["format"] == "pdf" and p["digest_at"] == "09:00"
    assert p["digest_enabled"] is True and p["digest_slack"] is False and p["updated_at"] is None
    assert p["recipients"] == [] and p["effective_recipients"] and p["timezone"] == "Europe/Moscow"
    assert p["sections"] == ["summary", "sla", "response_times", "breaches", "releases", "healthcheck", "notes"]


def test_the_customer_and_its_tam_change_them_and_the_change_is_audited(world, cast):
    body = {
        "recipients": ["ciso@example.com"],
        "frequency": "monthly",
        "sections": ["summary", "breaches", "summary"],
        "language": "ru",
        "format": "csv",
        "digest_enabled": True,
        "digest_at": "07:30",
        "digest_slack": True,
    }
    with world.client(cast.customer_user) as c:
        r = c.put(_prefs(cast.customer_id), json=body)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["sections"] == ["summary", "breaches"] and p["effective_recipients"] == ["ciso@example.com"]
    assert p["effective_language"] == "ru" and p["updated_at"] is not None
    with world.client(cast.tam) as c:
        assert c.put(_prefs(cast.customer_id), json={**body, "frequency": "weekly"}).json()["frequency"] == "weekly"
    with db.transaction(world.sessions) as s:
        events = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "customer.report_preferences_changed", AuditEvent.entity_id == cast.customer_id)
            .order_by(AuditEvent.seq)
        ).all()
    assert [e.after["frequency"] for e in events] == ["monthly", "weekly"]
    assert events[0].before is None and events[1].before["frequency"] == "monthly"


def test_others_may_not_and_bad_values_are_named(world, cast):
    with world.client(cast.other_customer_user) as c:
        assert c.get(_prefs(cast.customer_id)).status_code == 404  # another customer's: not found, not forbidden
        assert c.put(_prefs(cast.customer_id), json={}).status_code == 404
    with world.client(cast.triage) as c:
        r = c.put(_prefs(cast.customer_id), json={})
    assert r.status_code == 403 and "report.preferences" in r.text
    with world.client(cast.tam) as c:
        for body, field in (
            ({"frequency": "daily"}, "frequency"),
            ({"format": "docx"}, "format"),
            ({"sections": ["gossip"]}, "sections"),
            ({"sections": []}, "sections"),
            ({"digest_at": "25:00"}, "digest_at"),
            ({"recipients": ["not an address"]}, "recipients"),
        ):
            r = c.put(_prefs(cast.customer_id), json=body)
            assert r.status_code == 422 and field in r.text, (body, r.text)


def test_a_person_sets_their_own_digest_time(world, cast):
    path = "/api/v1/reports/digest/subscription"
    with world.client(cast.tam) as c:
        assert c.get(path).json() | {"person_id": 0} == {
            "enabled": True,
            "send_at": "09:00",
            "person_id": 0,
            "timezone": "UTC",
            "default": True,
        }
        r = c.put(path, json={"enabled": True, "send_at": "08:15"})
        assert r.status_code == 200 and r.json()["send_at"] == "08:15" and r.json()["default"] is False
        assert c.put(path, json={"send_at": "8:15"}).status_code == 422
    with world.client(cast.build_engineer) as c:
        assert c.get(path).json()["enabled"] is False  # not a default recipient
    with world.client(cast.customer_user) as c:
        assert c.get(path).json()["timezone"] == "Europe/Moscow"  # a customer's user reads it in the company's zone


def test_the_tam_writes_notes_for_a_period_and_the_customer_reads_them(world, cast):
    note = {"customer_id": cast.customer_id, "period_start": "2026-10-01", "period_end": "2026-12-31"}
    with world.client(cast.tam) as c:
        r = c.post("/api/v1/reports/notes", json={**note, "body": "Two <b>false positives</b> in Q4 & fixed."})
        assert r.status_code == 201, r.text
        assert c.post("/api/v1/reports/notes", json={**note, "body": ""}).status_code == 422
        bad = c.post("/api/v1/reports/notes", json={**note, "period_start": "2027-01-01", "body": "x"})
        assert bad.status_code == 422 and "period_end" in bad.text
    with world.client(cast.customer_user) as c:
        assert c.post("/api/v1/reports/notes", json={**note, "body": "mine"}).status_code == 403
        notes = c.get("/api/v1/reports/notes", params={"customer_id": cast.customer_id}).json()
        assert [n["body"] for n in notes] == ["Two <b>false positives</b> in Q4 & fixed."]
        assert notes[0]["author"] == cast.tam.name
        outside = c.get(
            "/api/v1/reports/notes", params={"customer_id": cast.customer_id, "from": "2027-01-01", "to": "2027-03-31"}
        )
        assert outside.json() == []
    with world.client(cast.other_customer_user) as c:
        assert c.get("/api/v1/reports/notes", params={"customer_id": cast.customer_id}).status_code == 404


def test_notes_take_a_quarter_and_refuse_a_period_that_makes_no_sense(world, cast):
    notes = "/api/v1/reports/notes"
    with world.client(cast.tam) as c:
        r = c.post(notes, json={"customer_id": cast.customer_id, "quarter": "2027q1", "body": "Q1 plan."})
        assert r.status_code == 201 and (r.json()["period_start"], r.json()["period_end"]) == (
            "2027-01-01",
            "2027-03-31",
        )
        for body, field in (
            ({"quarter": "2027Q1", "period_start": "2027-01-01"}, "quarter"),
            ({"quarter": "9999Q4"}, "quarter"),
            ({"period_start": "2027-01-01"}, "period_end"),
            ({}, "period_start"),
        ):
            r = c.post(notes, json={"customer_id": cast.customer_id, "body": "x", **body})
            assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
        bad = c.get(notes, params={"customer_id": cast.customer_id, "from": "2027-02-01", "to": "2027-01-01"})
        assert bad.status_code == 422 and bad.json()["field"] == "to"
        q1 = c.get(notes, params={"customer_id": cast.customer_id, "quarter": "2027Q1"}).json()
        assert [n["body"] for n in q1] == ["Q1 plan."]
        assert (
            c.get("/api/v1/reports/customer", params={"customer_id": cast.customer_id, "quarter": "9999Q4"}).status_code
            == 422
        )
