"""SLA clock tests: the contractual examples, DST edges, pauses, validation, and properties.

Properties run over calendars chosen to hit awkward cases: DST transitions inside business hours (London
Sunday night shifts, Santiago's midnight transitions), non-Monday weeks (India), holidays and transferred
working days (Russia).
"""

import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter, tzset
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_requests.sla.calendar import (
    BusinessCalendar,
    WeeklyHours,
    business_intervals,
    day_schedule,
    due_at,
    elapsed,
    is_business_time,
)

MSK = ZoneInfo("Europe/Moscow")
NY = ZoneInfo("America/New_York")
RU = BusinessCalendar(timezone="Europe/Moscow", country="RU")
US = BusinessCalendar(timezone="America/New_York", country="US", subdivision="NY")
GB_NIGHTS = BusinessCalendar(
    timezone="Europe/London",
    country="GB",
    subdivision="ENG",
    weekly_hours="mon-fri 09:00-17:30; sun 00:30-03:30",
    extra_closed_dates=frozenset({date(2026, 3, 30), date(2027, 10, 29)}),
)
CL_MIDNIGHT = BusinessCalendar(
    timezone="America/Santiago", country="CL", weekly_hours="mon-fri 08:30-17:00; sat-sun 00:00-02:30"
)
IN_SUN_THU = BusinessCalendar(timezone="Asia/Kolkata", country="IN", weekly_hours="sun-thu 10:00-19:00")
CALENDARS = [RU, US, GB_NIGHTS, CL_MIDNIGHT, IN_SUN_THU]
# Calendars whose hours never touch a DST transition, so a naive local-time check is an exact oracle.
PLAIN_CALENDARS = [RU, US, IN_SUN_THU]

SEV1, SEV3, SEV4 = timedelta(minutes=30), timedelta(hours=6), timedelta(hours=8)
MICROSECOND = timedelta(microseconds=1)

ZONES = [ZoneInfo(name) for name in ("UTC", "Europe/Moscow", "America/New_York", "Pacific/Chatham")]
starts = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2029, 12, 31), timezones=st.sampled_from(ZONES)
)
targets = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=60))
calendars = st.sampled_from(CALENDARS)
clocks = st.sampled_from(["24x7", "business"])
PROPERTY = settings(max_examples=150, deadline=None)


@st.composite
def closed_pauses(draw: st.DrawFn, start: datetime) -> list[tuple[datetime, datetime]]:
    """Up to three pauses near ``start`` (possibly before it, overlapping each other or zero-length)."""
    pauses = []
    for _ in range(draw(st.integers(0, 3))):
        begins = after(start, draw(st.integers(-86_400, 5 * 86_400)))
        pauses.append((begins, after(begins, draw(st.integers(0, 2 * 86_400)))))
    return pauses


def after(moment: datetime, seconds: int) -> datetime:
    """``moment`` plus real seconds: arithmetic on a ZoneInfo datetime is wall-clock arithmetic, so go via UTC."""
    return moment.astimezone(UTC) + timedelta(seconds=seconds)


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK)


def business_due(start: datetime, target: timedelta, calendar: BusinessCalendar = RU, **kw) -> datetime:
    due = due_at(start=start, target=target, clock="business", calendar=calendar, **kw)
    assert due is not None
    return due


@contextmanager
def process_timezone(name: str) -> Iterator[None]:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = name
    tzset()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        tzset()


# ---------------------------------------------------------------------------------------------------------
# The contractual examples


def test_sev1_is_thirty_real_minutes_on_a_saturday_night():
    due = due_at(start=msk(2026, 11, 28, 3), target=SEV1, clock="24x7", calendar=RU)
    assert due == msk(2026, 11, 28, 3, 30)
    assert due.tzinfo is UTC


def test_sev3_filed_friday_evening_moscow_is_due_monday_afternoon():
    assert business_due(msk(2026, 11, 27, 17), SEV3) == msk(2026, 11, 30, 14)


def test_sev3_across_the_us_spring_forward_keeps_local_opening_hours():
    due = business_due(datetime(2027, 3, 12, 15, tzinfo=NY), SEV3, US)
    assert due == datetime(2027, 3, 15, 12, tzinfo=NY)
    assert due.astimezone(NY).utcoffset() == timedelta(hours=-4)  # EDT after the change


def test_sev3_across_the_us_fall_back_keeps_local_opening_hours():
    due = business_due(datetime(2027, 11, 5, 15, tzinfo=NY), SEV3, US)
    assert due == datetime(2027, 11, 8, 12, tzinfo=NY)
    assert due.astimezone(NY).utcoffset() == timedelta(hours=-5)


def test_russian_new_year_holidays_delay_the_start_of_counting():
    # holidays says RU 2027-01-01..08 are holidays (Jan 7 Christmas), Jan 9-10 is a weekend.
    for day in range(1, 9):
        assert day_schedule(RU, day=date(2027, 1, day)).closed_reason is not None
    assert business_due(msk(2027, 1, 3, 12), SEV3) == msk(2027, 1, 11, 15)
    assert elapsed(start=msk(2027, 1, 3, 12), now=msk(2027, 1, 11, 9), clock="business", calendar=RU) == (timedelta(0))


def test_sev4_filed_before_new_year_skips_the_substituted_day_off_and_the_holidays():
    # 2026-12-31 is a "Day off (substituted from 01/04/2026)" in RU.
    assert business_due(msk(2026, 12, 30, 17), SEV4) == msk(2027, 1, 11, 16)


def test_russian_working_saturday_counts_unless_switched_off():
    # Saturday 2027-02-20 is a working day; Mon 22 (transferred day off) and Tue 23 are holidays.
    assert business_due(msk(2027, 2, 19, 17), SEV3) == msk(2027, 2, 20, 14)
    strict = RU.model_copy(update={"observe_working_weekends": False})
    assert business_due(msk(2027, 2, 19, 17), SEV3, strict) == msk(2027, 2, 24, 14)
    assert day_schedule(strict, day=date(2027, 2, 20)).closed_reason == "Saturday"


def test_working_saturday_uses_the_first_open_weekdays_hours():
    calendar = RU.model_copy(
        update={"weekly_hours": WeeklyHours.model_validate("mon 10:00-16:00; tue-fri 09:00-18:00")}
    )
    assert day_schedule(calendar, day=date(2027, 2, 20)).hours == (time(10), time(16))


def test_extra_closed_dates_are_skipped():
    shutdown = RU.model_copy(update={"extra_closed_dates": frozenset({date(2026, 11, 30), date(2026, 12, 1)})})
    assert business_due(msk(2026, 11, 27, 17), SEV3, shutdown) == msk(2026, 12, 2, 14)
    assert day_schedule(shutdown, day=date(2026, 11, 30)).closed_reason == "extra closed date"


def test_public_holiday_reason_names_the_holiday():
    assert day_schedule(US, day=date(2027, 1, 1)) == (None, "public holiday (New Year's Day)")
    assert day_schedule(RU, day=date(2026, 11, 28)) == (None, "Saturday")
    assert day_schedule(RU, day=date(2026, 11, 30)) == ((time(9), time(18)), None)


def test_performance_of_eight_business_hours_across_new_year():
    start = msk(2026, 12, 30, 17)
    business_due(start, SEV4)  # warm the holiday cache
    timings = []
    for _ in range(50):
        began = perf_counter()
        business_due(start, SEV4)
        timings.append(perf_counter() - began)
    assert statistics.median(timings) < 0.001


def test_calendar_without_business_hours_fails_instead_of_looping():
    closed = BusinessCalendar(timezone="UTC", country=None, weekly_hours="")
    with pytest.raises(ValueError, match="calendar has no business hours"):
        due_at(start=msk(2026, 1, 1), target=SEV3, clock="business", calendar=closed)
    assert elapsed(start=msk(2026, 1, 1), now=msk(2027, 1, 1), clock="business", calendar=closed) == timedelta(0)


# ---------------------------------------------------------------------------------------------------------
# Business time and intervals


def test_business_hours_are_half_open():
    assert not is_business_time(RU, at=msk(2026, 11, 30, 8, 59, 59, 999_999))
    assert is_business_time(RU, at=msk(2026, 11, 30, 9))
    assert is_business_time(RU, at=msk(2026, 11, 30, 17, 59, 59, 999_999))
    assert not is_business_time(RU, at=msk(2026, 11, 30, 18))
    assert not is_business_time(RU, at=msk(2026, 11, 28, 12))


def test_business_intervals_are_clipped_to_the_window_and_in_utc():
    intervals = list(business_intervals(RU, start=msk(2026, 11, 27, 12), end=msk(2026, 12, 1, 10)))
    assert intervals == [
        (msk(2026, 11, 27, 12), msk(2026, 11, 27, 18)),
        (msk(2026, 11, 30, 9), msk(2026, 11, 30, 18)),
        (msk(2026, 12, 1, 9), msk(2026, 12, 1, 10)),
    ]
    assert all(bound.tzinfo is UTC for interval in intervals for bound in interval)
    assert list(business_intervals(RU, start=msk(2026, 11, 28), end=msk(2026, 11, 27))) == []


def test_hours_inside_a_spring_forward_gap_start_when_the_clock_jumps_past_them():
    # New York, Sunday 2027-03-14: 02:00 EST jumps to 03:00 EDT.
    sunday = BusinessCalendar(timezone="America/New_York", country=None, weekly_hours="sun 02:30-04:00")
    intervals = list(
        business_intervals(sunday, start=datetime(2027, 3, 14, tzinfo=NY), end=datetime(2027, 3, 15, tzinfo=NY))
    )
    assert intervals == [(datetime(2027, 3, 14, 7, tzinfo=UTC), datetime(2027, 3, 14, 8, tzinfo=UTC))]
    in_gap = BusinessCalendar(
        timezone="America/New_York", country=None, weekly_hours="sun 02:10-02:50; mon 09:00-10:00"
    )
    assert business_due(datetime(2027, 3, 14, tzinfo=NY), timedelta(minutes=30), in_gap) == datetime(
        2027, 3, 15, 9, 30, tzinfo=NY
    )


def test_ambiguous_fall_back_times_mean_their_first_occurrence():
    # New York, Sunday 2027-11-07: 01:00-02:00 happens twice (EDT, then EST).
    sunday = BusinessCalendar(timezone="America/New_York", country=None, weekly_hours="sun 01:30-03:00")
    intervals = list(
        business_intervals(sunday, start=datetime(2027, 11, 7, tzinfo=NY), end=datetime(2027, 11, 8, tzinfo=NY))
    )
    assert intervals == [(datetime(2027, 11, 7, 5, 30, tzinfo=UTC), datetime(2027, 11, 7, 8, tzinfo=UTC))]


def test_midnight_that_does_not_exist_opens_at_the_jump():
    # Santiago, 2026-09-06: Saturday 24:00 jumps to Sunday 01:00, so Sunday's 00:00 opening is 01:00.
    sunday = datetime(2026, 9, 6, 1, tzinfo=ZoneInfo("America/Santiago"))
    intervals = list(business_intervals(CL_MIDNIGHT, start=after(sunday, -3 * 3600), end=after(sunday, 3 * 3600)))
    assert intervals[-1] == (
        sunday.astimezone(UTC),
        datetime(2026, 9, 6, 2, 30, tzinfo=ZoneInfo("America/Santiago")),
    )


def test_24x7_counts_real_time_across_dst_changes():
    spring = datetime(2027, 3, 14, 1, 45, tzinfo=NY)
    assert due_at(start=spring, target=SEV1, clock="24x7", calendar=US) == datetime(2027, 3, 14, 3, 15, tzinfo=NY)
    fall = datetime(2027, 11, 7, 1, 45, tzinfo=NY)  # first (EDT) occurrence
    due = due_at(start=fall, target=SEV1, clock="24x7", calendar=US)
    # Python never equates an ambiguous fold=1 time with another zone's, so compare in UTC.
    assert due == datetime(2027, 11, 7, 6, 15, tzinfo=UTC)
    assert due.astimezone(NY) == datetime(2027, 11, 7, 1, 15, fold=1, tzinfo=NY)


# ---------------------------------------------------------------------------------------------------------
# Pauses


def test_pause_inside_business_hours_pushes_the_due_time():
    start = msk(2026, 11, 23, 10)  # Monday
    assert business_due(start, SEV3) == msk(2026, 11, 23, 16)
    needs_info = [(msk(2026, 11, 23, 11), msk(2026, 11, 23, 13))]
    assert business_due(start, SEV3, pauses=needs_info) == msk(2026, 11, 23, 18)


def test_pause_outside_business_hours_changes_nothing():
    start = msk(2026, 11, 27, 17)
    over_the_weekend = [(msk(2026, 11, 27, 18), msk(2026, 11, 30, 9))]
    overnight_before_filing = [(msk(2026, 11, 26, 19), msk(2026, 11, 27, 8))]
    for pauses in (over_the_weekend, overnight_before_filing):
        assert business_due(start, SEV3, pauses=pauses) == msk(2026, 11, 30, 14)


def test_pause_on_the_24x7_clock_adds_its_length():
    start = msk(2026, 11, 28, 3)
    pauses = [
        (msk(2026, 11, 28, 3, 10), msk(2026, 11, 28, 3, 20)),
        (msk(2026, 11, 28, 3, 15), msk(2026, 11, 28, 3, 25)),
    ]
    assert due_at(start=start, target=SEV1, clock="24x7", calendar=RU, pauses=pauses) == msk(2026, 11, 28, 3, 45)


def test_open_pause_means_no_due_time_unless_already_breached():
    start = msk(2026, 11, 23, 10)
    for clock in ("24x7", "business"):
        still_paused = [(msk(2026, 11, 23, 10, 5), None)]
        assert due_at(start=start, target=SEV3, clock=clock, calendar=RU, pauses=still_paused) is None
        paused_after_breach = [(msk(2026, 11, 24, 10), None)]
        assert due_at(start=start, target=SEV1, clock=clock, calendar=RU, pauses=paused_after_breach) == msk(
            2026, 11, 23, 10, 30
        )


def test_elapsed_stops_at_an_open_pause():
    start = msk(2026, 11, 23, 10)
    pauses = [(msk(2026, 11, 23, 12), None)]
    for clock in ("24x7", "business"):
        spent = elapsed(start=start, now=msk(2026, 11, 25, 12), clock=clock, calendar=RU, pauses=pauses)
        assert spent == timedelta(hours=2)


# ---------------------------------------------------------------------------------------------------------
# Validation


def test_naive_datetimes_are_refused_naming_the_argument():
    naive = datetime(2026, 11, 27, 17)
    aware = msk(2026, 11, 27, 17)
    with pytest.raises(ValueError, match="start must be a timezone-aware"):
        due_at(start=naive, target=SEV3, clock="business", calendar=RU)
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        elapsed(start=aware, now=naive, clock="24x7", calendar=RU)
    with pytest.raises(ValueError, match=r"pauses\[0\] end must be a timezone-aware"):
        due_at(start=aware, target=SEV3, clock="business", calendar=RU, pauses=[(aware, naive)])
    with pytest.raises(ValueError, match="at must be a timezone-aware"):
        is_business_time(RU, at=naive)
    with pytest.raises(ValueError, match="end must be a timezone-aware"):
        business_intervals(RU, start=aware, end=naive)


def test_bad_sla_arguments_are_refused():
    start = msk(2026, 11, 27, 17)
    with pytest.raises(ValueError, match="target must not be negative"):
        due_at(start=start, target=-SEV1, clock="24x7", calendar=RU)
    with pytest.raises(ValueError, match="clock must be"):
        due_at(start=start, target=SEV1, clock="8x5", calendar=RU)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ends before it starts"):
        due_at(start=start, target=SEV1, clock="24x7", calendar=RU, pauses=[(start, start - SEV1)])
    assert due_at(start=start, target=timedelta(0), clock="business", calendar=RU) == start
    assert elapsed(start=start, now=start - SEV1, clock="business", calendar=RU) == timedelta(0)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "America"}, "timezone"),
        ({"country": "XX"}, "country"),
        ({"country": "RUS"}, "country"),
        ({"country": "US", "subdivision": "ZZ"}, "subdivision"),
        ({"country": None, "subdivision": "NY"}, "subdivision"),
        ({"weekly_hours": "mon 18:00-09:00"}, "weekly_hours"),
        ({"weekly_hours": {"tue": ("10:00", "10:00")}}, "weekly_hours"),
    ],
)
def test_calendar_validation_names_the_field(fields, named):
    with pytest.raises(ValueError, match=named):
        BusinessCalendar(**{"timezone": "Europe/Moscow", "country": "RU", **fields})


def test_reversed_hours_say_they_end_before_they_start():
    with pytest.raises(ValueError, match="business hours end before they start: Monday 18:00-09:00"):
        WeeklyHours.model_validate("mon 18:00-09:00")


def test_calendar_is_frozen_hashable_and_normalises_the_country():
    calendar = BusinessCalendar(timezone="Europe/Moscow", country="ru")
    assert calendar.country == "RU"
    assert calendar == RU and hash(calendar) == hash(RU)
    with pytest.raises(ValueError, match="frozen"):
        calendar.timezone = "UTC"  # type: ignore[misc]


def test_calendar_round_trips_through_json_for_storage():
    calendar = GB_NIGHTS.model_copy(update={"observe_working_weekends": False})
    assert BusinessCalendar.model_validate_json(calendar.model_dump_json()) == calendar


# ---------------------------------------------------------------------------------------------------------
# Weekly hours parsing


def test_default_weekly_hours_are_monday_to_friday_nine_to_six():
    assert WeeklyHours().days == {weekday: (time(9), time(18)) for weekday in range(5)}
    assert WeeklyHours().to_spec() == "mon-fri 09:00-18:00"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mon-fri 09:00-18:00", {d: (time(9), time(18)) for d in range(5)}),
        ("Sun-Thu 8:30-17:00", {d: (time(8, 30), time(17)) for d in (6, 0, 1, 2, 3)}),
        ("mon,wed 10:00-12:00:30", {0: (time(10), time(12, 0, 30)), 2: (time(10), time(12, 0, 30))}),
        (
            "mon-fri 09:00-18:00; fri 09:00-16:00; wed closed; saturday 10:00-14:00",
            {
                0: (time(9), time(18)),
                1: (time(9), time(18)),
                3: (time(9), time(18)),
                4: (time(9), time(16)),
                5: (time(10), time(14)),
            },
        ),
        (
            {"mon": "09:00-18:00", "tue-wed": ("08:00", "17:00"), 3: (time(7), time(8)), "mon ": None},
            {1: (time(8), time(17)), 2: (time(8), time(17)), 3: (time(7), time(8))},
        ),
        ({"days": {4: ("10:00", "11:00")}}, {4: (time(10), time(11))}),
    ],
)
def test_weekly_hours_compact_forms(spec, expected):
    assert WeeklyHours.model_validate(spec).days == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mon-fri", "cannot parse weekly hours"),
        ("someday 09:00-18:00", "unknown weekday 'someday'"),
        ("mon 09:00-24:00", "invalid time '24:00'"),
        ({"mon": "9 to 5"}, "invalid hours"),
        ({7: ("09:00", "10:00")}, "weekday must be 0"),
    ],
)
def test_weekly_hours_parse_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        WeeklyHours.model_validate(spec)


schedules = st.dictionaries(
    st.integers(0, 6),
    st.tuples(st.times(), st.times())
    .map(lambda pair: tuple(t.replace(microsecond=0) for t in pair))
    .filter(lambda pair: pair[0] < pair[1]),
)


@settings(max_examples=100, deadline=None)
@given(schedules)
def test_weekly_hours_spec_round_trips(days):
    hours = WeeklyHours(days=days)
    assert WeeklyHours.model_validate(hours.to_spec()) == hours


# ---------------------------------------------------------------------------------------------------------
# Properties


@PROPERTY
@given(data=st.data(), start=starts, target=targets, calendar=calendars)
def test_due_time_closes_a_counted_instant(data, start, target, calendar):
    """The instant just before a business due time is business time and not paused."""
    pauses = data.draw(closed_pauses(start))
    due = business_due(start, target, calendar, pauses=pauses)
    assert due.tzinfo is UTC
    if target:
        assert is_business_time(calendar, at=due - MICROSECOND)
        assert not any(begins <= due - MICROSECOND < ends for begins, ends in pauses)
    else:  # compare in UTC: Python never equates a nonexistent local time with another zone's instant
        assert due == start.astimezone(UTC)


@PROPERTY
@given(
    data=st.data(),
    start=starts,
    targets=st.lists(targets, min_size=2, max_size=2),
    calendar=calendars,
    clock=clocks,
)
def test_more_target_never_moves_the_due_time_earlier(data, start, targets, calendar, clock):
    pauses = data.draw(closed_pauses(start))
    shorter, longer = sorted(targets)
    due = [due_at(start=start, target=t, clock=clock, calendar=calendar, pauses=pauses) for t in (shorter, longer)]
    assert due[0] <= due[1]


@PROPERTY
@given(data=st.data(), start=starts, target=targets, calendar=calendars, clock=clocks)
def test_elapsed_at_the_due_time_is_the_target(data, start, target, calendar, clock):
    pauses = data.draw(closed_pauses(start))
    due = due_at(start=start, target=target, clock=clock, calendar=calendar, pauses=pauses)
    assert elapsed(start=start, now=due, clock=clock, calendar=calendar, pauses=pauses) == target
    if target:
        before = due - MICROSECOND
        assert elapsed(start=start, now=before, clock=clock, calendar=calendar, pauses=pauses) == target - MICROSECOND


@PROPERTY
@given(data=st.data(), start=starts, calendar=calendars, clock=clocks)
def test_elapsed_is_additive(data, start, calendar, clock):
    pauses = data.draw(closed_pauses(start))
    middle = after(start, data.draw(st.integers(0, 4 * 86_400)))
    end = after(middle, data.draw(st.integers(0, 4 * 86_400)))
    parts = [
        elapsed(start=a, now=b, clock=clock, calendar=calendar, pauses=pauses)
        for a, b in ((start, middle), (middle, end))
    ]
    assert sum(parts, timedelta(0)) == elapsed(start=start, now=end, clock=clock, calendar=calendar, pauses=pauses)


@PROPERTY
@given(
    data=st.data(),
    start=starts,
    target=targets,
    calendar=calendars,
    clock=clocks,
    other=st.sampled_from(ZONES),
)
def test_results_do_not_depend_on_the_process_zone_or_the_input_zone(data, start, target, calendar, clock, other):
    pauses = data.draw(closed_pauses(start))
    expected = due_at(start=start, target=target, clock=clock, calendar=calendar, pauses=pauses)
    moved_pauses = [(begins.astimezone(other), ends.astimezone(other)) for begins, ends in pauses]
    with process_timezone(data.draw(st.sampled_from(["Pacific/Kiritimati", "America/St_Johns", "UTC"]))):
        assert (
            due_at(
                start=start.astimezone(other),
                target=target,
                clock=clock,
                calendar=calendar,
                pauses=moved_pauses,
            )
            == expected
        )
        assert is_business_time(calendar, at=expected.astimezone(other)) == is_business_time(calendar, at=expected)


@PROPERTY
@given(data=st.data(), start=starts, target=targets)
def test_24x7_due_is_start_plus_target_plus_paused_time(data, start, target):
    start = start.astimezone(UTC)  # for real-time arithmetic below
    assert due_at(start=start, target=target, clock="24x7", calendar=RU) == start + target
    pauses = data.draw(closed_pauses(start))
    due = due_at(start=start, target=target, clock="24x7", calendar=RU, pauses=pauses)
    # Sweep the pause boundaries inside [start, due): time covered by at least one pause.
    events = sorted(
        event
        for begins, ends in pauses
        if max(begins, start) < min(ends, due)
        for event in ((max(begins, start), 1), (min(ends, due), -1))
    )
    covered, depth, previous = timedelta(0), 0, start
    for instant, step in events:
        if depth:
            covered += instant - previous
        depth, previous = depth + step, instant
    assert due == start + target + covered


@PROPERTY
@given(start=starts, calendar=st.sampled_from(PLAIN_CALENDARS))
def test_is_business_time_matches_a_naive_local_check(start, calendar):
    local = start.astimezone(calendar.zone)
    hours = day_schedule(calendar, day=local.date()).hours
    expected = hours is not None and hours[0] <= local.time() < hours[1]
    assert is_business_time(calendar, at=start) == expected


@PROPERTY
@given(start=starts, length=st.integers(0, 10 * 86_400), calendar=calendars)
def test_business_intervals_are_ordered_disjoint_and_sum_to_elapsed(start, length, calendar):
    start = start.astimezone(UTC)
    end = after(start, length)
    intervals = list(business_intervals(calendar, start=start, end=end))
    bounds = [bound for interval in intervals for bound in interval]
    assert bounds == sorted(bounds)
    assert all(opens < closes for opens, closes in intervals)
    assert all(start <= opens and closes <= end for opens, closes in intervals)
    assert all(is_business_time(calendar, at=opens) for opens, _ in intervals)
    total = sum((closes - opens for opens, closes in intervals), timedelta(0))
    assert total == elapsed(start=start, now=end, clock="business", calendar=calendar)


@PROPERTY
@given(start=starts, target=targets, calendar=calendars, paused_after=st.integers(0, 3 * 86_400))
def test_open_pause_gives_no_due_time_only_while_the_target_is_unmet(start, target, calendar, paused_after):
    paused_at = after(start, paused_after)
    due = due_at(start=start, target=target, clock="business", calendar=calendar, pauses=[(paused_at, None)])
    spent = elapsed(start=start, now=paused_at, clock="business", calendar=calendar)
    if due is None:
        assert spent < target
    else:
        assert due <= paused_at and due == business_due(start, target, calendar)
