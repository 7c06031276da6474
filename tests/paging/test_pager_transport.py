"""The paging service's Events v2 webhook: real pages, delivered by the real deliverer through `PagerTransport` to a
local Events v2 endpoint (`devservers.LocalEventsV2`) that validates every event as PagerDuty documents it and
keeps incidents by dedup key. Trigger, acknowledge and resolve are what Events v2 expects; one request is one
incident whatever is sent twice (a timeout, a crash after the far side took it, an escalation); a 500 or a
timeout is retried and nothing is lost; a 400 is a dead letter naming the reason; the routing key appears in
no error, log line or audit row."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from devservers import LocalEventsV2, free_port
from devservers.events_v2 import validate_event
from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.clock import db_now
from release_requests.errors import ConfigError
from release_requests.notifications.models import Notification
from release_requests.notifications.render import Rendered
from release_requests.notifications.transports import (
    Notice,
    PagerTransport,
    PermanentError,
    configure,
    pager_event,
    transport_status,
)
from release_requests.paging import service as paging
from release_requests.paging.models import Page
from release_requests.people.models import Person
from release_requests.requests import service as requests
from release_requests.requests.schemas import Respond
from release_requests.settings import Settings
from tests.conftest import REPO
from tests.notifications import conftest as outbox
from tests.paging.conftest import with_head

ROUTING_KEY = "R0UTEKEY5e1f0c9d2b7e4f6a8c5d3b2a"  # 32 characters, as Events v2 wants
# the outbox's fixtures: a local Slack, a real SMTP server, a deliverer with short leases and backoffs
slack, smtp_server, smtp, make_deliverer = outbox.slack, outbox.smtp_server, outbox.smtp, outbox.make_deliverer
deliver_until_quiet = outbox.deliver_until_quiet


@pytest.fixture
def pagerduty():
    with LocalEventsV2(routing_keys=(ROUTING_KEY,)) as server:  # HTTPS with a throwaway certificate
        yield server


def pager(server: LocalEventsV2, *, routing_key: str = ROUTING_KEY, timeout: float = 5) -> PagerTransport:
    return PagerTransport(server.url, routing_key=routing_key, timeout=timeout, cafile=str(server.cafile))


@pytest.fixture
def rota(scene):
    """A customer with no TAM; a duty manager as the fallback (paged first), an admin as head of support."""
    fallback, head = scene.person("duty_manager"), scene.person("admin")
    scene.fallback(fallback)
    scene.config = with_head(scene.config, head.email)
    return scene.customer(name="Hooli <!channel>"), fallback, head


def pager_rows(scene, request_id: str) -> list[Notification]:
    return scene.rows(request_id, "page.pager")


def everything_recorded(scene) -> str:
    """Every audit row and every outbox row (context and last error), as one text to search."""
    with db.transaction(scene.sessions) as s:
        audit = [[e.action, e.before, e.after, e.reason, e.actor] for e in s.scalars(select(AuditEvent))]
        rows = [[r.context, r.last_error, r.external_id] for r in s.scalars(select(Notification))]
    return json.dumps([audit, rows], default=str)


def test_trigger_acknowledge_and_resolve_are_what_events_v2_expects(scene, rota, pagerduty, make_deliverer, engine):
    customer, fallback, head = rota
    request_id = scene.file(customer, by=fallback)
    deliver_until_quiet(make_deliverer(extra=(pager(pagerduty),)))

    [trigger] = pagerduty.accepted()
    key = f"release-requests/{request_id}"
    assert validate_event(trigger, routing_keys=frozenset({ROUTING_KEY})) == []
    assert {k: trigger[k] for k in ("routing_key", "event_action", "dedup_key", "client")} == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": key,
        "client": "release-requests",
    }
    payload = trigger["payload"]
    assert payload["severity"] == "critical" and payload["source"] == "release-requests"
    assert request_id in payload["summary"] and fallback.name in payload["summary"]
    assert "Payroll" not in json.dumps(trigger), "the customer's words never reach the third party"
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert payload["custom_details"] == {
        "request_id": request_id,
        "customer": "Hooli <!channel>",
        "severity": 1,
        "step": 1,
        "paged": fallback.name,
    }
    assert payload["group"] == "Hooli <!channel>" and payload["class"] == "severity 1 request"
    [link] = trigger["links"]
    assert link["href"].endswith(f"/{request_id}") and link["href"] == trigger["client_url"]
    incident = pagerduty.incident(key)
    assert (incident.status, incident.severity, incident.log) == ("triggered", "critical", ["trigger"])
    [row] = pager_rows(scene, request_id)
    assert (row.status, row.external_id) == ("sent", key)

    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:
        paging.acknowledge(s, actor=s.get(Person, fallback.id), request_id=request_id, via="api", config=scene.config)
    deliver_until_quiet(make_deliverer(extra=(pager(pagerduty),)))
    assert pagerduty.accepted()[-1] == {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": key}
    assert pagerduty.incident(key).status == "acknowledged"

    with db.transaction(sessions) as s:
        respond = Respond(message="On it.")
        requests.respond(s, actor=s.get(Person, fallback.id), request_id=request_id, data=respond, config=scene.config)
    [resolved] = paging.escalate_due(sessions, config=scene.config)
    assert resolved.outcome == "resolved"
    deliver_until_quiet(make_deliverer(extra=(pager(pagerduty),)))
    assert pagerduty.accepted()[-1] == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": key}
    assert len(pagerduty.incidents) == 1 and pagerduty.incident(key).status == "resolved"
    assert pagerduty.incident(key).log == ["trigger", "acknowledge", "resolve"]
    assert {r.status for r in pager_rows(scene, request_id)} == {"sent"}


def test_a_timed_out_trigger_is_sent_again_and_stays_one_incident(scene, rota, pagerduty, make_deliverer, engine):
    """The paging service takes the event and the answer never comes back: the deliverer records a transient
    failure and sends it again; the same dedup key keeps it one incident. An escalation re-triggers it too."""
    customer, fallback, head = rota
    request_id = scene.file(customer, by=fallback)
    pagerduty.stall(3)  # longer than the transport waits
    deliverer = make_deliverer(extra=(pager(pagerduty, timeout=1),))
    deliverer.deliver_due()
    [row] = pager_rows(scene, request_id)
    assert row.status == "failed" and row.last_error.startswith("pager trigger: timed out")
    assert len(pagerduty.incidents) == 1, "the far side took it before the answer was lost"

    deliver_until_quiet(deliverer)
    [row] = pager_rows(scene, request_id)
    assert (row.status, row.attempts) == ("sent", 2)
    key = f"release-requests/{request_id}"
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "trigger"]
    assert len(pagerduty.incidents) == 1 and pagerduty.incident(key).log == ["trigger", "trigger"]
    failed = scene.events(request_id, "notification.failed")
    assert [e.after["channel"] for e in failed] == ["pager"] and "timed out" in failed[0].after["error"]

    # nobody acknowledged in time (its deadline moved to the past): the next person is paged, and the paging
    # service hears it on the same incident
    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:
        s.get(Page, request_id).escalate_at = db_now(s) - timedelta(seconds=1)
    [escalation] = paging.escalate_due(sessions, config=scene.config)
    assert escalation.to_person == head.name
    deliver_until_quiet(deliverer)
    assert len(pagerduty.incidents) == 1 and pagerduty.incident(key).log == ["trigger"] * 3
    assert pagerduty.accepted()[-1]["payload"]["custom_details"]["paged"] == head.name


def test_a_500_is_retried_until_delivered_and_429_waits_for_retry_after(scene, rota, pagerduty, make_deliverer):
    customer, fallback, _ = rota
    request_id = scene.file(customer, by=fallback)
    pagerduty.respond(500, times=2)
    deliver_until_quiet(make_deliverer(extra=(pager(pagerduty),)))
    [row] = pager_rows(scene, request_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert [d.answered for d in pagerduty.received] == [500, 500, 202]
    assert len(pagerduty.incidents) == 1
    errors = [e.after["error"] for e in scene.events(request_id, "notification.failed")]
    assert errors == ["pager trigger: HTTP 500 Internal Server Error: error — Internal server error"] * 2

    other = scene.file(customer, by=fallback)
    pagerduty.respond(429, retry_after=120)
    deliverer = make_deliverer(extra=(pager(pagerduty),))
    deliverer.deliver_due()
    [row] = pager_rows(scene, other)
    assert row.status == "failed" and row.last_error.endswith("retry after 120 s")
    assert 110 < (row.next_attempt_at - row.created_at).total_seconds() < 130


def test_a_refused_event_is_a_dead_letter_naming_why_and_the_routing_key_is_never_recorded(
    scene, rota, pagerduty, make_deliverer, caplog
):
    customer, fallback, _ = rota
    request_id = scene.file(customer, by=fallback)
    # a compatible service that quotes the key back in its errors: scrubbed before anything is recorded
    pagerduty.respond(400, errors=[f"routing_key {ROUTING_KEY} is disabled"])
    with caplog.at_level(logging.DEBUG):
        deliver_until_quiet(make_deliverer(extra=(pager(pagerduty),)))
    [row] = pager_rows(scene, request_id)
    assert (row.status, row.attempts) == ("dead", 1), "a 400 is not retried"
    assert row.last_error == (
        "pager trigger: HTTP 400 Bad Request: invalid event — Event object is invalid "
        "(routing_key [routing key] is disabled)"
    )
    [dead] = scene.events(request_id, "notification.dead")
    assert dead.after["error"] == row.last_error
    alerts = scene.rows(request_id, "notification.dead")
    assert alerts and all(a.context["error"] == row.last_error for a in alerts), "the team is told why"

    # a key the paging service does not accept (PagerDuty's are 32 characters): refused with its reason
    short = "key-" + ROUTING_KEY[:12]
    other = scene.file(customer, by=fallback)
    with caplog.at_level(logging.DEBUG):
        deliver_until_quiet(make_deliverer(extra=(pager(pagerduty, routing_key=short),)))
    [row] = pager_rows(scene, other)
    assert row.status == "dead" and "Length of 'routing_key' is incorrect (should be 32 characters)" in row.last_error

    recorded = everything_recorded(scene)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (ROUTING_KEY, short):
        assert secret not in recorded and secret not in logged
    assert ROUTING_KEY in pagerduty.received[0].body.decode(), "the key did go where it belongs"


def test_pager_events_of_one_request_leave_in_order(scene, rota, pagerduty, make_deliverer, engine):
    """An acknowledge queued while the trigger waits for its retry must not overtake it: the paging service
    would drop it (no incident yet), then the late trigger would open an incident nobody acknowledges."""
    customer, fallback, _ = rota
    request_id = scene.file(customer, by=fallback)
    pagerduty.respond(500)
    deliverer = make_deliverer(extra=(pager(pagerduty),), backoff_seconds=[1.0])
    deliverer.deliver_due()
    assert pager_rows(scene, request_id)[0].status == "failed"
    with db.transaction(db.make_sessionmaker(engine)) as s:
        paging.acknowledge(s, actor=s.get(Person, fallback.id), request_id=request_id, via="cli", config=scene.config)
    assert deliverer.deliver_due()["held"] == 1
    trigger, ack = pager_rows(scene, request_id)
    assert (ack.context["action"], ack.status, ack.attempts) == ("acknowledge", "queued", 0)
    assert ack.next_attempt_at >= trigger.next_attempt_at

    deliver_until_quiet(deliverer)
    assert [(e["event_action"], d.answered) for e, d in zip(pagerduty.events(), pagerduty.received, strict=True)] == [
        ("trigger", 500),
        ("trigger", 202),
        ("acknowledge", 202),
    ]
    assert pagerduty.incident(f"release-requests/{request_id}").status == "acknowledged"


def test_an_acknowledge_begun_before_an_escalation_committed_still_follows_its_trigger(
    scene, rota, pagerduty, make_deliverer, engine
):
    """The acknowledging transaction starts (its now() is fixed), a watcher escalates and commits meanwhile, and
    only then does the acknowledgement take the page: its row is written after the escalation's trigger, so it
    must sort, and leave, after it — or the re-trigger would reach the paging service after the acknowledge."""
    customer, fallback, head = rota
    request_id = scene.file(customer, by=fallback)
    deliverer = make_deliverer(extra=(pager(pagerduty),))
    deliver_until_quiet(deliverer)
    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:  # nobody acknowledged in time
        s.get(Page, request_id).escalate_at = db_now(s) - timedelta(seconds=1)
    with sessions() as acknowledging, acknowledging.begin():
        db_now(acknowledging)  # the transaction has begun: now() is fixed from here
        [escalation] = paging.escalate_due(sessions, config=scene.config)  # commits on its own
        assert escalation.to_person == head.name
        actor = acknowledging.get(Person, head.id)
        paging.acknowledge(acknowledging, actor=actor, request_id=request_id, via="cli", config=scene.config)
    assert [r.context["action"] for r in pager_rows(scene, request_id)] == ["trigger", "trigger", "acknowledge"]
    deliver_until_quiet(deliverer)
    key = f"release-requests/{request_id}"
    assert pagerduty.incident(key).log == ["trigger", "trigger", "acknowledge"]
    assert pagerduty.incident(key).status == "acknowledged"


def test_a_deliverer_killed_after_the_pager_took_the_event_resends_it_into_the_same_incident(
    scene, rota, pagerduty, make_deliverer, committed_db
):
    customer, fallback, _ = rota
    request_id = scene.file(customer, by=fallback)
    env = {
        **os.environ,
        "RR_CRASH_AT": "notify:after_pager",
        "RR_PAGING_WEBHOOK_URL": pagerduty.url,
        "RR_PAGING_ROUTING_KEY": ROUTING_KEY,
    }
    died = subprocess.run(
        [sys.executable, "-m", "tests.notifications.deliver_and_die", committed_db, "1", f"pager={pagerduty.cafile}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert died.returncode == -9, died.stderr  # SIGKILL at the crash point
    [row] = pager_rows(scene, request_id)
    assert (row.status, row.attempts) == ("sending", 1), "killed before it could record the delivery"
    assert len(pagerduty.incidents) == 1

    deliver_until_quiet(make_deliverer(extra=(pager(pagerduty),)), timeout=15)  # once the 1 s lease runs out
    [row] = pager_rows(scene, request_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(pagerduty.incidents) == 1
    assert pagerduty.incident(f"release-requests/{request_id}").log == ["trigger", "trigger"]


def notice(context: dict, *, subject: str = "RR-2026-000001: severity 1 request", severity: int = 1) -> Notice:
    rendered = Rendered(subject=subject, text="", html="", blocks=[], slack_text=subject)
    return Notice(
        id="n-1",
        attempt=1,
        event="page.pager",
        audience="internal",
        channel="pager",
        recipient="pager",
        language="en",
        request_id="RR-2026-000001",
        created_at=datetime.fromisoformat("2026-03-01T02:00:00+00:00"),
        rendered=rendered,
        context=context,
        request={"id": "RR-2026-000001", "severity": severity, "kind": "false_positive", "customer": "Hooli"},
        status_url="",
    )


@pytest.mark.parametrize(("severity", "expected"), [(1, "critical"), (2, "error"), (3, "warning"), (4, "info")])
def test_severity_maps_to_events_v2_and_the_summary_fits(severity, expected):
    context = {"action": "trigger", "dedup_key": "release-requests/RR-2026-000001", "severity": severity, "step": 1}
    event = pager_event(notice(context, subject="x" * 2000, severity=severity), routing_key=ROUTING_KEY)
    assert event["payload"]["severity"] == expected
    assert len(event["payload"]["summary"]) == 1024 and event["payload"]["summary"].endswith("…")
    assert "links" not in event  # no status URL configured: no link rather than an empty one
    assert validate_event(event) == []


@pytest.mark.parametrize(
    ("context", "why"),
    [
        ({"action": "page", "dedup_key": "k"}, "action 'page' is not one of trigger, acknowledge, resolve"),
        ({"action": "resolve"}, "no dedup_key"),
        ({"action": "trigger", "dedup_key": "k" * 256, "severity": 1}, "no dedup_key"),
        ({"action": "trigger", "dedup_key": "k", "severity": 7}, "severity 7 has no Events v2 severity"),
    ],
)
def test_a_row_that_cannot_make_an_event_is_permanent(context, why):
    with pytest.raises(PermanentError, match=why):
        pager_event(notice(context), routing_key=ROUTING_KEY)


def test_the_pager_is_configured_by_its_two_settings_and_never_shows_the_key(settings, config, monkeypatch):
    bare = settings.model_copy(update={"paging_webhook_url": None, "paging_routing_key": None})
    assert transport_status(bare)["pager"] == "not configured: RR_PAGING_WEBHOOK_URL unset"
    no_key = bare.model_copy(update={"paging_webhook_url": "https://events.pagerduty.com/v2/enqueue"})
    assert transport_status(no_key)["pager"] == "not configured: RR_PAGING_ROUTING_KEY unset"
    assert configure(no_key, config)["pager"].reason == "RR_PAGING_ROUTING_KEY unset"

    plain = no_key.model_copy(
        update={"paging_webhook_url": "http://pager.vendor.example/v2/enqueue?token=s3cret", "paging_routing_key": "k"}
    )
    status = transport_status(plain)["pager"]
    assert status.startswith("invalid: RR_PAGING_WEBHOOK_URL: expected https://") and "s3cret" not in status
    with pytest.raises(ConfigError, match="RR_PAGING_WEBHOOK_URL"):
        configure(plain, config)

    monkeypatch.setenv("RR_PAGING_WEBHOOK_URL", "http://127.0.0.1:9/v2/enqueue")
    monkeypatch.setenv("RR_PAGING_ROUTING_KEY", ROUTING_KEY)
    from_env = Settings(database_url=settings.database_url, data_dir=settings.data_dir)
    assert transport_status(from_env)["pager"] == "configured"
    transport = configure(from_env, config)["pager"]
    assert isinstance(transport, PagerTransport) and transport.url == "http://127.0.0.1:9/v2/enqueue"
    assert ROUTING_KEY not in repr(transport)
    with pytest.raises(ConfigError, match="RR_PAGING_ROUTING_KEY: empty"):
        PagerTransport("https://events.pagerduty.com/v2/enqueue", routing_key="  ")


def test_a_refused_connection_is_transient(scene, rota, make_deliverer):
    customer, fallback, _ = rota
    request_id = scene.file(customer, by=fallback)
    closed = PagerTransport(f"http://127.0.0.1:{free_port()}/v2/enqueue", routing_key=ROUTING_KEY, timeout=2)
    make_deliverer(extra=(closed,)).deliver_due()
    [row] = pager_rows(scene, request_id)
    assert row.status == "failed" and row.last_error.startswith("pager trigger: ConnectError")
    assert ROUTING_KEY not in row.last_error
