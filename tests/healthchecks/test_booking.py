"""Every booking rule, through the service with a fixed clock: each refusal names its rule and stores nothing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.errors import Conflict, Forbidden, InvalidInput, NotFound
from release_requests.healthchecks.models import HealthCheck
from release_requests.healthchecks.schemas import BookIn, RescheduleIn
from release_requests.healthchecks.service import book, reschedule
from release_requests.notifications.models import Notification
from release_requests.people.models import Person
from release_requests.routing.service import LeaveCreate, add_leave
from tests.conftest import SYSTEM, Builder
from tests.healthchecks.conftest import NOW, booking, new_customer, race


def stored(scene) -> int:
    return scene.session.scalar(select(func.count()).where(HealthCheck.customer_id == scene.customer.id))


def refused(scene, error, match, day, **kwargs):
    with pytest.raises(error, match=match) as info:
        scene.book(day, **kwargs)
    assert stored(scene) == 0
    return info.value


def test_14_days_ahead_in_the_customers_zone(scene):
    # 30 Nov 13:30 UTC is 1 Dec in Kamchatka: the 14th is only 13 days ahead there (in UTC it would be 14)
    error = refused(scene, InvalidInput, "13 days after today", date(2026, 12, 14))
    assert error.field == "date"
    assert "2026-12-01 in Asia/Kamchatka" in error.message and "the earliest date is 2026-12-15" in error.message
    healthcheck = scene.book(date(2026, 12, 15))
    assert (healthcheck.status, healthcheck.certificate_year_start, healthcheck.version) == (
        "booked",
        date(2026, 3, 1),
        1,
    )


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        (date(2026, 12, 19), "Saturday"),
        (date(2027, 1, 7), "public holiday"),
        (date(2026, 12, 16), "extra closed date"),
    ],
)
def test_only_a_business_day_of_the_customer(scene, day, reason):
    error = refused(scene, InvalidInput, f"{day.isoformat()} is not a business day of customer .*{reason}", day)
    assert error.field == "date"


def test_inside_the_certificate_and_one_per_certificate_year(scene):
    refused(scene, InvalidInput, "outside the support certificate period 2026-03-01..2028-02-29", date(2028, 3, 1))
    first = scene.book(date(2026, 12, 15))
    with pytest.raises(Conflict) as info:
        scene.book(date(2027, 2, 10), engineer=None)
    assert (
        f"already booked for 2026-12-15 (HC-{first.id}) in the certificate year 2026-03-01..2027-02-28"
        in info.value.message
    )
    # the next certificate year starts on 1 March: a booking there is accepted
    second = scene.book(date(2027, 3, 1))
    assert second.certificate_year_start == date(2027, 3, 1)
    assert stored(scene) == 2


def test_no_certificate_says_how_to_set_it(session, scene, build: Builder):
    bare = new_customer(session, certificate_start=None, certificate_end=None)
    with pytest.raises(InvalidInput, match=f"relreq customers set-certificate {bare.id} --start"):
        scene.book(date(2026, 12, 15), customer=bare, by=build.person("admin"))


def test_the_engineer_must_be_free_and_able(session, scene, build: Builder):
    add_leave(
        session,
        actor=SYSTEM,
        person=scene.engineer,
        data=LeaveCreate(first_day=date(2026, 12, 14), last_day=date(2026, 12, 18)),
    )
    error = refused(scene, InvalidInput, "is on leave on 2026-12-15 \\(2026-12-14..2026-12-18\\)", date(2026, 12, 15))
    assert error.field == "engineer"

    busy = build.person("triage")
    other_customer = new_customer(session)
    other = scene.book(date(2026, 12, 21), engineer=busy, customer=other_customer, by=build.person("admin"))
    error = refused(
        scene,
        Conflict,
        f"already booked for Health Check HC-{other.id} on 2026-12-21",
        date(2026, 12, 21),
        engineer=busy,
    )
    assert error.details["field"] == "engineer"

    for not_an_engineer in (build.person("release_manager"), build.person("customer", customer_id=scene.customer.id)):
        error = refused(
            scene,
            InvalidInput,
            "cannot be the engineer of a Health Check",
            date(2026, 12, 22),
            engineer=not_an_engineer,
        )
        assert error.field == "engineer"
    gone = build.person("triage")
    gone.active = False
    refused(scene, InvalidInput, "is not active", date(2026, 12, 22), engineer=gone)
    with pytest.raises(InvalidInput, match="engineer: no person 'nobody@vendor.example'") as info:
        book(
            session,
            actor=scene.tam,
            data=BookIn(customer_id=scene.customer.id, date=date(2026, 12, 22), engineer="nobody@vendor.example"),
            now=NOW,
            config=scene.config,
        )
    assert info.value.field == "engineer"


def test_who_may_book_and_for_whom(session, scene, build: Builder):
    def attempt(actor, customer_id):
        data = BookIn(customer_id=customer_id, date=date(2026, 12, 15), engineer=scene.engineer.email)
        return book(session, actor=actor, data=data, now=NOW, config=scene.config)

    with pytest.raises(NotFound, match="no customer 'no-such-customer'"):
        attempt(scene.tam, "no-such-customer")
    with pytest.raises(NotFound):  # a TAM books only for the customers assigned to them
        attempt(build.person("tam"), scene.customer.id)
    with pytest.raises(Forbidden, match="may not book"):
        attempt(build.person("triage"), scene.customer.id)
    with pytest.raises(Forbidden):
        attempt(build.person("customer", customer_id=scene.customer.id), scene.customer.id)
    assert stored(scene) == 0
    assert (
        session.scalar(
            select(func.count()).where(
                Notification.event.like("healthcheck.%"), Notification.recipient == scene.engineer.email
            )
        )
        == 0
    )


def test_a_race_for_the_same_year_loses_with_the_same_409(race_world, config):
    """Two bookings of one certificate year in concurrent transactions: neither sees the other's row, the unique
    index decides, and the loser is told the winner's date."""
    sessions, customer, admin, first_engineer, second_engineer = race_world
    winner_id, error = race(
        sessions,
        winner=booking(customer, date(2026, 12, 15), first_engineer, admin, config),
        loser=booking(customer, date(2027, 1, 12), second_engineer, admin, config),
    )
    assert f"already booked for 2026-12-15 (HC-{winner_id})" in error.message
    with sessions() as s:
        assert s.scalar(select(func.count()).where(HealthCheck.customer_id == customer.id)) == 1


def test_a_reschedule_that_loses_a_race_gets_the_same_409_and_changes_nothing(race_world, config):
    """A reschedule into the next certificate year while a booking of that year is not yet committed: the
    unique index decides, the reschedule is refused as if it had come second (not a failed transaction), and
    the Health Check stays as it was."""
    sessions, customer, admin, first_engineer, second_engineer = race_world
    with db.transaction(sessions) as s:
        moved_id = booking(customer, date(2026, 12, 15), first_engineer, admin, config)(s).id

    def move(s):
        change = RescheduleIn(date=date(2027, 3, 12), reason="the customer asked", version=1)
        reschedule(s, actor=s.get(Person, admin.id), ref=moved_id, data=change, now=NOW, config=config)

    winner_id, error = race(
        sessions, winner=booking(customer, date(2027, 3, 10), second_engineer, admin, config), loser=move
    )
    assert isinstance(error, Conflict), error
    assert (
        f"already booked for 2027-03-10 (HC-{winner_id}) in the certificate year 2027-03-01..2028-02-29"
        in error.message
    )
    with sessions() as s:
        moved = s.get(HealthCheck, moved_id)
        assert (moved.scheduled_on, moved.certificate_year_start, moved.status, moved.version) == (
            date(2026, 12, 15),
            date(2026, 3, 1),
            "booked",
            1,
        )
        assert s.scalars(
            select(AuditEvent.action).where(
                AuditEvent.entity_type == "healthcheck", AuditEvent.entity_id == str(moved_id)
            )
        ).all() == ["healthcheck.booked"]
