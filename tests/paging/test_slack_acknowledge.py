"""Acknowledge a page from Slack: the paged person's direct message carries an Acknowledge button; a signed press
(as Slack signs it) takes the page through the same service as the CLI and the API — the climb stops, the
paging service hears `acknowledge`, the press is audited and the message is edited to say who took it. A
replay, a second press, a page already taken elsewhere, a Slack user linked to nobody and a person who may
not acknowledge are refused and change nothing."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from devservers import LocalEventsV2, signed_interaction
from release_requests import db
from release_requests.api.app import create_app
from release_requests.audit.models import AuditEvent
from release_requests.notifications.models import SlackDecision
from release_requests.notifications.render import render
from release_requests.notifications.transports import PagerTransport
from release_requests.paging import service as paging
from release_requests.people.models import Person
from release_requests.settings import Settings
from tests.conftest import REPO, serve_app
from tests.notifications import conftest as outbox
from tests.paging.conftest import with_head

SECRET = "5c1e0a77d2b94f3e8a6b1c9d0e2f4a6b"  # RR_SLACK_SIGNING_SECRET
ROUTING_KEY = "R0UTEKEY0a1b2c3d4e5f60718293a4b5"
# the outbox's fixtures: a local Slack, a real SMTP server, a deliverer with short leases and backoffs
slack, smtp_server, smtp, make_deliverer = outbox.slack, outbox.smtp_server, outbox.smtp, outbox.make_deliverer
deliver_until_quiet = outbox.deliver_until_quiet


@pytest.fixture
def api(engine, committed_db, config, tmp_path):
    settings = Settings(
        database_url=committed_db, data_dir=tmp_path, config_dir=REPO / "config", slack_signing_secret=SECRET
    )
    app = create_app(settings=settings, config=config, sessions=db.make_sessionmaker(engine))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def pagerduty():
    with LocalEventsV2(routing_keys=(ROUTING_KEY,), tls=False) as server:  # loopback HTTP this time
        yield server


@pytest.fixture
def rota(scene):
    """A customer with no TAM; a duty manager as the fallback (paged first), an admin as head of support."""
    fallback, head = scene.person("duty_manager"), scene.person("admin")
    scene.fallback(fallback)
    scene.config = with_head(scene.config, head.email)
    return scene.customer(), fallback, head


def deliverer(make_deliverer, pagerduty):
    return make_deliverer(extra=(PagerTransport(pagerduty.url, routing_key=ROUTING_KEY, timeout=5),))


def page_dm(scene, slack, request_id: str, person) -> dict:
    """The Slack direct message that paged `person` about `request_id` (found by its notification id)."""
    [row] = [
        r for r in scene.rows(request_id, "page.sent") if r.channel == "slack" and r.recipient_person_id == person.id
    ]
    [message] = [
        m for m in slack.messages(person.slack_user_id) if m["metadata"]["event_payload"]["notification_id"] == row.id
    ]
    return message


def press(message: dict, *, user: str, channel: str, action: str = "acknowledge", value: str | None = None) -> dict:
    if value is None:
        [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
        value = button["value"]
    return {
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel},
        "message": {"ts": message["ts"]},
        "actions": [{"action_id": action, "value": value}],
    }


def send(api, payload: dict, *, timestamp: int | None = None) -> httpx.Response:
    """Sign `payload` as Slack does and post it; the response keeps what was sent (`.request`), for a replay."""
    body, headers = signed_interaction(payload, signing_secret=SECRET, timestamp=timestamp)
    return api.post("/slack/interactions", content=body, headers=headers)


def slack_presses(scene) -> tuple[int, int]:
    """(stored presses, `slack.*` audit events): what a refused press must leave unchanged."""
    with db.transaction(scene.sessions) as s:
        presses = s.scalar(select(func.count()).select_from(SlackDecision))
        events = s.scalar(select(func.count()).where(AuditEvent.action.startswith("slack.")))
        return presses, events


def test_acknowledge_in_slack_takes_the_page_stops_the_climb_and_edits_the_message(
    api, scene, rota, slack, make_deliverer, pagerduty, engine
):
    customer, fallback, head = rota
    taken, other = scene.file(customer, by=fallback), scene.file(customer, by=fallback)
    deliver_until_quiet(deliverer(make_deliverer, pagerduty))
    message = page_dm(scene, slack, taken, fallback)
    [row] = [r for r in scene.rows(taken, "page.sent") if r.channel == "slack"]
    [button] = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    assert (button["action_id"], button["text"]["text"]) == ("acknowledge", "Acknowledge")
    assert json.loads(button["value"]) == {"notification_id": row.id, "request_id": taken}

    channel = slack.add_channel(fallback.slack_user_id, prefix="D")  # the direct message's channel
    payload = press(message, user=fallback.slack_user_id, channel=channel)
    response = send(api, payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "request_id": taken, "status": "submitted"}  # the request is untouched

    page = scene.page(taken)
    assert (page.status, page.acknowledged_by_id, page.acknowledged_via) == ("acknowledged", fallback.id, "slack")
    [decision] = scene.events(taken, "slack.decision")
    assert decision.actor.startswith("Duty_Manager ") and decision.after["decision"] == "acknowledge"
    assert decision.after["slack_user_id"] == fallback.slack_user_id and decision.after["page"] == "acknowledged"
    assert decision.after["message_ts"] == message["ts"] and decision.after["channel"] == channel
    [acknowledged] = scene.events(taken, "page.acknowledged")
    assert acknowledged.after["via"] == "slack"

    # the direct message is edited (chat.update, through the outbox): who took it and when, no button left;
    # the paging service's incident is acknowledged too
    deliver_until_quiet(deliverer(make_deliverer, pagerduty))
    [update] = slack.calls_to("chat.update")
    assert update.params["ts"] == message["ts"]
    [edited] = [m for m in slack.messages(fallback.slack_user_id) if m["ts"] == message["ts"]]
    assert re.search(rf"Acknowledged by {re.escape(fallback.name)} at \d\d:\d\d UTC", edited["text"]), edited["text"]
    assert not any(b["type"] == "actions" for b in edited["blocks"])
    assert pagerduty.incident(f"release-requests/{taken}").status == "acknowledged"
    assert pagerduty.incident(f"release-requests/{other}").status == "triggered"

    # the same request again: a replay; a fresh press on the message: already done; nothing changes
    sent = response.request
    replay = api.post("/slack/interactions", content=sent.content, headers=dict(sent.headers))
    assert replay.status_code == 403 and "replay" in replay.json()["message"], replay.text
    # another timestamp than the first press's, so another signature (a clock-derived one could meet it again)
    again = send(api, payload, timestamp=int(sent.headers["X-Slack-Request-Timestamp"]) - 1)
    assert again.status_code == 403 and again.json()["message"] == "you already acknowledged this page"
    assert slack_presses(scene) == (1, 1)

    # the climb: only the page nobody took moves on to the next person
    escalations = paging.escalate_due(
        db.make_sessionmaker(engine), config=scene.config, now=scene.now() + timedelta(hours=1)
    )
    assert [(e.request_id, e.outcome, e.to_person) for e in escalations] == [(other, "escalated", head.name)]
    assert scene.page(taken).step == 0 and not scene.events(taken, "page.escalated")


def test_a_page_taken_elsewhere_strangers_and_wrong_buttons_are_refused(api, scene, rota, slack, make_deliverer):
    customer, fallback, head = rota
    request_id = scene.file(customer, by=fallback)
    deliver_until_quiet(make_deliverer())  # no paging service configured here: its events are skipped
    message = page_dm(scene, slack, request_id, fallback)
    channel = slack.add_channel(fallback.slack_user_id, prefix="D")

    nobody = send(api, press(message, user="U0NOBODY", channel=channel))
    assert nobody.status_code == 403 and "U0NOBODY" in nobody.json()["message"]
    builder = scene.person("build_engineer")  # linked to Slack, but does not acknowledge pages
    refused = send(api, press(message, user=builder.slack_user_id, channel=channel))
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden", refused.text
    # the page's button pressed as if it were a sign-off: not a decision message of that kind
    [row] = [r for r in scene.rows(request_id, "page.sent") if r.channel == "slack"]
    value = json.dumps({"notification_id": row.id, "request_id": request_id, "stage": "internal"})
    wrong = send(api, press(message, user=fallback.slack_user_id, channel=channel, action="approve", value=value))
    assert wrong.status_code == 422, wrong.text
    assert scene.page(request_id).status == "paging" and slack_presses(scene) == (0, 0)

    # the head of support took it from the CLI meanwhile: the button says so, and records nothing
    with db.transaction(scene.sessions) as s:
        paging.acknowledge(s, actor=s.get(Person, head.id), request_id=request_id, via="cli", config=scene.config)
    late = send(api, press(message, user=fallback.slack_user_id, channel=channel))
    assert late.status_code == 409, late.text
    assert f"already acknowledged by {head.name}" in late.json()["message"] and "(via cli)" in late.json()["message"]
    assert slack_presses(scene) == (0, 0)
    page = scene.page(request_id)
    assert (page.acknowledged_by_id, page.acknowledged_via) == (head.id, "cli")


@pytest.mark.parametrize(
    ("language", "label", "edited"), [("en", "Acknowledge", "Acknowledged by"), ("ru", "Подтвердить", "Подтверждено")]
)
def test_the_button_and_the_edited_message_speak_the_persons_language(scene, rota, config, language, label, edited):
    customer, fallback, _ = rota
    request_id = scene.file(customer, by=fallback)
    [row] = [r for r in scene.rows(request_id, "page.sent") if r.channel == "slack"]
    request = {"id": request_id, "title": "Payroll", "status": "submitted", "severity": 1, "customer": "Hooli"}
    common = {
        "language": language,
        "audience": "internal",
        "request": request,
        "sla": None,
        "status_url": "https://rr/x",
    }
    paged = render(notification_id=row.id, event="page.sent", context=row.context, severities=config.severity, **common)
    [button] = next(b for b in paged.blocks if b["type"] == "actions")["elements"]
    assert button["text"]["text"] == label and json.loads(button["value"])["notification_id"] == row.id
    context = {"by": fallback.name, "severity": 1, "acknowledged_at": "02:14 UTC", "update_ts": "1.2"}
    done = render(
        notification_id="n", event="page.acknowledged_in_slack", context=context, severities=config.severity, **common
    )
    assert edited in done.subject and "02:14 UTC" in done.subject and fallback.name in done.subject
    assert not any(b["type"] == "actions" for b in done.blocks)
