"""A certificate change re-cuts the certificate years of the Health Checks in hand, in the same transaction, or
is refused naming the bookings that would no longer fit one per year inside the certificate."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from release_requests.audit.models import AuditEvent
from release_requests.audit.service import Actor
from release_requests.customers.schemas import CertificatePeriod
from release_requests.errors import Conflict
from release_requests.healthchecks import service
from release_requests.healthchecks.models import HealthCheck
from release_requests.healthchecks.schemas import CancelIn
from tests.healthchecks.conftest import NOW, booking, new_customer, race

ADMIN = Actor(name="local-admin:test")
LATER = NOW + timedelta(days=1)


def change(scene, start: date, end: date | None = None, customer=None):
    return service.change_certificate(
        scene.session,
        actor=ADMIN,
        customer_id=(customer or scene.customer).id,
        period=CertificatePeriod(certificate_start=start, certificate_end=end),
        now=LATER,
    )


def events(session, entity_type: str, entity_id) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id))
            .order_by(AuditEvent.seq)
        )
    )


def test_a_renewal_moves_the_years_of_the_checks_in_hand_and_keeps_one_per_year(scene):
    s = scene.session
    first, second = scene.book(date(2026, 12, 15)), scene.book(date(2027, 3, 10))
    assert (first.certificate_year_start, second.certificate_year_start) == (date(2026, 3, 1), date(2027, 3, 1))

    change(scene, date(2026, 1, 15), date(2029, 1, 14))
    assert (first.certificate_year_start, second.certificate_year_start) == (date(2026, 1, 15), date(2027, 1, 15))
    assert (first.version, second.version) == (2, 2)
    (moved,) = [e for e in events(s, "healthcheck", first.id) if e.action == "healthcheck.certificate_year_changed"]
    assert (moved.before["certificate_year_start"], moved.after["certificate_year_start"]) == (
        "2026-03-01",
        "2026-01-15",
    )
    assert (moved.before["version"], moved.after["version"]) == (1, 2)
    assert moved.reason == "the support certificate changed from 2026-03-01..2028-02-29 to 2026-01-15..2029-01-14"
    assert moved.actor == ADMIN.name
    assert events(s, "customer", scene.customer.id)[-1].action == "customer.certificate_set"
    shown = service.present(s, [first])[0]
    assert (shown.certificate_year_start, shown.certificate_year_end) == (date(2026, 1, 15), date(2027, 1, 14))

    # the rule holds in the new years: 12 January 2027 is in the first one, which HC-first holds
    with pytest.raises(Conflict, match=f"already booked for 2026-12-15 \\(HC-{first.id}\\) in the certificate year "):
        scene.book(date(2027, 1, 12))


def test_a_change_that_two_checks_in_hand_would_not_survive_is_refused_and_changes_nothing(scene):
    s = scene.session
    first, second = scene.book(date(2026, 12, 15)), scene.book(date(2027, 3, 10))
    with pytest.raises(Conflict) as info:
        change(scene, date(2026, 6, 1), date(2029, 5, 31))
    assert (
        f"HC-{first.id} on 2026-12-15 and HC-{second.id} on 2027-03-10 would share its certificate year "
        "2026-06-01..2027-05-31" in info.value.message
    )
    assert info.value.details["bookings"] == [f"HC-{first.id}", f"HC-{second.id}"]

    with pytest.raises(Conflict, match=f"HC-{first.id} on 2026-12-15 would be outside it") as info:
        change(scene, date(2027, 1, 1))
    assert info.value.details["bookings"] == [f"HC-{first.id}"]
    assert (scene.customer.certificate_start, scene.customer.certificate_end) == (date(2026, 3, 1), date(2028, 2, 29))
    assert (first.certificate_year_start, first.version) == (date(2026, 3, 1), 1)
    assert "customer.certificate_set" not in [e.action for e in events(s, "customer", scene.customer.id)]

    # a cancelled one no longer counts (and keeps its year)
    service.cancel(s, actor=scene.tam, ref=first.id, data=CancelIn(reason="budget"), now=NOW, config=scene.config)
    change(scene, date(2027, 1, 1))
    assert (first.certificate_year_start, second.certificate_year_start) == (date(2026, 3, 1), date(2027, 1, 1))


def test_a_delivered_check_keeps_its_year_and_still_counts_against_a_check_in_hand(session, scene, build):
    """Certificate from 29 February 2024: its years start on 1 March in common years and on 29 February in leap
    ones. A check delivered on 2 March 2027 is in the year 2027-03-01..2028-02-28, one booked for 29 February
    2028 in the next. Renewed from 1 March 2025, both fall into 2027-03-01..2028-02-29: refused."""
    customer = new_customer(session, certificate_start=date(2024, 2, 29), certificate_end=None)
    admin = build.person("admin")
    done = scene.book(date(2027, 3, 2), customer=customer, by=admin)
    on_the_day = datetime(2027, 3, 2, 10, tzinfo=ZoneInfo("Asia/Kamchatka"))
    service.confirm(session, actor=admin, ref=done.id, version=None, now=on_the_day)
    service.record_findings(session, actor=admin, ref=done.id, rows=[], version=None, now=on_the_day)
    service.deliver(session, actor=admin, ref=done.id, version=None, now=on_the_day, config=scene.config)
    ahead = scene.book(date(2028, 2, 29), customer=customer, by=admin)
    assert (done.certificate_year_start, ahead.certificate_year_start) == (date(2027, 3, 1), date(2028, 2, 29))

    with pytest.raises(Conflict) as info:
        change(scene, date(2025, 3, 1), customer=customer)
    assert (
        f"HC-{ahead.id} on 2028-02-29 and HC-{done.id} on 2027-03-02 (report delivered) would share its certificate "
        "year 2027-03-01..2028-02-29" in info.value.message
    )
    # a renewal that leaves them in different years goes through; the delivered one keeps the year it was made in
    change(scene, date(2024, 3, 5), customer=customer)
    assert (done.certificate_year_start, ahead.certificate_year_start) == (date(2027, 3, 1), date(2027, 3, 5))


def test_a_booking_and_a_certificate_change_in_flight_wait_for_each_other(race_world, config):
    """A booking reads the certificate under a share lock and a change takes it exclusively: whichever comes
    second waits, then sees the other's work — the booking lands in the new years, or the change re-cuts it."""
    sessions, customer, admin, engineer, other_engineer = race_world

    def renew(start: date):
        def make(s):
            period = CertificatePeriod(certificate_start=start)
            return service.change_certificate(s, actor=ADMIN, customer_id=customer.id, period=period, now=LATER)

        return make

    def years(s) -> dict[date, date]:
        rows = s.scalars(select(HealthCheck).where(HealthCheck.customer_id == customer.id))
        return {hc.scheduled_on: hc.certificate_year_start for hc in rows}

    _, error = race(
        sessions, winner=renew(date(2026, 1, 15)), loser=booking(customer, date(2027, 1, 12), engineer, admin, config)
    )
    assert error is None
    with sessions() as s:
        assert years(s) == {date(2027, 1, 12): date(2026, 1, 15)}

    _, error = race(
        sessions,
        winner=booking(customer, date(2027, 1, 25), other_engineer, admin, config),
        loser=renew(date(2026, 1, 10)),
    )
    assert "on 2027-01-25 would share its certificate year 2027-01-10..2028-01-09" in error.message
    _, error = race(
        sessions,
        winner=booking(customer, date(2028, 3, 1), other_engineer, admin, config),
        loser=renew(date(2026, 1, 20)),
    )
    assert error is None
    with sessions() as s:
        assert years(s) == {
            date(2027, 1, 12): date(2026, 1, 20),
            date(2027, 1, 25): date(2027, 1, 20),
            date(2028, 3, 1): date(2028, 1, 20),
        }
