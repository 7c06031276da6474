"""Transports: the generic webhook against a real local HTTPS (and loopback HTTP) receiver that checks its
signature; transports that are not configured, which skip their notices quietly (no dead letters, no alerts,
no retries); /healthz naming each transport; and an alert that dies, which raises no further alert."""

from __future__ import annotations

import logging
import threading

import pytest
from fastapi.testclient import TestClient

from devservers import LocalWebhook, verify_webhook
from release_requests import db
from release_requests.api.app import create_app
from release_requests.clock import db_now
from release_requests.errors import ConfigError
from release_requests.notifications.delivery import ALERT_EVENT, Deliverer
from release_requests.notifications.models import Notification
from release_requests.notifications.service import WEBHOOK_RECIPIENT, Recipient, notify, queue
from release_requests.notifications.transports import (
    NotConfigured,
    Transport,
    WebhookTransport,
    check_webhook_url,
    configure,
    transport_status,
)
from release_requests.requests.models import ReleaseRequest
from release_requests.server import check_notifications
from release_requests.settings import Settings, get_settings
from tests.notifications.conftest import INTERNAL, deliver_until_quiet

SECRET = "whsec-3a1f0c9d2b7e4f6a8c5d"
UNCONFIGURED = {
    "slack_token": None,
    "smtp_url": None,
    "webhook_url": None,
    "webhook_secret": None,
    "paging_webhook_url": None,
    "paging_routing_key": None,
}


@pytest.fixture
def webhook_enabled(monkeypatch, scene):
    """Turn the webhook on: the policy that queues staff notices for it (`[internal] webhook`), and the
    settings that say where it is."""

    def enable(url: str, secret: str = SECRET) -> None:
        monkeypatch.setenv("RR_WEBHOOK_URL", url)
        monkeypatch.setenv("RR_WEBHOOK_SECRET", secret)
        get_settings.cache_clear()
        notifications = scene.config.notifications
        internal = notifications.internal.model_copy(update={"webhook": True})
        scene.config = scene.config.model_copy(
            update={"notifications": notifications.model_copy(update={"internal": internal})}
        )

    yield enable
    get_settings.cache_clear()


@pytest.fixture
def hook():
    with LocalWebhook(secret=SECRET) as server:  # HTTPS with a throwaway certificate
        yield server


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def webhook_transport(hook: LocalWebhook, secret: str = SECRET) -> WebhookTransport:
    return WebhookTransport(hook.url, secret=secret, timeout=5, cafile=str(hook.cafile))


def test_webhook_gets_staff_notices_signed_retries_a_500_and_gives_up_on_a_400(
    scene, slack, smtp, hook, webhook_enabled, make_deliverer
):
    webhook_enabled(hook.url)
    customer = scene.customer()
    request_id = scene.request(customer, by=scene.person("triage"))
    [row] = scene.rows(request_id=request_id, channel="webhook")
    assert (row.audience, row.recipient, row.event) == ("internal", WEBHOOK_RECIPIENT, "request.received")
    # customer notices never go to the webhook: it hears exactly what the internal Slack channel hears
    assert {r.audience for r in scene.rows(request_id=request_id) if r.channel == "webhook"} == {"internal"}

    hook.respond(500)
    deliverer = make_deliverer(extra=(webhook_transport(hook),))
    deliver_until_quiet(deliverer)
    [row] = scene.rows(request_id=request_id, channel="webhook")
    assert (row.status, row.attempts) == ("sent", 2)
    assert [d.answered for d in hook.received] == [500, 200]
    assert all(d.verified for d in hook.received), "the receiver verified every signature"
    delivered = hook.received[-1]
    assert row.external_id == f"delivery-{len(hook.received)}"  # the receiver's X-Request-Id
    assert delivered.headers["X-RR-Notification-Id"] == row.id and delivered.headers["X-RR-Event"] == row.event
    assert delivered.headers["Content-Type"].startswith("application/json")
    document = delivered.json
    assert document["type"] == "rr_notification" and document["version"] == 1
    assert (document["notification_id"], document["event"], document["audience"]) == (
        row.id,
        "request.received",
        "internal",
    )
    assert document["attempt"] == 2 and document["request"]["id"] == request_id
    assert document["request"]["status_url"].endswith(f"/requests/{request_id}")
    assert request_id in document["subject"] and document["text"] and document["context"]["severity"] == 1
    # the signature covers the timestamp and the exact body: altered by one byte, it no longer verifies
    assert not verify_webhook(SECRET, delivered.headers, delivered.body + b" ")
    assert not verify_webhook("another secret", delivered.headers, delivered.body)
    failed = [e for e in scene.events(request_id) if e.action == "notification.failed"]
    assert [e.after["error"] for e in failed] == ["webhook: HTTP 500 Internal Server Error"]

    # a 400 is permanent: dead at once, and the team hears of it through every configured transport
    with db.transaction(scene.sessions) as s:
        notify(
            s,
            request=s.get(ReleaseRequest, request_id),
            event="request.response",
            targets=["internal_channel"],
            config=scene.config,
            at=db_now(s),
            context={"message": "checking", "from": "Olga"},
        )
    hook.respond(400)
    deliver_until_quiet(deliverer)
    [dead] = scene.rows(request_id=request_id, channel="webhook", event="request.response")
    assert (dead.status, dead.attempts, dead.last_error) == ("dead", 1, "webhook: HTTP 400 Bad Request")
    alerts = scene.rows(request_id=request_id, event=ALERT_EVENT)
    assert sorted((a.channel, a.status) for a in alerts) == [("email", "sent"), ("slack", "sent"), ("webhook", "sent")]
    alert = hook.received[-1].json
    assert alert["event"] == ALERT_EVENT and alert["context"]["failed_id"] == dead.id
    assert alert["context"]["error"] == "webhook: HTTP 400 Bad Request"


def test_webhook_429_waits_for_retry_after_and_408_is_retried(scene, hook, webhook_enabled, make_deliverer):
    webhook_enabled(hook.url)
    request_id = scene.request(scene.customer(), by=scene.person("triage"))
    deliverer = make_deliverer(extra=(webhook_transport(hook),))
    hook.respond(429, retry_after=30)
    deliverer.deliver_due()
    [row] = scene.rows(request_id=request_id, channel="webhook")
    assert row.status == "failed" and row.last_error == "webhook: HTTP 429 Too Many Requests, retry after 30 s"
    with db.transaction(scene.sessions) as s:
        assert 25 < (row.next_attempt_at - db_now(s)).total_seconds() <= 30
        s.execute(Notification.__table__.update().where(Notification.id == row.id).values(next_attempt_at=db_now(s)))
    hook.respond(408)
    deliver_until_quiet(deliverer)
    [row] = scene.rows(request_id=request_id, channel="webhook")
    assert (row.status, row.attempts) == ("sent", 3)


def test_webhook_over_loopback_http_configured_from_settings(scene, settings, config, engine, webhook_enabled):
    """Only the webhook is configured: its notice is delivered over plain HTTP to 127.0.0.1; Slack and
    e-mail notices are skipped, not dead."""
    with LocalWebhook(secret=SECRET, tls=False) as plain:
        assert plain.url.startswith("http://127.0.0.1:")
        webhook_enabled(plain.url)
        only_webhook = settings.model_copy(update={**UNCONFIGURED, "webhook_url": plain.url, "webhook_secret": SECRET})
        transports = configure(only_webhook, config)
        assert isinstance(transports["webhook"], WebhookTransport)
        assert all(isinstance(t, Transport) for t in transports.values())
        request_id = scene.request(scene.customer(), by=scene.person("triage"))
        deliverer = Deliverer(engine=engine, config=config, transports=transports)
        assert deliverer.deliver_due() == {"sent": 1, "skipped": 4}
        assert [(d.verified, d.json["request"]["id"]) for d in plain.delivered()] == [(True, request_id)]
    assert {r.channel: r.status for r in scene.rows(request_id=request_id)} == {
        "webhook": "sent",
        "slack": "skipped",
        "email": "skipped",
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.vendor.example/rr",
        "https://10.1.2.3:8443/hook",
        "http://127.0.0.1:8080/hook",
        "http://127.9.9.9/",
        "http://[::1]:9000/x",
        "http://localhost:9000/x",
    ],
)
def test_webhook_url_accepted(url):
    assert check_webhook_url(url) == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://hooks.vendor.example/rr?token=s3cret", "got http://hooks.vendor.example…"),
        ("http://10.0.0.5/hook", "got http://10.0.0.5…"),
        ("http://169.254.169.254/latest/meta-data", "got http://169.254.169.254…"),
        ("ftp://127.0.0.1/x", "got ftp://127.0.0.1…"),
        ("hooks.vendor.example/rr", "got no scheme…"),
        ("https:///no-host", "got https…"),
    ],
)
def test_webhook_url_refused_without_echoing_it(url, shown, settings, config):
    with pytest.raises(ConfigError, match="RR_WEBHOOK_URL: expected https://") as refused:
        check_webhook_url(url)
    assert str(refused.value).endswith(shown) and "s3cret" not in str(refused.value)
    bad = settings.model_copy(update={"webhook_url": url, "webhook_secret": SECRET})
    assert transport_status(bad)["webhook"].startswith("invalid: RR_WEBHOOK_URL: expected https://")
    with pytest.raises(ConfigError):
        configure(bad, config)


def test_unconfigured_transports_skip_their_notices_without_dead_letters_alerts_or_retries(
    scene, settings, config, engine
):
    """The default installation (no Slack, no SMTP, no webhook): every notice is skipped once, quietly."""
    bare = settings.model_copy(update=UNCONFIGURED)
    deliverer = Deliverer(engine=engine, config=config, transports=configure(bare, config), backoff_seconds=[0.1])
    assert {name: t.reason for name, t in deliverer.transports.items() if not t.configured} == {
        "slack": "RR_SLACK_TOKEN unset",
        "email": "RR_SMTP_URL unset",
        "webhook": "RR_WEBHOOK_URL unset",
        "pager": "RR_PAGING_WEBHOOK_URL unset",
    }
    customer = scene.customer()
    engineer = scene.person("triage")
    request_id = scene.request(customer, by=engineer)
    with db.transaction(scene.sessions) as s:
        notify(
            s,
            request=s.get(ReleaseRequest, request_id),
            event="release.customer",
            targets=["customer"],
            config=config,
            at=db_now(s),
            context={"how_to_get": "update"},  # no "version": it could not even be rendered
        )
    assert deliverer.deliver_due() == {"skipped": 7}
    assert deliverer.seconds_until_due() is None, "nothing is left to retry"
    rows = scene.rows(request_id=request_id)
    assert {r.status for r in rows} == {"skipped"} and {r.attempts for r in rows} == {0}
    assert {r.last_error for r in rows} == {
        "slack not configured: RR_SLACK_TOKEN unset",
        "email not configured: RR_SMTP_URL unset",
    }
    assert not scene.rows(request_id=request_id, event=ALERT_EVENT), "no alert notices"
    actions = [e.action for e in scene.events(request_id)]
    assert "notification.dead" not in actions
    assert actions == ["notification.queued"] * 7, "the audit log only says what was queued"

    # the serving deliverer says so once per transport when it starts, not once per notice
    from flows.notifications import listen_and_deliver

    stop = threading.Event()
    stop.set()
    logger, seen = logging.getLogger("flows.notifications"), Records()
    logger.addHandler(seen)  # on the logger itself: Prefect's logging set-up may keep it from the root logger
    try:
        listen_and_deliver(stop, deliverer=deliverer)
    finally:
        logger.removeHandler(seen)
    warnings = [r.getMessage() for r in seen.records if r.levelno == logging.WARNING]
    assert warnings == [
        "notifications: slack not configured (RR_SLACK_TOKEN unset): its notices are skipped, not sent",
        "notifications: email not configured (RR_SMTP_URL unset): its notices are skipped, not sent",
        "notifications: webhook not configured (RR_WEBHOOK_URL unset): its notices are skipped, not sent",
        "notifications: pager not configured (RR_PAGING_WEBHOOK_URL unset): its notices are skipped, not sent",
    ]


def test_a_skipped_notice_can_be_retried_once_its_transport_is_configured(
    scene, settings, config, engine, make_deliverer
):
    from release_requests.notifications.service import retry
    from release_requests.people.models import Person

    bare = settings.model_copy(update=UNCONFIGURED)
    request_id = scene.request(scene.customer(), by=scene.person("triage"))
    Deliverer(engine=engine, config=config, transports=configure(bare, config)).deliver_due()
    [internal] = scene.rows(request_id=request_id, audience="internal")
    admin = scene.person("admin")
    with db.transaction(scene.sessions) as s:
        assert retry(s, actor=s.get(Person, admin), notification_id=internal.id).status == "queued"
    assert make_deliverer().deliver_due() == {"sent": 1}
    assert scene.rows(request_id=request_id, audience="internal")[0].status == "sent"


def test_healthz_names_each_transport_and_whether_it_is_configured(settings, config, app_engine):
    sessions = db.make_sessionmaker(app_engine)

    def health(**update) -> dict:
        app = create_app(settings=settings.model_copy(update=UNCONFIGURED | update), config=config, sessions=sessions)
        with TestClient(app) as client:
            response = client.get("/healthz")
        assert response.status_code == 200
        return response.json()

    assert health() == {
        "status": "ok",
        "notifications": {
            "slack": "not configured: RR_SLACK_TOKEN unset",
            "email": "not configured: RR_SMTP_URL unset",
            "webhook": "not configured: RR_WEBHOOK_URL unset",
            "pager": "not configured: RR_PAGING_WEBHOOK_URL unset",
        },
    }
    configured = health(
        slack_token="xoxb-1",
        smtp_url="smtp+starttls://relreq:pw@mail.vendor.example",
        webhook_url="https://hooks.vendor.example/rr",
        webhook_secret=SECRET,
    )
    assert configured["notifications"] == {
        "slack": "configured",
        "email": "configured",
        "webhook": "configured",
        "pager": "not configured: RR_PAGING_WEBHOOK_URL unset",
    }
    half = health(webhook_url="https://hooks.vendor.example/rr", smtp_url="mail.vendor.example:25")
    assert half["status"] == "ok"
    assert half["notifications"]["webhook"] == "not configured: RR_WEBHOOK_SECRET unset"
    assert half["notifications"]["email"] == "invalid: see the server log"  # the why may name internal hosts


def test_a_dead_alert_raises_no_further_alert(scene, slack, smtp, make_deliverer, config):
    request_id = scene.request(scene.customer(), by=scene.person("triage"))
    deliverer = make_deliverer()
    deliver_until_quiet(deliverer)
    with db.transaction(scene.sessions) as s:
        alert = queue(
            s,
            request_id=request_id,
            event=ALERT_EVENT,
            recipient=Recipient("internal", "slack", "no-such-channel"),
            context={
                "failed_id": "0" * 36,
                "failed_event": "request.received",
                "failed_channel": "email",
                "failed_recipient": "soc@example.com",
                "error": "SMTP recipient refused: 550 no such user",
                "attempts": 1,
            },
            at=db_now(s),
        )
        alert_id = alert.id
    assert deliverer.deliver_due() == {"dead": 1}
    [dead] = scene.rows(request_id=request_id, event=ALERT_EVENT)
    assert dead.id == alert_id and dead.status == "dead" and "channel #no-such-channel not found" in dead.last_error
    assert deliverer.seconds_until_due() is None, "no alert about the alert was queued"
    assert [e.entity_id for e in scene.events(request_id) if e.action == "notification.dead"] == [alert_id]
    assert len(slack.messages(INTERNAL)) == 1  # the request's own internal notice, nothing more


def test_not_configured_transport_refuses_to_send():
    transport = NotConfigured("webhook", "RR_WEBHOOK_URL unset")
    assert isinstance(transport, Transport) and not transport.configured
    with pytest.raises(Exception, match="webhook is not configured: RR_WEBHOOK_URL unset") as refused:
        transport.send(None)
    assert refused.value.permanent


def test_settings_read_the_webhook_from_the_environment(monkeypatch):
    monkeypatch.setenv("RR_WEBHOOK_URL", "https://hooks.vendor.example/rr")
    monkeypatch.setenv("RR_WEBHOOK_SECRET", SECRET)
    settings = Settings()
    assert (settings.webhook_url, settings.webhook_secret) == ("https://hooks.vendor.example/rr", SECRET)
    assert transport_status(settings)["webhook"] == "configured"


def test_serve_says_once_on_its_terminal_which_transports_are_off_and_refuses_a_wrong_setting(settings, config):
    logger, seen = logging.getLogger("release_requests.server"), Records()
    logger.addHandler(seen)
    try:
        check_notifications(settings.model_copy(update=UNCONFIGURED), config)
    finally:
        logger.removeHandler(seen)
    assert [r.getMessage() for r in seen.records if r.levelno == logging.WARNING] == [
        "notifications: slack not configured (RR_SLACK_TOKEN unset): its notices are skipped, not sent",
        "notifications: email not configured (RR_SMTP_URL unset): its notices are skipped, not sent",
        "notifications: webhook not configured (RR_WEBHOOK_URL unset): its notices are skipped, not sent",
        "notifications: pager not configured (RR_PAGING_WEBHOOK_URL unset): its notices are skipped, not sent",
    ]
    wrong = settings.model_copy(
        update={**UNCONFIGURED, "webhook_url": "http://relay.corp.example/hook", "webhook_secret": SECRET}
    )
    with pytest.raises(ConfigError, match="RR_WEBHOOK_URL"):
        check_notifications(wrong, config)
