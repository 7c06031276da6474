"""SLA state computed from audit events, routing at intake, queue order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from release_requests.audit.service import timeline
from release_requests.config import load_config
from release_requests.requests import presentation, service
from release_requests.requests.schemas import Accept, Answer, NeedsInfo, Respond, SeverityChange
from release_requests.sla.calendar import BusinessCalendar
from release_requests.sla.service import ClockFacts, compute, status_of
from release_requests.workflows import intake
from tests.conftest import REPO

MSK = "+03:00"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_severity_1_on_saturday_night_is_due_in_30_minutes_and_moves_through_states(build, session, config):
    customer = build.customer()
    duty = build.person("duty_manager")
    received = at(f"2026-11-21T03:00{MSK}")  # a Saturday night
    request = build.request(by=duty, customer=customer, severity=1, received_at=received)

    def state(minutes: float):
        return status_of(session, request=request, config=config, now=received + timedelta(minutes=minutes))

    early = state(5)
    assert early.due_at == at(f"2026-11-21T03:30{MSK}")
    assert early.due_at_local.startswith("2026-11-21 03:30 MSK")
    assert (early.state, early.remaining_seconds) == ("on_track", 25 * 60)
    assert state(16).state == "at_risk" and state(16).thresholds_crossed == ["50%"]
    assert state(25).thresholds_crossed == ["50%", "80%"]
    late = state(31)
    assert (late.state, late.overdue_seconds, late.remaining_seconds) == ("breached", 60, None)


def test_business_clock_across_the_weekend(build, session, config):
    customer = build.customer()
    duty = build.person("duty_manager")
    request = build.request(by=duty, customer=customer, severity=3, received_at=at(f"2026-11-20T17:00{MSK}"))
    sla = status_of(session, request=request, config=config, now=at(f"2026-11-21T12:00{MSK}"))
    assert sla.clock == "business" and sla.target_minutes == 360
    assert sla.due_at == at(f"2026-11-23T14:00{MSK}")
    assert sla.elapsed_seconds == 3600  # Friday 17:00–18:00 only
    assert sla.state == "on_track"


def test_standard_tier_gets_its_own_target(build, session, config):
    customer = build.customer(tier="standard")
    request = build.request(
        by=build.person("duty_manager"), customer=customer, severity=2, received_at=at("2026-11-25T10:00+00:00")
    )
    sla = status_of(session, request=request, config=config, now=at("2026-11-25T10:01+00:00"))
    assert sla.target_minutes == 480 and sla.due_at == at("2026-11-25T18:00+00:00")


def test_first_qualified_response_meets_the_clock(build, session, config):
    customer = build.customer()
    tam = build.person("tam", tam_for=[customer.id])
    request = build.request(by=tam, customer=customer, severity=2, received_at=datetime.now(UTC) - timedelta(hours=1))
    service.respond(session, actor=tam, request_id=request.id, data=Respond(message="We are on it"), config=config)
    sla = status_of(session, request=request, config=config, now=datetime.now(UTC) + timedelta(days=1))
    assert sla.state == "met" and sla.met_at is not None
    assert sla.remaining_seconds is None and sla.overdue_seconds is None


def test_late_response_is_still_a_breach(build, session, config):
    customer = build.customer()
    triage = build.person("triage")
    request = build.request(
        by=build.person("duty_manager"),
        customer=customer,
        severity=1,
        received_at=datetime.now(UTC) - timedelta(hours=2),
    )
    intake.triage(session, actor=triage, request_id=request.id, decision=Accept(decision="accept"), config=config)
    assert status_of(session, request=request, config=config, now=datetime.now(UTC)).state == "breached"


def test_needs_info_pauses_the_clock_until_the_customer_answers(build, session, config):
    customer = build.customer()
    triage, user = build.person("triage"), build.person("customer", customer_id=customer.id)
    request = build.request(by=user, customer=customer, severity=2, received_at=datetime.now(UTC) - timedelta(hours=1))
    intake.triage(
        session,
        actor=triage,
        request_id=request.id,
        decision=NeedsInfo(decision="needs_info", question="Which build?"),
        config=config,
    )
    paused = status_of(session, request=request, config=config, now=datetime.now(UTC) + timedelta(hours=10))
    assert paused.paused and paused.due_at is None and paused.state != "breached"
    assert paused.met_at is None  # asking a question is not the qualified answer
    service.answer(session, actor=user, request_id=request.id, data=Answer(message="4.2.1"))
    resumed = status_of(session, request=request, config=config, now=datetime.now(UTC))
    assert not resumed.paused and resumed.due_at is not None
    actions = [e.action for e in timeline(session, request_id=request.id)]
    assert actions.index("request.needs_info") < actions.index("request.answered")


def test_pause_arithmetic_on_the_business_clock():
    cal = BusinessCalendar(timezone="Europe/Moscow", country="RU")
    policy = load_config(REPO / "config").severity.for_request(severity=3, tier="enterprise")
    start = at(f"2026-11-24T09:00{MSK}")
    facts = ClockFacts(
        started_at=start, severity=3, met_at=None, pauses=[(at(f"2026-11-24T10:00{MSK}"), at(f"2026-11-24T12:00{MSK}"))]
    )
    sla = compute(facts, policy=policy, cal=cal, now=at(f"2026-11-24T13:00{MSK}"))
    assert sla.due_at == at(f"2026-11-24T17:00{MSK}")  # 6 business hours + 2 paused
    assert sla.paused_seconds == 7200 and sla.elapsed_seconds == 2 * 3600


def test_severity_change_retargets_from_the_same_start(build, session, config):
    customer = build.customer()
    tam = build.person("tam", tam_for=[customer.id])
    received = datetime.now(UTC) - timedelta(minutes=10)
    request = build.request(by=tam, customer=customer, severity=2, received_at=received)
    service.change_severity(
        session, actor=tam, request_id=request.id, data=SeverityChange(severity=1, reason="whole payroll down")
    )
    sla = status_of(session, request=request, config=config, now=datetime.now(UTC))
    assert sla.severity == 1 and sla.due_at == received + timedelta(minutes=30)
    event = timeline(session, request_id=request.id)[-1]
    assert event.action == "request.severity_changed" and event.reason == "whole payroll down"
    with pytest.raises(Exception, match="already has severity 1"):
        service.change_severity(
            session, actor=tam, request_id=request.id, data=SeverityChange(severity=1, reason="again")
        )


def test_queue_order_breached_then_severity_then_enterprise_then_due(build, session, config):
    enterprise, standard = build.customer(tier="enterprise"), build.customer(tier="standard")
    duty = build.person("duty_manager")
    now = datetime.now(UTC)
    std_sev1 = build.request(by=duty, customer=standard, severity=1, received_at=now - timedelta(minutes=1))
    ent_sev1 = build.request(by=duty, customer=enterprise, severity=1, received_at=now - timedelta(minutes=1))
    ent_sev1_older = build.request(by=duty, customer=enterprise, severity=1, received_at=now - timedelta(minutes=5))
    breached_sev2 = build.request(by=duty, customer=standard, severity=2, received_at=now - timedelta(hours=9))
    items = [
        r.id
        for r in presentation.queue(session, actor=duty, config=config)
        if r.customer_id in (enterprise.id, standard.id)
    ]
    assert items == [breached_sev2.id, ent_sev1_older.id, ent_sev1.id, std_sev1.id]
