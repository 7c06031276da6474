"""The Health Check's booking rules and life cycle, as pure functions: no database, no clock of their own.

Why pure: the API, the CLI, the reminders and the tests must agree on what "the certificate year", "14 days
ahead" and "a business day" mean, and each of these is a question about dates in the customer's calendar
that needs nothing but the customer's record and the moment the booking is made.

Decisions:

* **Certificate years.** Year N of a certificate runs from its start plus N years to the day before the
  start plus N + 1 years, the last one cut short by the certificate's end (inclusive). A certificate that
  starts on 29 February has its anniversary on **1 March** in a common year, so the year before ends on
  28 February: every day belongs to exactly one certificate year, and no year is shorter than 365 days
  (except the last, which the end date cuts).
* **Fourteen days ahead, in the customer's calendar.** The customer's local date when the booking is made
  (their zone, not ours, not UTC), plus 14 days, is the earliest date: at 1 December 13:30 UTC it is
  already 2 December in Kamchatka (UTC+12), so a customer there can be booked for the 16th at the earliest.
  At most MAX_YEARS_AHEAD years ahead: a date that far is a typing mistake, not a plan (and year 9999 has no
  next certificate year to compute).
* **A business day of the customer.** Open in their weekly hours (a transferred working Saturday counts),
  not a public holiday of their country, not one of the dates their TAM closed (`extra_closed_dates`): the
  same `day_schedule` the SLA clock counts with.
* **Reminders at a sensible hour.** A reminder is due from REMINDER_TIME in the customer's zone on its day (7
  days and 1 day before); one missed while nothing ran goes at the next run from that hour on a later day, while
  the Health Check is still ahead — never in the customer's small hours.
"""

from __future__ import annotations

from datetime import MAXYEAR, date, datetime, time, timedelta

from release_requests.errors import IllegalTransition, InvalidInput
from release_requests.sla.calendar import BusinessCalendar, day_schedule

MIN_DAYS_AHEAD = 14
MAX_YEARS_AHEAD = 3
REMINDER_DAYS = (7, 1)  # days before the Health Check that a reminder goes out, latest first
REMINDER_TIME = time(9)  # in the customer's zone: reminders go from this hour of the day on

LIVE_BEFORE_THE_DAY = ("booked", "confirmed")  # reminded, reschedulable
IN_HAND = (*LIVE_BEFORE_THE_DAY, "in_progress", "findings_recorded")  # follow a certificate change

# action -> (the statuses it may start from, the status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "confirm": (("booked",), "confirmed"),
    "start": (("confirmed",), "in_progress"),
    # a one-day remote audit may be written up afterwards without having been started in the system; more
    # findings may be added until the report is delivered
    "record_findings": (("confirmed", "in_progress", "findings_recorded"), "findings_recorded"),
    "deliver": (("findings_recorded",), "report_delivered"),
    # a new date is agreed again: back to booked until the customer confirms it
    "reschedule": (LIVE_BEFORE_THE_DAY, "booked"),
    "cancel": (("booked", "confirmed", "in_progress"), "cancelled"),
}


def label(healthcheck_id: int) -> str:
    """How people see a Health Check's id: `HC-12`."""
    return f"HC-{healthcheck_id}"


def next_status(action: str, *, current: str, name: str) -> str:
    """The status `action` leads to from `current`; IllegalTransition (409) names where it may start from."""
    sources, target = TRANSITIONS[action]
    if current not in sources:
        allowed = " or ".join(filter(None, (", ".join(sources[:-1]), sources[-1])))
        raise IllegalTransition(
            f"{name} is {current}; '{action.replace('_', ' ')}' needs it to be {allowed}",
            current=current,
            requested=target,
        )
    return target


def anniversary(start: date, years: int) -> date:
    """`start` plus `years` years; a 29 February start falls on 1 March in a common year."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return date(start.year + years, 3, 1)


def period_text(first: date, last: date | None) -> str:
    return f"{first.isoformat()}..{last.isoformat() if last else '(open-ended)'}"


def certificate_year(*, start: date | None, end: date | None, day: date, customer: str) -> tuple[date, date | None]:
    """The certificate year (first day, last day inclusive; None: no end) that `day` falls in.

    InvalidInput (field `date`) when the customer has no certificate, or `day` is outside it."""
    if start is None:
        raise InvalidInput(
            f"customer {customer} has no support certificate period, so no certificate year to book a Health Check "
            f"in; set it with `relreq customers set-certificate {customer} --start YYYY-MM-DD --end YYYY-MM-DD`",
            field="customer",
        )
    if day < start or (end is not None and day > end):
        raise InvalidInput(
            f"date {day.isoformat()} is outside the support certificate period {period_text(start, end)} of "
            f"customer {customer}",
            field="date",
        )
    years = day.year - start.year
    if anniversary(start, years) > day:
        years -= 1
    first = anniversary(start, years)
    # the calendar ends with 9999: a year whose next anniversary would be later runs to its last day
    last = date.max if start.year + years + 1 > MAXYEAR else anniversary(start, years + 1) - timedelta(days=1)
    return first, last if end is None else min(last, end)


def check_booking_date(*, calendar: BusinessCalendar, day: date, now: datetime, customer: str) -> None:
    """At least MIN_DAYS_AHEAD days and at most MAX_YEARS_AHEAD years after the customer's local today, on one
    of their business days."""
    today = local_today(now, calendar)
    earliest = today + timedelta(days=MIN_DAYS_AHEAD)
    today_there = f"today ({today.isoformat()} in {calendar.timezone}, customer {customer}'s zone)"
    if day < earliest:
        raise InvalidInput(
            f"date {day.isoformat()} is {(day - today).days} days after {today_there}; a Health Check is booked at "
            f"least {MIN_DAYS_AHEAD} days ahead: the earliest date is {earliest.isoformat()}",
            field="date",
        )
    latest = anniversary(today, MAX_YEARS_AHEAD)
    if day > latest:
        raise InvalidInput(
            f"date {day.isoformat()} is more than {MAX_YEARS_AHEAD} years after {today_there}; a Health Check is "
            f"booked at most {MAX_YEARS_AHEAD} years ahead: the latest date is {latest.isoformat()}",
            field="date",
        )
    closed = day_schedule(calendar, day=day).closed_reason
    if closed is not None:
        raise InvalidInput(
            f"date {day.isoformat()} is not a business day of customer {customer}: {closed}",
            field="date",
        )


def local_today(now: datetime, calendar: BusinessCalendar) -> date:
    return now.astimezone(calendar.zone).date()


def due_reminder(*, scheduled_on: date, local: datetime) -> int | None:
    """Which reminder (days before) is due at `local` (the moment in the customer's zone): the latest one whose
    day has come, from REMINDER_TIME on, while the Health Check is still ahead. A 7-day reminder missed until
    the day before gives way to the 1-day one; one missed while nothing ran waits for REMINDER_TIME of the next
    day, not the small hours."""
    ahead = (scheduled_on - local.date()).days
    if ahead < 1 or local.time() < REMINDER_TIME:
        return None
    return next((days for days in sorted(REMINDER_DAYS) if ahead <= days), None)
