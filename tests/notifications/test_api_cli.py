"""Preferences and the outbox over the real API and the `relreq notifications` commands; triage notices."""

from __future__ import annotations

import json

from sqlalchemy import update

from release_requests import db
from release_requests.notifications.models import Notification
from tests.conftest import last_line


def submit(world, user, customer_id: str, severity: int = 1) -> str:
    body = {
        "customer_id": customer_id,
        "kind": "false_positive",
        "severity": severity,
        "channel": "phone",
        "title": "Payroll app flagged",
    }
    with world.client(user) as c:
        response = c.post("/api/v1/requests", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_preferences_api_validation_and_access(world):
    customer = world.customer(slack_channel="acme-support", language="ru")
    other = world.customer()
    own, stranger = world.user("customer", customer), world.user("customer", other)
    tam, triage, admin = world.user("tam", tam_for=[customer]), world.user("triage"), world.user("admin")
    path = f"/api/v1/customers/{customer}/notification-preferences"

    with world.client(own) as c:
        shown = c.get(path).json()
        assert shown["slack_enabled"] and shown["email_enabled"] and shown["effective_language"] == "ru"
        assert shown["effective_email_recipients"] == [f"soc-{customer.removeprefix('cust-')}@example.com"]
        changed = c.put(
            path,
            json={
                "slack_enabled": False,
                "email_recipients": ["Night.Shift@Example.com"],
                "language": "en",
                "quiet_hours": "22:00-08:00",
            },
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["effective_email_recipients"] == ["Night.Shift@example.com"]
        assert changed.json()["effective_language"] == "en"
        for bad in (
            {"email_recipients": ["not-an-address"]},
            {"quiet_hours": "25:00-08:00"},
            {"quiet_hours": "08:00-08:00"},
            {"language": "de"},
            {"sms": True},
        ):
            assert c.put(path, json=bad).status_code == 422, bad
    with world.client(stranger) as c:  # another customer's users do not even learn it exists
        assert c.get(path).status_code == 404 and c.put(path, json={}).status_code == 404
    with world.client(triage) as c:  # staff may read, only the TAM, admins and the customer may change
        assert c.get(path).status_code == 200 and c.put(path, json={}).status_code == 403
    with world.client(tam) as c:
        assert c.put(path, json={"quiet_hours": None}).json()["quiet_hours"] is None
    with world.client(admin) as c:
        assert c.put(path, json={}).json()["slack_enabled"] is True


def test_preferences_decide_recipients_and_language(world):
    customer = world.customer(slack_channel="prefs-support", language="ru")
    admin, tam = world.user("admin"), world.user("tam", tam_for=[customer])
    with world.client(admin) as c:
        prefs = {"slack_enabled": False, "email_recipients": ["a@example.com", "b@example.com"], "language": "en"}
        c.put(f"/api/v1/customers/{customer}/notification-preferences", json=prefs)
    request_id = submit(world, tam, customer)
    with world.client(admin) as c:
        rows = c.get("/api/v1/notifications", params={"request_id": request_id}).json()
    customer_rows = sorted((r["channel"], r["recipient"], r["language"]) for r in rows if r["audience"] == "customer")
    assert customer_rows == [("email", "a@example.com", "en"), ("email", "b@example.com", "en")]


def test_triage_decisions_tell_the_customer(world):
    customer = world.customer(slack_channel="triage-support")
    tam, triage, admin = world.user("tam", tam_for=[customer]), world.user("triage"), world.user("admin")
    asked, accepted = submit(world, tam, customer), submit(world, tam, customer)
    with world.client(triage) as c:
        c.post(f"/api/v1/requests/{asked}/triage", json={"decision": "needs_info", "question": "Which build?"})
        c.post(f"/api/v1/requests/{accepted}/triage", json={"decision": "accept", "note": "reproduced"})
    with world.client(admin) as c:
        needs = c.get("/api/v1/notifications", params={"request_id": asked}).json()
        done = c.get("/api/v1/notifications", params={"request_id": accepted}).json()
    assert {(r["event"], r["channel"]) for r in needs if r["event"] == "request.needs_info"} == {
        ("request.needs_info", "slack"),
        ("request.needs_info", "email"),
    }
    assert {r["event"] for r in done if r["audience"] == "customer"} == {"request.received", "request.triaged"}
    with world.client(tam) as c:
        timeline = c.get(f"/api/v1/requests/{asked}/timeline").json()
    assert any(e["action"] == "notification.queued" and e["after"]["event"] == "request.needs_info" for e in timeline)


def test_cli_prefs_list_and_retry(world, relreq, app_engine):
    customer = world.customer(slack_channel="cli-support")
    admin, tam, triage = world.user("admin"), world.user("tam", tam_for=[customer]), world.user("triage")
    code, out, err = relreq(
        "notifications",
        "prefs",
        "set",
        customer,
        "--no-slack",
        "--recipient",
        "x@example.com",
        "--recipient",
        "y@example.com",
        "--language",
        "ru",
        "--quiet-hours",
        "21:30-07:00",
        "--json",
        token=tam.token,
    )
    assert code == 0, err
    prefs = json.loads(out)
    assert (prefs["slack_enabled"], prefs["email_recipients"], prefs["language"], prefs["quiet_hours"]) == (
        False,
        ["x@example.com", "y@example.com"],
        "ru",
        "21:30-07:00",
    )
    code, out, _ = relreq(
        "notifications", "prefs", "set", customer, "--email", "--contacts", "--language", "default", token=tam.token
    )
    assert code == 0 and "customer default" in out and "21:30-07:00" in out
    code, out, _ = relreq("notifications", "prefs", "show", customer, token=tam.token)
    assert code == 0 and "quiet hours" in out
    code, _, err = relreq("notifications", "prefs", "set", customer, "--quiet-hours", "late", token=tam.token)
    assert code != 0 and "quiet_hours" in last_line(err)

    request_id = submit(world, tam, customer)
    with db.transaction(db.make_sessionmaker(app_engine)) as s:
        dead_id = s.scalars(
            update(Notification)
            .where(Notification.request_id == request_id, Notification.audience == "customer")
            .values(status="dead", attempts=6, last_error="SMTP login refused")
            .returning(Notification.id)
        ).first()
    code, out, _ = relreq("notifications", "list", "--request", request_id, "--status", "dead", token=triage.token)
    assert code == 0 and "SMTP login refused" in out
    code, _, err = relreq("notifications", "retry", dead_id, token=triage.token)
    assert code != 0 and "may not retry" in err
    code, out, _ = relreq("notifications", "retry", dead_id, token=admin.token)
    assert code == 0 and f"{dead_id}: queued" in out
    code, _, err = relreq("notifications", "retry", dead_id, token=admin.token)
    assert code != 0 and "only dead or failed" in err
    code, out, _ = relreq("timeline", request_id, "--json", token=admin.token)
    assert any(e["action"] == "notification.retried" for e in json.loads(out))
