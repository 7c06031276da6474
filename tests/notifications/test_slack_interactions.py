"""Approve from Slack: signed button presses apply the same triage rules as the API; forged, stale and
replayed requests, unknown Slack users and second presses are refused and change nothing."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from release_requests import db
from release_requests.api.app import create_app
from release_requests.notifications.local_servers import signed_interaction
from release_requests.notifications.service import notify
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.service import db_now
from release_requests.settings import Settings
from tests.conftest import REPO, serve_app
from tests.notifications.conftest import INTERNAL, deliver_until_quiet
from tests.notifications.test_delivery import HOSTILE_ESCAPED, HOSTILE_TITLE

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def api(engine, committed_db, config, tmp_path):
    settings = Settings(
        database_url=committed_db, data_dir=tmp_path, config_dir=REPO / "config", slack_signing_secret=SECRET
    )
    app = create_app(settings=settings, config=config, sessions=db.make_sessionmaker(engine))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def asked(scene, slack, make_deliverer, config):
    """A submitted request whose 'awaiting approval' (triage) message was posted to the internal channel."""
    customer = scene.customer()
    engineer = scene.person("triage", slack_user_id="U0TRIAGE1")
    request_id = scene.request(customer, by=engineer, title=HOSTILE_TITLE)
    with db.transaction(scene.sessions) as s:
        request = s.get(ReleaseRequest, request_id)
        context = {"request_id": request_id, "stage": "triage", "title": request.title}
        [row] = notify(
            s,
            request=request,
            event="approval.requested",
            targets=["internal_channel"],
            config=config,
            at=db_now(s),
            context=context,
        )
    deliver_until_quiet(make_deliverer())
    message = next(m for m in slack.messages(INTERNAL) if m["metadata"]["event_payload"]["notification_id"] == row.id)
    return request_id, row.id, message


def press(message: dict, *, action: str = "approve", user: str = "U0TRIAGE1", channel: str) -> dict:
    button = next(
        e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action
    )
    return {
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel},
        "message": {"ts": message["ts"]},
        "actions": [{"action_id": action, "value": button["value"]}],
    }


def status_of(scene, request_id: str) -> str:
    with db.transaction(scene.sessions) as s:
        return s.get(ReleaseRequest, request_id).status


def test_approve_from_slack_applies_triage_updates_message_and_audits(api, scene, slack, asked, make_deliverer):
    request_id, asked_id, message = asked
    channel = slack.add_channel(INTERNAL)
    body, headers = signed_interaction(press(message, channel=channel), signing_secret=SECRET)
    response = api.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "request_id": request_id, "status": "accepted"}
    assert status_of(scene, request_id) == "accepted"

    actions = [e.action for e in scene.events(request_id, prefix="")]
    assert "request.accepted" in actions and "slack.decision" in actions
    decision = next(e for e in scene.events(request_id, prefix="slack."))
    assert decision.actor.startswith("Triage ") and decision.after["slack_user_id"] == "U0TRIAGE1"

    # the message is edited (chat.update, through the outbox) to show who decided, without buttons
    deliver_until_quiet(make_deliverer())
    [update] = slack.calls_to("chat.update")
    assert update.params["ts"] == message["ts"]
    [edited] = [m for m in slack.messages(INTERNAL) if m["ts"] == message["ts"]]
    assert "Approved" in edited["text"] and "Triage " in edited["text"]
    assert HOSTILE_ESCAPED in edited["text"] and "<!channel>" not in json.dumps([edited["text"], edited["blocks"]])
    assert not any(b["type"] == "actions" for b in edited["blocks"])
    # and the customer was told that the request was accepted
    assert any(r.event == "request.triaged" and r.audience == "customer" for r in scene.rows(request_id=request_id))

    # replay of the very same request: refused, nothing changes
    again = api.post("/slack/interactions", content=body, headers=headers)
    assert again.status_code == 403 and "replay" in again.json()["message"]
    # a fresh press by the same person on the message they decided (new timestamp, valid signature): refused
    body2, headers2 = signed_interaction(
        press(message, action="reject", channel=channel), signing_secret=SECRET, timestamp=int(time.time()) - 1
    )
    second = api.post("/slack/interactions", content=body2, headers=headers2)
    assert second.status_code == 403 and "already decided this message (approve)" in second.json()["message"]
    assert status_of(scene, request_id) == "accepted"
    assert len([e for e in scene.events(request_id, prefix="slack.")]) == 1


def test_reject_from_slack(api, scene, slack, asked):
    request_id, _, message = asked
    body, headers = signed_interaction(
        press(message, action="reject", channel=slack.add_channel(INTERNAL)), signing_secret=SECRET
    )
    assert api.post("/slack/interactions", content=body, headers=headers).json()["status"] == "rejected"
    rejected = next(e for e in scene.events(request_id, prefix="request.rejected"))
    assert rejected.reason.startswith("rejected in Slack by Triage")


def test_forged_stale_replayed_unknown_and_unauthorized_presses_change_nothing(api, scene, slack, asked):
    request_id, _, message = asked
    channel = slack.add_channel(INTERNAL)

    def send(*, secret=SECRET, stamp=None, user="U0TRIAGE1", drop_signature=False, tamper_body=False):
        body, headers = signed_interaction(
            press(message, user=user, channel=channel), signing_secret=secret, timestamp=stamp
        )
        if drop_signature:
            headers.pop("X-Slack-Signature")
        if tamper_body:
            body = body.replace(b"approve", b"reject")
        response = api.post("/slack/interactions", content=body, headers=headers)
        return response.status_code, response.json()

    for refused in (
        send(secret="not-the-secret"),
        send(stamp=int(time.time()) - 301),
        send(stamp=int(time.time()) + 301),
        send(drop_signature=True),
        send(tamper_body=True),
    ):
        assert refused[0] == 401 and refused[1]["error"] == "unauthenticated"
    code, body = send(user="U0NOBODY")
    assert code == 403 and "U0NOBODY" in body["message"]
    scene.person("build_engineer", slack_user_id="U0BUILDER")  # same rules as the API: may not triage
    code, body = send(user="U0BUILDER")
    assert code == 403 and "may not triage" in body["message"]
    assert status_of(scene, request_id) == "submitted"
    assert not scene.events(request_id, prefix="slack.")


def test_a_button_that_is_not_ours_is_invalid(api, slack, asked):
    _, _, message = asked
    payload = press(message, channel=slack.add_channel(INTERNAL))
    payload["actions"][0]["value"] = json.dumps({"notification_id": "nope", "request_id": "RR-1", "stage": "triage"})
    body, headers = signed_interaction(payload, signing_secret=SECRET)
    assert api.post("/slack/interactions", content=body, headers=headers).status_code == 422


def test_malformed_signature_headers_and_unsigned_bodies_are_401_never_500(api, slack, asked):
    """Headers Slack never sends are refused like a wrong signature, before the body is decoded."""
    _, _, message = asked
    body, headers = signed_interaction(press(message, channel=slack.add_channel(INTERNAL)), signing_secret=SECRET)
    # raw header bytes: latin-1 '²' is what the server decodes to a str whose isdigit() is true
    cases = {
        "superscript two (latin-1)": {**headers, "X-Slack-Request-Timestamp": "\u00b2".encode("latin-1")},
        "superscript two (UTF-8)": {**headers, "X-Slack-Request-Timestamp": "\u00b2".encode()},
        "Arabic-Indic digits": {**headers, "X-Slack-Request-Timestamp": "\u0661\u0667\u0660\u0660".encode()},
        "timestamp beyond int parsing": {**headers, "X-Slack-Request-Timestamp": "9" * 5000},
        "non-ASCII signature (latin-1)": {**headers, "X-Slack-Signature": ("v0=" + "\u00e9" * 64).encode("latin-1")},
        "non-ASCII signature (UTF-8)": {**headers, "X-Slack-Signature": ("v0=" + "\u00e9" * 64).encode()},
        "short signature": {**headers, "X-Slack-Signature": "v0=abc"},
        "uppercase signature": {**headers, "X-Slack-Signature": headers["X-Slack-Signature"].upper()},
    }
    for case, sent in cases.items():
        response = api.post("/slack/interactions", content=body, headers=sent)
        assert response.status_code == 401, (case, response.text)
        assert response.json()["error"] == "unauthenticated"
    # a body that is not UTF-8, unsigned (signed for other bytes): refused as unsigned, not decoded
    response = api.post("/slack/interactions", content=b"payload=\xff\xfe", headers=headers)
    assert response.status_code == 401 and "does not match" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"payload=%7B%22type%22%3A\xff%7D", "the body is not UTF-8 (invalid byte at offset 24)"),
        (b"payload=%FF%FE", "a form field is not UTF-8 once percent-decoded"),
        (b"nothing=here", "expected one form field 'payload' holding JSON, got 0"),
        (b"payload=1&payload=2", "expected one form field 'payload' holding JSON, got 2"),
        (b"payload=%7Bnot-json", "payload is not JSON: Expecting property name enclosed in double quotes"),
        (b"payload=" + b"%5B" * 100_000, "payload is not usable JSON: RecursionError"),
        (b"payload=%5B%5D", "payload: Input should be a valid dictionary or instance of BlockActions"),
    ],
)
def test_signed_bodies_that_are_not_a_form_with_json_are_400(api, body, expected):
    signed, headers = signed_interaction(body, signing_secret=SECRET)
    response = api.post("/slack/interactions", content=signed, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request" and expected in response.json()["message"]


def test_signed_payloads_of_the_wrong_shape_are_400_naming_the_field(api, scene, slack, asked):
    request_id, _, message = asked
    good = press(message, channel=slack.add_channel(INTERNAL))
    cases = [
        ({**good, "actions": ["x"]}, "payload.actions.0: Input should be a valid dictionary"),
        ({**good, "actions": []}, "payload.actions: List should have at least 1 item"),
        ({**good, "user": "U0TRIAGE1"}, "payload.user: Input should be a valid dictionary"),
        ({**good, "user": {"id": 7}}, "payload.user.id: Input should be a valid string"),
        ({k: v for k, v in good.items() if k != "user"}, "payload.user: Field required"),
        ({k: v for k, v in good.items() if k != "channel"}, "payload.channel: Field required"),
        ({**good, "type": "view_submission"}, "payload.type: Input should be 'block_actions'"),
        ({**good, "actions": [{"value": "{}"}]}, "payload.actions.0.action_id: Field required"),
        ({**good, "container": None, "message": None}, "neither container.message_ts nor message.ts"),
    ]
    for payload, expected in cases:
        body, headers = signed_interaction(payload, signing_secret=SECRET)
        response = api.post("/slack/interactions", content=body, headers=headers)
        assert response.status_code == 400, (payload, response.text)
        assert response.json()["error"] == "bad_request" and expected in response.json()["message"], response.text
    assert status_of(scene, request_id) == "submitted"
    assert not scene.events(request_id, prefix="slack.")
