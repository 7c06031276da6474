"""Person availability: the reason strings callers show next to a TAM's name."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from release_requests.sla.availability import is_person_available

MSK = ZoneInfo("Europe/Moscow")


def moscow_tam(at: datetime, **kw) -> tuple[bool, str]:
    return is_person_available(at=at, timezone="Europe/Moscow", **kw)


def test_available_during_working_hours():
    assert moscow_tam(datetime(2026, 11, 30, 10, 15, tzinfo=MSK)) == (True, "available (10:15 Europe/Moscow)")


def test_off_on_a_weekend_day():
    assert moscow_tam(datetime(2026, 11, 28, 12, tzinfo=MSK)) == (False, "off: Saturday")


def test_off_outside_business_hours_shows_local_time():
    at = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)  # 19:30 in Moscow
    assert moscow_tam(at) == (False, "off: outside business hours (19:30 Europe/Moscow)")


def test_public_holiday_needs_a_country():
    new_year = datetime(2027, 1, 1, 12, tzinfo=ZoneInfo("America/New_York"))
    assert is_person_available(at=new_year, timezone="America/New_York", country="US") == (
        False,
        "off: public holiday (New Year's Day)",
    )
    assert is_person_available(at=new_year, timezone="America/New_York")[0] is True


def test_russian_working_saturday_is_a_working_day():
    assert moscow_tam(datetime(2027, 2, 20, 10, tzinfo=MSK), country="RU")[0] is True


def test_leave_reports_the_end_of_back_to_back_ranges():
    leave = [(date(2026, 12, 1), date(2026, 12, 4)), (date(2026, 11, 25), date(2026, 11, 30))]
    assert moscow_tam(datetime(2026, 11, 27, 10, tzinfo=MSK), leave=leave) == (False, "on leave until 2026-12-04")
    separate = [(date(2026, 11, 25), date(2026, 11, 27)), (date(2026, 11, 30), date(2026, 12, 4))]
    assert moscow_tam(datetime(2026, 11, 27, 10, tzinfo=MSK), leave=separate) == (
        False,
        "on leave until 2026-11-27",
    )


def test_leave_is_judged_by_the_persons_local_date():
    leave = [(date(2026, 11, 30), date(2026, 12, 4))]
    late_friday_utc = datetime(2026, 12, 4, 22, 30, tzinfo=UTC)  # already Saturday 01:30 in Moscow
    assert moscow_tam(late_friday_utc, leave=leave) == (False, "off: Saturday")


def test_custom_weekly_hours():
    at = datetime(2026, 11, 28, 11, tzinfo=MSK)  # Saturday
    assert moscow_tam(at, weekly_hours="tue-sat 10:00-19:00") == (True, "available (11:00 Europe/Moscow)")
    assert moscow_tam(at, weekly_hours={"mon-fri": "09:00-18:00", "sat": "12:00-15:00"}) == (
        False,
        "off: outside business hours (11:00 Europe/Moscow)",
    )


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at must be a timezone-aware"):
        moscow_tam(datetime(2026, 11, 30, 10))
    with pytest.raises(ValueError, match=r"leave\[0\] ends before it starts"):
        moscow_tam(datetime(2026, 11, 30, 10, tzinfo=MSK), leave=[(date(2026, 12, 4), date(2026, 12, 1))])
    with pytest.raises(ValueError, match="timezone"):
        is_person_available(at=datetime(2026, 11, 30, 10, tzinfo=MSK), timezone="Moscow")
