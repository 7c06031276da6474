"""Phone intake: a call logged in one step (API, CLI, console) with the caller, the number to call back and
when the call came in; the SLA clock starts at the call."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from tests.api.conftest import new_request
from tests.web.test_portal import REQUEST_ID, api_show, sign_in_http

CALL = {"caller_name": "Ivan Petrov, SOC", "callback_number": "+7 (495) 123-45-67 ext. 12"}


def test_a_logged_call_keeps_its_caller_and_starts_the_clock_at_the_call(world, cast):
    called_at = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0)
    created = new_request(world, cast.tam, cast.customer_id, received_at=called_at.isoformat(), **CALL)
    assert (created["caller_name"], created["callback_number"]) == (CALL["caller_name"], CALL["callback_number"])
    assert datetime.fromisoformat(created["received_at"]) == called_at
    # severity 1: 30 minutes on the 24x7 clock, counted from the call, not from when it was typed in
    assert datetime.fromisoformat(created["sla"]["started_at"]) == called_at
    assert datetime.fromisoformat(created["sla"]["due_at"]) == called_at + timedelta(minutes=30)
    with world.client(cast.customer_user) as c:  # the customer's own call: they see who called
        timeline = c.get(f"/api/v1/requests/{created['id']}/timeline").json()
    submitted = next(e for e in timeline if e["action"] == "request.submitted")
    assert submitted["after"]["caller_name"] == CALL["caller_name"]
    assert submitted["after"]["callback_number"] == CALL["callback_number"]


def test_call_fields_are_checked_and_belong_to_phone_intake_only(world, cast):
    body = {"customer_id": cast.customer_id, "kind": "false_positive", "severity": 2, "title": "Payroll"}
    with world.client(cast.tam) as c:
        answer = c.post("/api/v1/requests", json={**body, "channel": "phone", **CALL, "callback_number": "call me"})
        assert answer.status_code == 422
        assert "callback_number" in answer.text
        answer = c.post("/api/v1/requests", json={**body, "channel": "tam", **CALL})
        assert answer.status_code == 422
        assert "for channel 'phone' only" in answer.text


def test_relreq_submit_logs_a_call(world, cast, relreq):
    called_at = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    code, out, err = relreq(
        "submit",
        *("--customer", cast.customer_id, "--kind", "false-positive", "--severity", "2", "--channel", "phone"),
        *("--title", "Scanner blocks the payroll", "--caller", "Olga", "--callback", "+7 495 000-00-01"),
        *("--received-at", called_at, "--json"),
        token=cast.tam.token,
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["channel"] == "phone" and shown["caller_name"] == "Olga"
    assert shown["callback_number"] == "+7 495 000-00-01" and shown["received_at"].startswith(called_at[:19])


def test_the_console_logs_a_call_in_the_staff_members_zone(world, cast):
    me = sign_in_http(world, cast.tam)  # the TAM's zone is UTC unless set: the form says which
    form = me.page("/requests/new").text
    assert "A phone call I am logging" in form and 'name="callback_number"' in form
    base = {"customer_id": cast.customer_id, "kind": "false_positive", "severity": "2", "title": "Call at night"}
    refused = me.post("/requests/new", {**base, "intake": "phone", "caller_name": "Olga", "callback_number": ""})
    assert refused.status_code == 422 and "Enter a number to call back" in refused.text
    assert 'value="Olga"' in refused.text  # nothing typed is lost
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    refused = me.post("/requests/new", {**base, "intake": "phone", **CALL, "received_at": future})
    assert refused.status_code == 422 and "The call must have come in before now" in refused.text
    called_at = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    answer = me.post(
        "/requests/new",
        {**base, "intake": "phone", **CALL, "received_at": called_at.strftime("%Y-%m-%dT%H:%M")},
    )
    assert answer.status_code == 303, answer.text
    filed = api_show(world, cast.tam, re.search(REQUEST_ID, answer.headers["location"]).group(0))
    assert filed["channel"] == "phone" and filed["caller_name"] == CALL["caller_name"]
    assert datetime.fromisoformat(filed["received_at"]) == called_at


def test_a_call_time_the_zone_skips_is_refused_not_moved(world, cast):
    berlin = world.user("tam", tam_for=[cast.customer_id], timezone="Europe/Berlin")
    me = sign_in_http(world, berlin)
    assert "Europe/Berlin" in me.page("/requests/new").text  # the form names the zone it reads
    base = {"customer_id": cast.customer_id, "kind": "false_positive", "severity": "2", "title": "Call", **CALL}
    refused = me.post("/requests/new", {**base, "intake": "phone", "received_at": "2026-03-29T02:30"})
    assert refused.status_code == 422 and "Enter when the call came in" in refused.text
