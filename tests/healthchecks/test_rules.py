"""The pure rules: certificate years (29 February included) and the life cycle table."""

from __future__ import annotations

from datetime import date

import pytest

from release_requests.errors import IllegalTransition, InvalidInput
from release_requests.healthchecks import rules


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


@pytest.mark.parametrize(
    ("ahead", "due"), [(9, None), (8, None), (7, 7), (5, 7), (2, 7), (1, 1), (0, None), (-1, None)]
)
def test_which_reminder_is_due(ahead, due):
    today = date(2026, 12, 1)
    assert rules.due_reminder(scheduled_on=date.fromordinal(today.toordinal() + ahead), today=today) == due
