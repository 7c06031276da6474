"""Report periods: whole local days in the customer's zone, named the way people ask for them.

A period is `start`..`end` inclusive (`reports.schemas.Period`); the instants it covers are the half-open
range from local midnight of `start` to local midnight after `end` in the customer's zone, so a request
received at 23:59 Moscow time on 31 December belongs to Q4 of a Moscow customer whatever the UTC date.
Pure functions: the API, the CLI and the scheduled sender parse and name periods the same way.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from release_requests.errors import InvalidInput
from release_requests.reports.schemas import Period

MAX_DAYS = 3 * 366  # a longer report is a mistake (a mistyped year), and an expensive one
YEARS = (2000, 2999)  # a report of another millennium is a typing mistake (and 9999Q4 would end in year 10000)
_QUARTER = re.compile(r"^(\d{4})[Qq]([1-4])$")


def quarter(label: str) -> Period:
    """'2026Q4' (or '2026q4') → 2026-10-01..2026-12-31; anything else is an InvalidInput naming `quarter`."""
    match = _QUARTER.fullmatch(label.strip())
    if match is None:
        raise InvalidInput(f"quarter '{label}' is not a quarter: use YYYYQ1..YYYYQ4 (e.g. 2026Q4)", field="quarter")
    if not YEARS[0] <= int(match[1]) <= YEARS[1]:
        raise InvalidInput(f"quarter '{label}': the year must be {YEARS[0]}..{YEARS[1]}", field="quarter")
    year, number = int(match[1]), int(match[2])
    start = date(year, 3 * number - 2, 1)
    end = (date(year + 1, 1, 1) if number == 4 else date(year, 3 * number + 1, 1)) - timedelta(days=1)
    return Period(start=start, end=end, label=f"{year}Q{number}")


def between(start: date, end: date) -> Period:
    """Any run of whole days, `start` to `end` inclusive, at most `MAX_DAYS` long."""
    if end < start:
        raise InvalidInput(f"'to' {end.isoformat()} is before 'from' {start.isoformat()}", field="to")
    days = (end - start).days + 1
    if days > MAX_DAYS:
        raise InvalidInput(
            f"the period {start.isoformat()}..{end.isoformat()} is {days} days long: at most {MAX_DAYS} (3 years)",
            field="to",
        )
    return Period(start=start, end=end, label=f"{start.isoformat()}..{end.isoformat()}")


def from_query(*, quarter_label: str | None, start: date | None, end: date | None) -> Period:
    """The period a caller asked for: exactly one of a quarter, or `from` and `to` together."""
    if quarter_label is not None and (start is not None or end is not None):
        raise InvalidInput("give either 'quarter' or 'from' and 'to', not both", field="quarter")
    if quarter_label is not None:
        return quarter(quarter_label)
    if start is None and end is None:
        raise InvalidInput("a period is needed: 'quarter' (e.g. 2026Q4), or 'from' and 'to' dates", field="quarter")
    if start is None or end is None:
        missing = "from" if start is None else "to"
        raise InvalidInput(f"'{missing}' is missing: give 'from' and 'to' together", field=missing)
    return between(start, end)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a local day, in UTC (a midnight skipped by a DST jump is the instant of the jump)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def utc_range(period: Period, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants of the period's local days: [first midnight, midnight after the last day) in UTC."""
    return local_midnight(period.start, zone), local_midnight(period.end + timedelta(days=1), zone)


def iso_weeks(first: date, last: date) -> list[date]:
    """The Mondays of every ISO week from the one holding `first` to the one holding `last`."""
    monday = first - timedelta(days=first.weekday())
    weeks = []
    while monday <= last:
        weeks.append(monday)
        monday += timedelta(days=7)
    return weeks
