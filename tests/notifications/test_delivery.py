"""The deliverer against a local Slack Web API and a real SMTP server (STARTTLS + AUTH): what arrives,
retries, Retry-After, outages, dead letters, and bad input that must not stop the rest of the outbox."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from release_requests import db
from release_requests.clock import db_now
from release_requests.notifications.models import Notification
from release_requests.notifications.service import notify
from release_requests.requests.models import ReleaseRequest
from tests.notifications.conftest import INTERNAL, deliver_until_quiet


@pytest.fixture
def setup(scene, slack):
    """A Russian-speaking customer with a Slack channel and two contacts, a triage engineer, one request."""
    customer = scene.customer(language="ru")
    engineer = scene.person("triage")
    request_id = scene.request(customer, by=engineer)
    return customer, engineer, request_id


def test_received_notice_reaches_slack_and_email(scene, setup, slack, smtp, make_deliverer):
    customer, _, request_id = setup
    rows = scene.rows(request_id=request_id)
    assert sorted((r.audience, r.channel) for r in rows) == [
        ("customer", "email"),
        ("customer", "email"),
        ("customer", "slack"),
        ("internal", "slack"),
    ]
    outcome = make_deliverer().deliver_due()
    assert outcome == {"sent": 4}
    assert {r.status for r in scene.rows(request_id=request_id)} == {"sent"}

    # e-mail: right recipients, authenticated over STARTTLS, both MIME parts, Russian, id and due time in MSK
    assert sorted(m.rcpt_tos[0] for m in smtp.received) == sorted(r.recipient for r in rows if r.channel == "email")
    for mail in smtp.received:
        assert mail.authenticated_as == "relreq"
        msg = mail.message
        row = next(r for r in rows if r.recipient == msg["To"])
        assert msg["Message-ID"] == f"<{row.id}@release-requests>"
        assert msg["Content-Language"] == "ru" and request_id in msg["Subject"]
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "Мы получили ваш запрос" in text and request_id in text and "MSK (Europe/Moscow)" in text
        assert f"/requests/{request_id}" in text and f"/requests/{request_id}" in html and "<p>" in html

    # Slack: customer channel gets the Russian notice, the internal channel the English one; both carry the id
    customer_channel = next(r.recipient for r in rows if r.audience == "customer" and r.channel == "slack")
    [posted] = slack.messages(customer_channel)
    assert "Мы получили ваш запрос" in posted["text"] and request_id in posted["text"]
    assert posted["metadata"]["event_type"] == "rr_notification"
    [internal] = slack.messages(INTERNAL)
    assert internal["text"].startswith(f"[{request_id}] New severity 1 request")

    # the timeline shows each notice's life: queued then sent
    actions = [e.action for e in scene.events(request_id)]
    assert actions.count("notification.queued") == 4 and actions.count("notification.sent") == 4


def test_retries_with_backoff_on_500_and_dropped_connection(scene, setup, slack, make_deliverer):
    _, _, request_id = setup
    slack.fail("server_error", method="chat.postMessage")
    slack.fail("drop", method="chat.postMessage")
    deliverer = make_deliverer(backoff_seconds=[0.5])
    first = deliverer.deliver_due()
    assert first["failed"] == 2
    failed = scene.rows(request_id=request_id, channel="slack")
    assert {r.status for r in failed} == {"failed"} and all(r.next_attempt_at > r.created_at for r in failed)
    assert {r.last_error for r in failed} == {
        "Slack chat.postMessage: fatal_error",
        "Slack chat.postMessage: RemoteDisconnected: Remote end closed connection without response",
    }
    deliver_until_quiet(deliverer)
    for row in scene.rows(request_id=request_id, channel="slack"):
        assert row.status == "sent" and row.attempts == 2
    # a re-attempt first looked in the channel for the notice (a dropped answer may hide a posted message)
    assert len(slack.calls_to("conversations.history")) == 2
    assert sum(1 for m in slack.all_messages()) == 2
    failed_events = [e for e in scene.events(request_id) if e.action == "notification.failed"]
    assert len(failed_events) == 2 and all(e.after["next_attempt_at"] for e in failed_events)


def test_retry_after_is_honoured(scene, setup, slack, make_deliverer):
    _, _, request_id = setup
    slack.fail("rate_limited", method="chat.postMessage", retry_after=30)
    deliverer = make_deliverer()
    deliverer.deliver_due()
    [limited] = [r for r in scene.rows(request_id=request_id, channel="slack") if r.status == "failed"]
    wait = (limited.next_attempt_at - db_now_of(scene)).total_seconds()
    assert 25 < wait <= 30 and "retry after 30 s" in limited.last_error
    assert deliverer.deliver_due() == {}  # nothing else is due: the deliverer did not block, and does not hammer
    assert 25 < deliverer.seconds_until_due() <= 30


def db_now_of(scene):
    with db.transaction(scene.sessions) as s:
        return db_now(s)


def test_smtp_outage_then_recovery(scene, setup, smtp, make_deliverer):
    _, _, request_id = setup
    # a backoff longer than one pass takes on a busy machine: each row fails once in this pass, not twice
    deliverer = make_deliverer(backoff_seconds=[1.0])
    smtp.stop()
    try:
        outcome = deliverer.deliver_due()
    finally:
        smtp.start()
    assert outcome["failed"] == 2
    emails = scene.rows(request_id=request_id, channel="email")
    assert all(r.status == "failed" and "unavailable" in r.last_error for r in emails)
    smtp.reject_next(2, code=451)  # back up, but still says "try later" once
    deliver_until_quiet(deliverer)
    emails = scene.rows(request_id=request_id, channel="email")
    assert [r.status for r in emails] == ["sent", "sent"] and [r.attempts for r in emails] == [3, 3]
    assert len(smtp.received) == 2


def test_dead_letter_after_max_attempts_alerts_the_team(scene, setup, slack, smtp, make_deliverer, config):
    customer, _, request_id = setup
    config = config.model_copy(
        update={
            "notifications": config.notifications.model_copy(
                update={"delivery": config.notifications.delivery.model_copy(update={"max_attempts": 2})}
            )
        }
    )
    deliverer = make_deliverer(config=config)
    [customer_slack] = scene.rows(request_id=request_id, audience="customer", channel="slack")
    slack.fail("server_error", method="chat.postMessage", channel=customer_slack.recipient, times=5)
    deliver_until_quiet(deliverer)
    [dead] = scene.rows(request_id=request_id, status="dead")
    assert dead.id == customer_slack.id
    assert dead.attempts == 2 and dead.last_error == "Slack chat.postMessage: fatal_error"
    alerts = scene.rows(request_id=request_id, event="notification.dead")
    assert sorted((a.channel, a.recipient, a.status) for a in alerts) == [
        ("email", config.notifications.internal.email, "sent"),
        ("slack", INTERNAL, "sent"),
    ]
    alert_mail = next(m for m in smtp.received if m.rcpt_tos == [config.notifications.internal.email])
    assert f"relreq notifications retry {dead.id}" in alert_mail.message.get_body(("plain",)).get_content()
    assert "fatal_error" in slack.messages(INTERNAL)[-1]["blocks"][1]["text"]["text"]
    [dead_event] = [e for e in scene.events(request_id) if e.action == "notification.dead"]
    assert dead_event.after["error"] == "Slack chat.postMessage: fatal_error" and dead_event.after["attempts"] == 2


def test_refused_token_is_recorded_and_email_keeps_flowing(scene, setup, slack, smtp, make_deliverer):
    _, _, request_id = setup
    slack.tokens.clear()  # the token is refused (revoked)
    deliver_until_quiet(make_deliverer())
    slack_rows = [r for r in scene.rows(request_id=request_id, channel="slack") if r.event != "notification.dead"]
    assert {(r.status, r.attempts) for r in slack_rows} == {("dead", 1)}
    assert all("invalid_auth" in r.last_error for r in slack_rows)
    # customer e-mail went out, and the team got the alert by e-mail (its Slack copy died too, without a loop)
    assert {r.status for r in scene.rows(request_id=request_id, channel="email")} == {"sent"}
    assert len(smtp.received) == 2 + 2
    dead_alerts = scene.rows(request_id=request_id, event="notification.dead", channel="slack")
    assert {r.status for r in dead_alerts} == {"dead"}
    errors = [e.after["error"] for e in scene.events(request_id) if e.action == "notification.dead"]
    assert errors and all("invalid_auth" in e for e in errors)


def test_unknown_channel_invalid_address_and_missing_variable(scene, slack, smtp, make_deliverer, config):
    customer = scene.customer(slack_channel="no-such-channel", channel_exists=False)
    engineer = scene.person("triage")
    request_id = scene.request(customer, by=engineer)
    with db.transaction(scene.sessions) as s:
        request = s.get(ReleaseRequest, request_id)
        # an address that passed intake long ago but does not validate now, and a template variable missing
        s.execute(
            update(Notification)
            .where(Notification.request_id == request_id, Notification.channel == "email")
            .values(recipient="not an address@@example")
        )
        notify(
            s,
            request=request,
            event="release.customer",
            targets=["customer"],
            config=config,
            at=db_now(s),
            context={"how_to_get": "update"},
        )  # fmt: skip  (no "version")
        notify(
            s,
            request=request,
            event="request.response",
            targets=["internal_channel"],
            config=config,
            at=db_now(s),
            context={"message": "still flowing", "from": "Olga"},
        )
    deliver_until_quiet(make_deliverer())
    rows = {(r.event, r.channel, r.recipient): r for r in scene.rows(request_id=request_id)}
    unknown = rows[("request.received", "slack", "no-such-channel")]
    assert unknown.status == "dead" and "channel #no-such-channel not found" in unknown.last_error
    bad_address = [r for (event, ch, _), r in rows.items() if event == "request.received" and ch == "email"]
    assert {r.status for r in bad_address} == {"dead"}
    assert "is not valid" in bad_address[0].last_error
    missing = [r for (event, _, _), r in rows.items() if event == "release.customer"]
    assert {r.status for r in missing} == {"dead"}
    assert "template ru/release.customer.j2" not in missing[0].last_error  # customer language here is en
    assert "'version' is undefined" in missing[0].last_error
    # the rest kept flowing
    assert rows[("request.response", "slack", INTERNAL)].status == "sent"
    assert rows[("request.received", "slack", INTERNAL)].status == "sent"
    # each failure is on the request's timeline with its reason
    errors = " | ".join(e.after["error"] for e in scene.events(request_id) if e.action == "notification.dead")
    assert "not found" in errors and "is not valid" in errors and "'version' is undefined" in errors


def test_quiet_hours_delay_low_severity_customer_notices(scene, slack, config):
    from release_requests.notifications.preferences import set_preferences
    from release_requests.notifications.schemas import PreferencesIn
    from release_requests.people.models import Person

    customer = scene.customer(timezone="Asia/Tokyo")
    admin = scene.person("admin")
    engineer = scene.person("triage")
    with db.transaction(scene.sessions) as s:
        now = db_now(s)
        local = now.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
        start = (local - timedelta(hours=1)).strftime("%H:%M")
        end = (local + timedelta(hours=2)).strftime("%H:%M")
        set_preferences(
            s, actor=s.get(Person, admin), customer_id=customer, data=PreferencesIn(quiet_hours=f"{start}-{end}")
        )
    low = scene.request(customer, by=engineer, severity=3)
    high = scene.request(customer, by=engineer, severity=2)
    low_customer = [r for r in scene.rows(request_id=low) if r.audience == "customer"]
    assert low_customer and all(
        timedelta(hours=1.9) < r.next_attempt_at - now < timedelta(hours=2.1) for r in low_customer
    )
    # staff notices and higher severities are not held back
    assert all(
        r.next_attempt_at - now < timedelta(minutes=1) for r in scene.rows(request_id=low) if r.audience == "internal"
    )
    assert all(r.next_attempt_at - now < timedelta(minutes=1) for r in scene.rows(request_id=high))


HOSTILE_TITLE = "<!channel> <@U123> & <https://evil|x>"
HOSTILE_ESCAPED = "&lt;!channel&gt; &lt;@U123&gt; &amp; &lt;https://evil|x&gt;"


def test_customer_text_reaches_slack_escaped_in_the_fallback_text_and_every_block(scene, slack, smtp, make_deliverer):
    """A title that would page a whole channel (`<!channel>`), mention someone and forge a link arrives as
    text in the notification fallback, the header and the body, in the customer's and the internal channel."""
    customer = scene.customer(language="ru")
    request_id = scene.request(customer, by=scene.person("triage"), title=HOSTILE_TITLE)
    deliver_until_quiet(make_deliverer())

    rows = scene.rows(request_id=request_id, audience="customer", channel="slack")
    customer_channel = rows[0].recipient
    posted = slack.messages(customer_channel) + slack.messages(INTERNAL)
    assert len(posted) == 2
    for message in posted:
        assert HOSTILE_ESCAPED in message["text"]
        header, section = message["blocks"][0]["text"]["text"], message["blocks"][1]["text"]["text"]
        assert HOSTILE_ESCAPED in header and HOSTILE_ESCAPED in section
        sent = json.dumps(message["text"]) + json.dumps(message["blocks"])
        for raw in ("<!channel>", "<@U123>", "<https://evil|x>", "&amp;amp;"):
            assert raw not in sent  # not live, and not escaped twice either
    # e-mail is not Slack: its subject keeps the title as written (the HTML part escapes it for HTML)
    assert all(HOSTILE_TITLE in mail.message["Subject"] for mail in smtp.received)
