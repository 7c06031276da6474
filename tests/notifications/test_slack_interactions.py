"""Sign off from Slack: the Approve / Reject buttons of a real "awaiting approval" message — posted when a
build's first stage (`internal`) opens for sign-off — apply the same sign-off rules as the API; forged,
stale and replayed requests, unknown Slack users, people whose role does not sign the stage and second
presses are refused and change nothing."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import func, select

from devservers import signed_interaction
from release_requests import db
from release_requests.api.app import create_app
from release_requests.audit.models import AuditEvent
from release_requests.notifications.models import SlackDecision
from release_requests.pipeline.models import SegmentTrigger, SignoffEvent
from release_requests.requests.models import ReleaseRequest
from release_requests.settings import Settings
from tests.conftest import REPO, serve_app
from tests.notifications.conftest import INTERNAL, deliver_until_quiet
from tests.notifications.test_delivery import HOSTILE_ESCAPED, HOSTILE_TITLE
from tests.pipeline.conftest import staff, world_pipeline  # noqa: F401 (fixtures)
from tests.pipeline.driving import new_request, run_pending, sample_bytes, stage_status

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SIGNER = "U0BUILD01"  # a build engineer: signs the internal stage (config/stages.toml)
TRIAGER = "U0TRIAGE1"  # triage: does not sign any stage


@pytest.fixture
def api(engine, committed_db, config, tmp_path):
    settings = Settings(
        database_url=committed_db, data_dir=tmp_path, config_dir=REPO / "config", slack_signing_secret=SECRET
    )
    app = create_app(settings=settings, config=config, sessions=db.make_sessionmaker(engine))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def asked(world_pipeline, staff, scene, slack, make_deliverer):  # noqa: F811 (fixtures imported above)
    """A false positive (hostile title) whose base was built and verified by the real build segment, so its
    `internal` stage awaits sign-off and `pipeline.service.open_stage` has posted the "awaiting approval"
    message with its buttons to the internal channel. Returns (request id, that message)."""
    w = world_pipeline
    customer = scene.customer()  # its Slack channel exists: the customer's notices are delivered too
    scene.person("build_engineer", slack_user_id=SIGNER)
    scene.person("triage", slack_user_id=TRIAGER)
    request_id = new_request(w, staff, sample_bytes(w, "payroll"), customer_id=customer, title=HOSTILE_TITLE)
    run_pending(w, request_id)
    assert stage_status(w, request_id) == {"internal": "awaiting"}
    deliver_until_quiet(make_deliverer())
    [asking] = scene.rows(request_id=request_id, event="approval.requested")
    [message] = [m for m in slack.messages(INTERNAL) if m["metadata"]["event_payload"]["notification_id"] == asking.id]
    assert HOSTILE_ESCAPED in message["text"] and "<!channel>" not in json.dumps([message["text"], message["blocks"]])
    return request_id, message


def press(message: dict, *, action: str = "approve", user: str = SIGNER, channel: str) -> dict:
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


def signoffs(scene, request_id: str) -> list[tuple[str, str, str]]:
    with db.transaction(scene.sessions) as s:
        rows = s.scalars(select(SignoffEvent).where(SignoffEvent.request_id == request_id).order_by(SignoffEvent.id))
        return [(e.stage, e.action, e.via) for e in rows]


def pending_steps(scene, request_id: str) -> list[str]:
    with db.transaction(scene.sessions) as s:
        return list(
            s.scalars(
                select(SegmentTrigger.step).where(
                    SegmentTrigger.request_id == request_id, SegmentTrigger.status == "pending"
                )
            )
        )


def test_approve_from_slack_signs_the_stage_updates_message_and_audits(
    api,
    scene,
    slack,
    asked,
    make_deliverer,
    world_pipeline,  # noqa: F811
):
    request_id, message = asked
    channel = slack.add_channel(INTERNAL)
    body, headers = signed_interaction(press(message, user=SIGNER, channel=channel), signing_secret=SECRET)
    response = api.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "request_id": request_id, "status": "awaiting_approval"}

    # the same sign-off the API records: one build engineer is all `internal` needs, so its publish is triggered
    assert signoffs(scene, request_id) == [("internal", "approve", "slack")]
    buttons = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    assert json.loads(buttons[0]["value"])["stage"] == "internal"  # the button names the stage it signs
    [step] = pending_steps(scene, request_id)
    assert step.startswith("publish:internal:")
    actions = [e.action for e in scene.events(request_id, prefix="")]
    assert "signoff.approve" in actions and "slack.decision" in actions
    decision = next(e for e in scene.events(request_id, prefix="slack."))
    assert decision.actor.startswith("Build_Engineer ") and decision.after["slack_user_id"] == SIGNER
    assert decision.after["stage"] == "internal" and decision.after["decision"] == "approve"

    # the message is edited (chat.update, through the outbox) to show who decided, without buttons
    deliver_until_quiet(make_deliverer())
    [update] = slack.calls_to("chat.update")
    assert update.params["ts"] == message["ts"]
    [edited] = [m for m in slack.messages(INTERNAL) if m["ts"] == message["ts"]]
    assert "Approved" in edited["text"] and "Build_Engineer " in edited["text"]
    assert HOSTILE_ESCAPED in edited["text"] and "<!channel>" not in json.dumps([edited["text"], edited["blocks"]])
    assert not any(b["type"] == "actions" for b in edited["blocks"])

    # replay of the very same request: refused, nothing changes
    again = api.post("/slack/interactions", content=body, headers=headers)
    assert again.status_code == 403 and "replay" in again.json()["message"]
    # a fresh press by the same person on the message they decided (new timestamp, valid signature): refused
    body2, headers2 = signed_interaction(
        press(message, action="reject", user=SIGNER, channel=channel),
        signing_secret=SECRET,
        timestamp=int(time.time()) - 1,
    )
    second = api.post("/slack/interactions", content=body2, headers=headers2)
    assert second.status_code == 403 and "already decided this message (approve)" in second.json()["message"]
    assert status_of(scene, request_id) == "awaiting_approval"
    assert signoffs(scene, request_id) == [("internal", "approve", "slack")]
    assert len(scene.events(request_id, prefix="slack.")) == 1

    # the decision unblocked the real pipeline: the publish segment puts the base on the internal channel
    run_pending(world_pipeline, request_id)
    assert stage_status(world_pipeline, request_id)["internal"] == "published"


def test_reject_from_slack_fails_the_request(api, scene, slack, asked):
    request_id, message = asked
    body, headers = signed_interaction(
        press(message, action="reject", user=SIGNER, channel=slack.add_channel(INTERNAL)), signing_secret=SECRET
    )
    response = api.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed"
    assert signoffs(scene, request_id) == [("internal", "reject", "slack")]
    rejected = next(e for e in scene.events(request_id, prefix="signoff.reject"))
    assert rejected.reason.startswith("rejected in Slack by Build_Engineer ")
    failed = next(e for e in scene.events(request_id, prefix="request.failed"))
    assert failed.reason.startswith("stage internal rejected: rejected in Slack by")
    assert any(r.event == "release.rejected" and r.audience == "customer" for r in scene.rows(request_id=request_id))


def test_forged_stale_replayed_unknown_and_unauthorized_presses_change_nothing(api, scene, slack, asked):
    request_id, message = asked
    channel = slack.add_channel(INTERNAL)

    def send(*, secret=SECRET, stamp=None, user=SIGNER, drop_signature=False, tamper_body=False):
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
    # the same rules as the API: triage signs no stage at all, a release manager signs later stages only
    code, body = send(user=TRIAGER)
    assert code == 403 and "'triage'" in body["message"], body
    scene.person("release_manager", slack_user_id="U0RELMGR1")  # signs later stages, not this one
    code, body = send(user="U0RELMGR1")
    assert code == 403 and "role 'release_manager' does not sign stage 'internal'" in body["message"], body
    assert status_of(scene, request_id) == "awaiting_approval"
    assert signoffs(scene, request_id) == []
    assert not scene.events(request_id, prefix="slack.")


@pytest.fixture
def shaped() -> dict:
    """A message shaped like a sign-off request, for refusals that come before anything is looked up (no
    build needed: the signature, the form and the payload's shape are checked first)."""
    value = json.dumps({"notification_id": "0" * 32, "request_id": "RR-2026-000001", "stage": "internal"})
    buttons = [{"type": "button", "action_id": action, "value": value} for action in ("approve", "reject")]
    return {"ts": "1767225600.000100", "blocks": [{"type": "actions", "elements": buttons}]}


def nothing_decided(scene) -> bool:
    with db.transaction(scene.sessions) as s:
        presses = s.scalar(select(func.count()).select_from(SlackDecision))
        events = s.scalar(select(func.count()).where(AuditEvent.action.startswith("slack.")))
        return presses == 0 and events == 0


def test_a_button_that_is_not_ours_is_invalid(api, scene, slack, shaped):
    scene.person("build_engineer", slack_user_id=SIGNER)  # a known person: the button itself is what is wrong
    payload = press(shaped, channel=slack.add_channel(INTERNAL))
    payload["actions"][0]["value"] = json.dumps({"notification_id": "nope", "request_id": "RR-1", "stage": "internal"})
    body, headers = signed_interaction(payload, signing_secret=SECRET)
    assert api.post("/slack/interactions", content=body, headers=headers).status_code == 422
    assert nothing_decided(scene)


def test_malformed_signature_headers_and_unsigned_bodies_are_401_never_500(api, slack, shaped):
    """Headers Slack never sends are refused like a wrong signature, before the body is decoded."""
    body, headers = signed_interaction(press(shaped, channel=slack.add_channel(INTERNAL)), signing_secret=SECRET)
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


def test_signed_payloads_of_the_wrong_shape_are_400_naming_the_field(api, scene, slack, shaped):
    good = press(shaped, channel=slack.add_channel(INTERNAL))
    cases = [
        ({**good, "actions": ["x"]}, "payload.actions.0: Input should be a valid dictionary"),
        ({**good, "actions": []}, "payload.actions: List should have at least 1 item"),
        ({**good, "user": SIGNER}, "payload.user: Input should be a valid dictionary"),
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
    assert nothing_decided(scene)
