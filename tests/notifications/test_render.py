"""Templates: every event in both languages renders a valid Block Kit message and both e-mail parts."""

from __future__ import annotations

import json

import pytest

from release_requests.config import load_config
from release_requests.notifications.render import LANGUAGES, RenderError, duration, render, slack_escape
from tests.conftest import REPO

REQUEST = {
    "id": "RR-2026-000042",
    "title": "Payroll <app> & co flagged",
    "status": "accepted",
    "severity": 3,
    "kind": "false_positive",
    "customer": "Moscow Bank",
    "customer_id": "moscow-bank",
}
SLA = {
    "met_at": None,
    "paused": False,
    "remaining_seconds": 7500,
    "overdue_seconds": None,
    "state": "on_track",
    "due_at_local": "2026-11-30 15:00 MSK (Europe/Moscow)",
}
URL = "http://127.0.0.1:8000/requests/RR-2026-000042"
SEVERITIES = load_config(REPO / "config").severity

# The context each event is queued with (what `notify` callers put in the outbox row).
EVENTS = {
    "request.received": {
        "title": REQUEST["title"],
        "severity": 3,
        "kind": "false_positive",
        "customer": "Moscow Bank",
        "owner": "Tanya TAM",
        "due_at": "2026-11-30T12:00:00+00:00",
        "due_at_local": SLA["due_at_local"],
        "routing_reason": "TAM available",
    },
    "request.triaged": {
        "decision": "accepted",
        "reason": None,
        "note": "looks real",
        "duplicate_of": None,
        "assignee": "Olga (triage)",
    },
    "request.needs_info": {"question": "Which product version?"},
    "request.response": {"message": "We reproduced it.", "from": "Olga"},
    "build.started": {},
    "verification.passed": {},
    "verification.failed": {"summary": "2 regressions in corpus A"},
    "approval.requested": {"request_id": REQUEST["id"], "stage": "triage", "title": REQUEST["title"]},
    "approval.decided": {
        "stage": "triage",
        "title": REQUEST["title"],
        "decision": "approve",
        "by": "Olga",
        "decided_at": "2026-11-30 10:00 UTC",
        "update_ts": "1.2",
    },
    "release.customer": {"version": "2026.11.30.1", "how_to_get": "Update the agent; the base arrives in 5 minutes."},
    "release.global": {"version": "2026.11.30.1"},
    "request.closed": {},
    "sla.warning": {
        "threshold": "50%",
        "due_at": "x",
        "due_at_local": SLA["due_at_local"],
        "severity": 3,
        "title": REQUEST["title"],
        "customer": "Moscow Bank",
    },
    "sla.breach": {
        "threshold": "breach",
        "due_at": "x",
        "due_at_local": SLA["due_at_local"],
        "severity": 3,
        "title": REQUEST["title"],
        "customer": "Moscow Bank",
    },
    "sla.rerouted": {"owner": "Duty Dmitry", "reason": "owner on leave"},
    "notification.dead": {
        "failed_id": "abc",
        "failed_event": "request.received",
        "failed_channel": "slack",
        "failed_recipient": "#x",
        "error": "invalid_auth",
        "attempts": 1,
    },
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_event_renders_in_both_languages(event, language):
    for audience in ("customer", "internal"):
        r = render(
            notification_id="n-1",
            event=event,
            language=language,
            audience=audience,
            context=EVENTS[event],
            request=REQUEST,
            sla=SLA,
            status_url=URL,
            severities=SEVERITIES,
        )
        assert REQUEST["id"] in r.subject and "\n" not in r.subject
        # text part: id, state, SLA countdown with the due time in the customer's zone, status link
        assert REQUEST["id"] in r.text and URL in r.text and "2026-11-30 15:00 MSK" in r.text
        # HTML part: escaped, with the link
        assert f'href="{URL}"' in r.html and "<app>" not in r.html and "&lt;app&gt;" in r.html
        assert f'lang="{language}"' in r.html
        # Block Kit: JSON-serializable blocks with types; header ≤ 150 chars; Slack control characters escaped
        json.dumps(r.blocks)
        assert r.blocks[0]["type"] == "header" and len(r.blocks[0]["text"]["text"]) <= 150
        body = r.blocks[1]["text"]["text"]
        assert "<app>" not in body
        footer = r.blocks[2]["elements"][0]["text"]
        assert REQUEST["id"] in footer and f"<{URL}|" in footer
        has_buttons = any(b["type"] == "actions" for b in r.blocks)
        assert has_buttons == (event == "approval.requested")


def test_language_is_the_customers():
    en = render(
        notification_id="n",
        event="request.needs_info",
        language="en",
        audience="customer",
        context=EVENTS["request.needs_info"],
        request=REQUEST,
        sla=SLA,
        status_url=URL,
        severities=SEVERITIES,
    )
    ru = render(
        notification_id="n",
        event="request.needs_info",
        language="ru",
        audience="customer",
        context=EVENTS["request.needs_info"],
        request=REQUEST,
        sla=SLA,
        status_url=URL,
        severities=SEVERITIES,
    )
    assert "We need information" in en.subject and "Which product version?" in en.text
    assert "Нужна информация" in ru.subject and "осталось 2 ч 05 мин" in ru.text and "Состояние: принят" in ru.text


def test_buttons_carry_the_decision_reference():
    r = render(
        notification_id="n-7",
        event="approval.requested",
        language="en",
        audience="internal",
        context=EVENTS["approval.requested"],
        request=REQUEST,
        sla=SLA,
        status_url=URL,
        severities=SEVERITIES,
    )
    actions = next(b for b in r.blocks if b["type"] == "actions")["elements"]
    assert [a["action_id"] for a in actions] == ["approve", "reject"]
    assert json.loads(actions[0]["value"]) == {"notification_id": "n-7", "request_id": REQUEST["id"], "stage": "triage"}


def test_missing_variable_is_an_error_not_a_gap():
    with pytest.raises(RenderError, match="'version' is undefined"):
        render(
            notification_id="n",
            event="release.customer",
            language="ru",
            audience="customer",
            context={"how_to_get": "x"},
            request=REQUEST,
            sla=SLA,
            status_url=URL,
            severities=SEVERITIES,
        )
    with pytest.raises(RenderError, match="no template"):
        render(
            notification_id="n",
            event="no.such.event",
            language="en",
            audience="customer",
            context={},
            request=REQUEST,
            sla=SLA,
            status_url=URL,
            severities=SEVERITIES,
        )


def test_countdown_states():
    base = dict(
        notification_id="n",
        event="build.started",
        language="en",
        audience="customer",
        context={},
        request=REQUEST,
        status_url=URL,
        severities=SEVERITIES,
    )
    assert "Response SLA: met" in render(sla={**SLA, "met_at": "2026-11-30T10:00:00+00:00"}, **base).text
    assert "paused" in render(sla={**SLA, "paused": True}, **base).text
    overdue = {**SLA, "remaining_seconds": None, "overdue_seconds": 3 * 86400 + 3600}
    assert "overdue by 3 d 1 h" in render(sla=overdue, **base).text
    assert "not applicable" in render(sla=None, **base).text
    assert duration(59, ("d", "h", "min")) == "0 min"


def test_slack_limits_apply_to_escaped_text_without_cutting_an_entity():
    """Slack counts the escaped text; a cut through `&amp;` would show `&am` (or a bare `&`) in the channel."""
    title = "&" * 100 + "<b>" * 100
    r = render(
        notification_id="n-1",
        event="request.received",
        language="en",
        audience="internal",
        context={**EVENTS["request.received"], "title": title},
        request={**REQUEST, "title": title},
        sla=SLA,
        status_url=URL,
        severities=SEVERITIES,
    )
    header = r.blocks[0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("&amp;…") and "&amp;&amp;" in header
    assert "<" not in r.slack_text and r.slack_text.count("&lt;b&gt;") == 100
    for cut in (149, 150, 151, 152, 153):
        escaped = slack_escape("x" * 140 + "&<>" * 5, cut)
        assert len(escaped) <= cut and escaped.endswith("…")
        assert escaped[:-1].rsplit("&", 1)[-1] in ("", "amp;", "lt;", "gt;") or "&" not in escaped
