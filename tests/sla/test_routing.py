"""Routing at intake: the TAM when at work, otherwise the manager on duty — and the timeline says why."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import delete

from release_requests.audit.service import timeline
from release_requests.errors import InvalidInput
from release_requests.routing.models import DutyFallback, DutyShift
from release_requests.routing.service import LeaveCreate, ShiftCreate, add_leave, add_shifts, on_duty, set_fallback
from tests.conftest import SYSTEM

SUNDAY_2AM_MSK = datetime.fromisoformat("2026-11-22T02:00+03:00")
FRIDAY_11AM_MSK = datetime.fromisoformat("2026-11-20T11:00+03:00")


def routed_event(session, request):
    return next(e for e in timeline(session, request_id=request.id) if e.action == "request.routed")


def test_critical_request_on_sunday_goes_to_the_duty_manager_at_once(build, session):
    customer = build.customer()
    tam = build.person("tam", tam_for=[customer.id], timezone="Europe/Moscow", country="RU")
    duty = build.person("duty_manager")
    build.shift(duty, SUNDAY_2AM_MSK - timedelta(hours=10), SUNDAY_2AM_MSK + timedelta(hours=10))
    request = build.request(by=duty, customer=customer, severity=1, received_at=SUNDAY_2AM_MSK)
    assert request.owner_id == duty.id
    event = routed_event(session, request)
    assert f"TAM {tam.name} off: Sunday" in event.reason and f"on duty: {duty.name}" in event.reason


def test_available_tam_owns_the_request(build, session):
    customer = build.customer()
    tam = build.person("tam", tam_for=[customer.id], timezone="Europe/Moscow")
    request = build.request(by=tam, customer=customer, received_at=FRIDAY_11AM_MSK)
    assert request.owner_id == tam.id
    assert routed_event(session, request).reason.startswith(f"TAM {tam.name} available")


def test_tam_on_leave_or_holiday_is_skipped(build, session):
    customer = build.customer()
    tam = build.person("tam", tam_for=[customer.id], timezone="Europe/Moscow", country="RU")
    duty = build.person("duty_manager")
    add_leave(
        session, actor=SYSTEM, person=tam, data=LeaveCreate(first_day=date(2026, 11, 16), last_day=date(2026, 11, 20))
    )
    set_fallback(session, actor=SYSTEM, person=duty)
    request = build.request(by=duty, customer=customer, received_at=FRIDAY_11AM_MSK)
    assert request.owner_id == duty.id
    assert "on leave until 2026-11-20" in routed_event(session, request).reason
    unity_day = datetime.fromisoformat("2026-11-04T11:00+03:00")  # a Wednesday, but a Russian public holiday
    on_holiday = build.request(by=duty, customer=customer, received_at=unity_day)
    assert on_holiday.owner_id == duty.id
    assert "off: public holiday" in routed_event(session, on_holiday).reason


def test_rotation_gap_falls_back_and_without_fallback_says_so(build, session):
    customer = build.customer()
    build.person("tam", tam_for=[customer.id])
    session.execute(delete(DutyFallback))
    session.execute(delete(DutyShift).where(DutyShift.starts_at <= SUNDAY_2AM_MSK, DutyShift.ends_at > SUNDAY_2AM_MSK))
    nobody = build.request(by=build.person("admin"), customer=customer, received_at=SUNDAY_2AM_MSK)
    assert nobody.owner_id is None and on_duty(session, at=SUNDAY_2AM_MSK).person is None
    assert "no fallback person configured" in routed_event(session, nobody).reason
    fallback = build.person("duty_manager")
    set_fallback(session, actor=SYSTEM, person=fallback)
    request = build.request(by=fallback, customer=customer, received_at=SUNDAY_2AM_MSK)
    assert request.owner_id == fallback.id
    assert f"rotation gap: fallback {fallback.name}" in routed_event(session, request).reason


def test_shift_validation(build, session):
    duty, tam = build.person("duty_manager"), build.person("tam")
    start = datetime.fromisoformat("2026-12-07T09:00+03:00")
    add_shifts(
        session,
        actor=SYSTEM,
        person=duty,
        data=ShiftCreate(starts_at=start, ends_at=start + timedelta(days=7), weeks=3),
    )
    with pytest.raises(InvalidInput, match="overlaps"):
        clash = ShiftCreate(starts_at=start + timedelta(days=8), ends_at=start + timedelta(days=9))
        add_shifts(session, actor=SYSTEM, person=duty, data=clash)
    with pytest.raises(InvalidInput, match="duty managers"):
        add_shifts(
            session, actor=SYSTEM, person=tam, data=ShiftCreate(starts_at=start, ends_at=start + timedelta(hours=1))
        )
    with pytest.raises(ValueError, match="overlap itself"):
        ShiftCreate(starts_at=start, ends_at=start + timedelta(days=8), weeks=2)
    with pytest.raises(ValueError, match="after starts_at"):
        ShiftCreate(starts_at=start, ends_at=start)
    with pytest.raises(ValueError, match="timezone"):
        ShiftCreate(starts_at="2026-12-07T09:00", ends_at="2026-12-07T10:00")
