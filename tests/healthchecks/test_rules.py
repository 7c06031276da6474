"""The pure rules: certificate years (29 February included) and the life cycle table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from release_requests.errors import IllegalTransition, InvalidInput
from release_requests.healthchecks import rules
from release_requests.sla.calendar import BusinessCalendar


@pytest.mark.parametrize(
    ("day", "year"),
    [
        (date(2026, 3, 1), (date(2026, 3, 1), date(2027, 2, 28))),
        (date(2027, 2, 28), (date(2026, 3, 1), date(2027, 2, 28))),
        (date(2027, 3, 1), (date(2027, 3, 1), date(2028, 2, 29))),
        (date(2028, 2, 29), (date(2027, 3, 1), date(2028, 2, 29))),
    ],
)
def test_certificate_years_run_from_the_start_to_the_day_before_the_anniversary(day, year):
    assert rules.certificate_year(start=date(2026, 3, 1), end=None, day=day, customer="c") == year


def test_a_29_february_start_has_its_anniversary_on_1_march_in_common_years():
    start = date(2024, 2, 29)

    def year(day):
        return rules.certificate_year(start=start, end=None, day=day, customer="c")

    assert year(date(2025, 2, 28)) == (date(2024, 2, 29), date(2025, 2, 28))
    assert year(date(2025, 3, 1)) == (date(2025, 3, 1), date(2026, 2, 28))
    assert year(date(2028, 2, 28)) == (date(2027, 3, 1), date(2028, 2, 28))
    assert year(date(2028, 2, 29)) == (date(2028, 2, 29), date(2029, 2, 28))


def test_the_last_year_is_cut_by_the_certificate_end_and_nothing_outside_counts():
    start, end = date(2026, 3, 1), date(2027, 9, 30)
    assert rules.certificate_year(start=start, end=end, day=date(2027, 9, 30), customer="c") == (
        date(2027, 3, 1),
        end,
    )
    for day in (date(2026, 2, 28), date(2027, 10, 1)):
        with pytest.raises(InvalidInput, match="outside the support certificate period 2026-03-01..2027-09-30"):
            rules.certificate_year(start=start, end=end, day=day, customer="c")
    with pytest.raises(InvalidInput, match="no support certificate period.*relreq customers set-certificate c"):
        rules.certificate_year(start=None, end=None, day=date(2027, 1, 1), customer="c")


def test_life_cycle_table_names_where_an_action_may_start():
    assert rules.next_status("record_findings", current="confirmed", name="HC-1") == "findings_recorded"
    assert rules.next_status("reschedule", current="confirmed", name="HC-1") == "booked"
    with pytest.raises(IllegalTransition, match="HC-1 is booked; 'deliver' needs it to be findings_recorded"):
        rules.next_status("deliver", current="booked", name="HC-1")
    with pytest.raises(IllegalTransition):
        rules.next_status("cancel", current="report_delivered", name="HC-1")


def test_the_certificate_year_of_a_day_near_the_end_of_the_calendar():
    assert rules.certificate_year(start=date(2026, 3, 1), end=None, day=date(9999, 6, 1), customer="c") == (
        date(9999, 3, 1),
        date.max,
    )


def test_a_booking_date_at_most_3_years_ahead_in_the_customers_calendar():
    calendar = BusinessCalendar(timezone="Asia/Kamchatka", country="RU")
    now = datetime(2026, 11, 30, 13, 30, tzinfo=UTC)  # 1 December in Kamchatka
    rules.check_booking_date(calendar=calendar, day=date(2029, 11, 30), now=now, customer="c")  # a Friday
    for day in (date(2029, 12, 3), date(9999, 6, 1)):
        with pytest.raises(InvalidInput, match="at most 3 years ahead: the latest date is 2029-12-01") as info:
            rules.check_booking_date(calendar=calendar, day=day, now=now, customer="c")
        assert info.value.field == "date"


@pytest.mark.parametrize(
    ("ahead", "hour", "due"),
    [
        (9, 12, None),
        (8, 23, None),
        (7, 8, None),  # its day, before 09:00 in the customer's zone
        (7, 9, 7),
        (5, 3, None),  # missed while nothing ran: it waits for 09:00, not the small hours
        (5, 9, 7),
        (2, 23, 7),
        (1, 8, None),  # the day before, before 09:00: the 7-day one has given way, the 1-day one waits
        (1, 9, 1),
        (1, 23, 1),
        (0, 9, None),
        (-1, 12, None),
    ],
)
def test_which_reminder_is_due(ahead, hour, due):
    local = datetime(2026, 12, 1, hour, 30, tzinfo=ZoneInfo("Asia/Kamchatka"))
    scheduled_on = local.date() + timedelta(days=ahead)
    assert rules.due_reminder(scheduled_on=scheduled_on, local=local) == due
