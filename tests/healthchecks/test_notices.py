"""Who is told what: bookings to the customer's contacts, their TAMs and the engineer, in their language with
the day in the customer's zone, the customer's copy after their quiet hours; reminders 7 days and 1 day before
from 09:00 in the customer's zone, once each, again after a reschedule."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from release_requests.config import QuietHoursPolicy
from release_requests.healthchecks import service
from release_requests.healthchecks.schemas import CancelIn, RescheduleIn
from release_requests.notifications.models import CustomerNotificationPrefs, Notification
from release_requests.notifications.render import LANGUAGES, render
from tests.healthchecks.conftest import NOW, new_customer


def rendered(row: Notification, config):
    return render(
        notification_id=row.id,
        event=row.event,
        language=row.language,
        audience=row.audience,
        context=row.context,
        request=None,
        sla=None,
        status_url="",
        severities=config.severity,
    )


def kamchatka(day: int, hour: int) -> datetime:
    """A moment of December 2026 by its local date and hour in Kamchatka (UTC+12)."""
    return datetime(2026, 12, day, hour, tzinfo=ZoneInfo("Asia/Kamchatka"))


def test_a_booking_tells_the_customer_their_tam_and_the_engineer_each_in_their_language(session, scene, build):
    customer = new_customer(session, name="Энерго <Камчатка> & Co", language="ru")
    tam = build.person("tam", tam_for=[customer.id])
    hc = scene.book(date(2026, 12, 15), customer=customer, by=tam)
    rows = session.scalars(select(Notification).where(Notification.event == "healthcheck.booked")).all()
    by_recipient = {r.recipient: r for r in rows if r.context["healthcheck"] == f"HC-{hc.id}"}
    assert set(by_recipient) == {customer.email_contacts[0], tam.email, scene.engineer.email}
    assert {r.request_id for r in rows} == {None}
    to_customer = rendered(by_recipient[customer.email_contacts[0]], scene.config)
    assert to_customer.subject == f"Проверка состояния HC-{hc.id} назначена на вторник, 15 декабря 2026 г."
    assert "(Asia/Kamchatka)" in to_customer.text and "2026-03-01..2027-02-28" in to_customer.text
    assert "Энерго &lt;Камчатка&gt; &amp; Co" in to_customer.html and "<Камчатка>" not in to_customer.html
    to_engineer = rendered(by_recipient[scene.engineer.email], scene.config)
    assert to_engineer.subject == f"Health Check HC-{hc.id} booked for Tuesday, 15 December 2026"
    assert "&lt;Камчатка&gt;" in to_engineer.blocks[1]["text"]["text"]


def test_the_customers_notification_preferences_choose_its_recipients(session, scene):
    session.add(
        CustomerNotificationPrefs(
            customer_id=scene.customer.id,
            slack_enabled=True,
            email_enabled=True,
            email_recipients=["it-manager@customer.example"],
        )
    )
    session.flush()
    hc = scene.book(date(2026, 12, 15))
    rows = session.scalars(
        select(Notification).where(Notification.event == "healthcheck.booked", Notification.audience == "customer")
    ).all()
    assert [r.recipient for r in rows if r.context["healthcheck"] == f"HC-{hc.id}"] == ["it-manager@customer.example"]


@pytest.mark.parametrize("event", ["booked", "rescheduled", "cancelled", "reminder", "delivered"])
def test_every_notice_renders_in_both_languages(event, config):
    context = {
        "healthcheck": "HC-3",
        "customer": "Acme <b>",
        "date": "2026-12-15",
        "when": "Tuesday, 15 December 2026",
        "timezone": "Asia/Kamchatka",
        "engineer": "Olga",
        "certificate_year": "2026-03-01..2027-02-28",
        "contact": "support@vendor.example",
        "reason": "change freeze",
        "previous_date": "2026-12-14",
        "previous_when": "Monday, 14 December 2026",
        "previous_engineer": "Ivan",
        "days": 7,
        "days_left": 3,
        "findings": 2,
        "recipients": ["a@customer.example"],
    }
    for language in LANGUAGES:
        row = Notification(
            id="n", event=f"healthcheck.{event}", language=language, audience="customer", context=context
        )
        message = rendered(row, config)
        assert "HC-3" in message.subject and "\n" not in message.subject
        assert "<b>" not in message.html and "Acme &lt;b&gt;" in message.html


def due(session, config, now: datetime, healthcheck_id: int) -> int:
    """How many reminders of this Health Check a run at `now` queued (the test database holds other tests')."""
    queued = service.queue_due_reminders(session, now=now, config=config)
    return sum(r.context["healthcheck"] == f"HC-{healthcheck_id}" for r in queued)


def reminders(session, healthcheck_id: int) -> list[tuple[str, str]]:
    rows = session.scalars(select(Notification).where(Notification.event == "healthcheck.reminder")).all()
    return sorted(
        (r.context["date"], f"{r.context['days']}d:{r.recipient}")
        for r in rows
        if r.context["healthcheck"] == f"HC-{healthcheck_id}"
    )


def test_reminders_7_and_1_days_before_once_each_and_again_after_a_reschedule(session, scene):
    hc = scene.book(date(2026, 12, 15))
    everyone = sorted([scene.customer.email_contacts[0], scene.tam.email, scene.engineer.email])

    def run(day: int, hour: int) -> int:
        return due(session, scene.config, kamchatka(day, hour), hc.id)

    assert run(7, 23) == 0  # 8 days ahead in Kamchatka (7 ahead in UTC already)
    assert run(8, 0) == 0 and run(8, 8) == 0  # its day, but not before 09:00 there
    assert run(8, 9) == 3 and run(8, 9) == 0 and run(10, 12) == 0  # once, however often it runs
    assert run(14, 8) == 0 and run(14, 9) == 3 and run(14, 23) == 0
    assert run(15, 9) == 0  # nothing on the day itself
    assert reminders(session, hc.id) == sorted(
        [("2026-12-15", f"7d:{r}") for r in everyone] + [("2026-12-15", f"1d:{r}") for r in everyone]
    )
    left = {
        r.context["days_left"]
        for r in session.scalars(select(Notification).where(Notification.event == "healthcheck.reminder"))
        if r.context["healthcheck"] == f"HC-{hc.id}"
    }
    assert left == {7, 1}

    moved = scene.book(date(2027, 3, 2))  # next certificate year
    service.reschedule(
        session,
        actor=scene.tam,
        ref=moved.id,
        data=RescheduleIn(date=date(2027, 3, 3), reason="the customer asked"),
        now=datetime(2027, 2, 12, tzinfo=UTC),
        config=scene.config,
    )
    # a reminder missed while nothing ran still goes while the Health Check is ahead — 5 days before, the 7-day
    # one — but at 03:00 in Kamchatka it waits for 09:00 (midnight UTC is noon there)
    assert due(session, scene.config, datetime(2027, 2, 25, 15, tzinfo=UTC), moved.id) == 0
    assert due(session, scene.config, datetime(2027, 2, 26, tzinfo=UTC), moved.id) == 3
    assert {d for d, _ in reminders(session, moved.id)} == {"2027-03-03"}


def test_reminders_follow_a_reschedule_and_skip_cancelled_checks(session, scene, build):
    hc = scene.book(date(2026, 12, 15))
    assert due(session, scene.config, kamchatka(8, 10), hc.id) == 3
    service.reschedule(
        session,
        actor=scene.tam,
        ref=hc.id,
        data=RescheduleIn(date=date(2026, 12, 23), reason="engineer ill"),
        now=kamchatka(8, 11),
        config=scene.config,
    )
    assert due(session, scene.config, kamchatka(16, 10), hc.id) == 3
    assert {d for d, _ in reminders(session, hc.id)} == {"2026-12-15", "2026-12-23"}

    other = scene.book(date(2026, 12, 22), customer=new_customer(session), by=build.person("admin"))
    service.cancel(
        session, actor=build.person("admin"), ref=other.id, data=CancelIn(reason="x"), now=NOW, config=scene.config
    )
    service.queue_due_reminders(session, now=kamchatka(21, 10), config=scene.config)
    assert reminders(session, other.id) == []


def test_the_customers_quiet_hours_hold_back_their_notices_as_the_lowest_severity(session, scene, config):
    """Quiet hours 22:00-08:00 in Kamchatka: a booking at 01:30 there reaches the customer at 08:00, staff at
    once; a reminder due at 09:00 goes at 09:00. With `[quiet_hours] severities` not holding back the lowest
    severity, the customer gets it at once too."""
    session.add(
        CustomerNotificationPrefs(
            customer_id=scene.customer.id, slack_enabled=True, email_enabled=True, quiet_hours="22:00-08:00"
        )
    )
    session.flush()
    assert 4 in config.notifications.quiet_hours.severities
    hc = scene.book(date(2026, 12, 15))  # at NOW: 01:30 on 1 December in Kamchatka
    sent_at = {
        r.audience: r.next_attempt_at
        for r in session.scalars(select(Notification).where(Notification.event == "healthcheck.booked"))
        if r.context["healthcheck"] == f"HC-{hc.id}"
    }
    assert sent_at == {"customer": kamchatka(1, 8), "internal": NOW}
    (reminder,) = [
        r
        for r in service.queue_due_reminders(session, now=kamchatka(8, 9), config=config)
        if r.context["healthcheck"] == f"HC-{hc.id}" and r.audience == "customer"
    ]
    assert reminder.next_attempt_at == kamchatka(8, 9)

    urgent_only = config.model_copy(
        update={
            "notifications": config.notifications.model_copy(
                update={"quiet_hours": QuietHoursPolicy(severities=[1, 2, 3])}
            )
        }
    )
    cancelled = service.cancel(
        session, actor=scene.tam, ref=hc.id, data=CancelIn(reason="budget"), now=NOW, config=urgent_only
    )
    assert {
        r.next_attempt_at
        for r in session.scalars(select(Notification).where(Notification.event == "healthcheck.cancelled"))
        if r.context["healthcheck"] == f"HC-{cancelled.id}"
    } == {NOW}
