"""Is a person (TAM, engineer) reachable right now, and why not?

Built on the customer business calendar so people and customers share one definition of working hours,
holidays, transferred working days and DST handling. Reasons are worded without the role so the caller can
prefix it ("TAM " + "off: Saturday").
"""

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from release_requests.sla.calendar import (
    BusinessCalendar,
    WeeklyHours,
    as_utc,
    day_schedule,
    is_business_time,
)


def _leave_ends(leave: Sequence[tuple[date, date]], *, today: date) -> date | None:
    """Last day of the leave covering ``today``, following back-to-back ranges; None if not on leave."""
    for index, (first, last) in enumerate(leave):
        if last < first:
            raise ValueError(f"leave[{index}] ends before it starts: {first} .. {last}")
    ends = None
    for first, last in sorted(leave):
        if ends is None and first <= today <= last:
            ends = last
        elif ends is not None and first <= ends + timedelta(days=1):
            ends = max(ends, last)
    return ends


def is_person_available(
    *,
    at: datetime,
    timezone: str,
    weekly_hours: WeeklyHours | str | Mapping = WeeklyHours(),
    leave: Sequence[tuple[date, date]] = (),
    country: str | None = None,
    subdivision: str | None = None,
) -> tuple[bool, str]:
    """Whether the person works at ``at``, with a reason such as "off: Saturday".

    ``leave`` holds inclusive local date ranges. ``weekly_hours`` accepts anything ``WeeklyHours`` validates
    (e.g. "mon-fri 09:00-18:00"). Reasons, in order of precedence: "on leave until 2026-12-04",
    "off: Saturday", "off: public holiday (New Year's Day)",
    "off: outside business hours (19:30 Europe/Moscow)"; when available: "available (10:15 Europe/Moscow)".
    """
    calendar = BusinessCalendar(timezone=timezone, country=country, subdivision=subdivision, weekly_hours=weekly_hours)
    local = as_utc(at, name="at").astimezone(calendar.zone)
    leave_ends = _leave_ends(leave, today=local.date())
    if leave_ends is not None:
        return False, f"on leave until {leave_ends.isoformat()}"
    wall_clock = f"{local:%H:%M} {timezone}"
    if is_business_time(calendar, at=local):
        return True, f"available ({wall_clock})"
    closed_reason = day_schedule(calendar, day=local.date()).closed_reason
    if closed_reason is not None:
        return False, f"off: {closed_reason}"
    return False, f"off: outside business hours ({wall_clock})"
