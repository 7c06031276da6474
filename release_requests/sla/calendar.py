"""Business calendars and SLA clocks: pure functions over aware datetimes, exact to the microsecond.

Why this exists: severity 3/4 response times count only the customer's business hours, which depend on
their time zone (with DST), their weekly schedule, their country's public holidays and dates the TAM closes
by hand. Keeping this pure means the API, the flows and the tests all get the same answer, whatever zone the
process itself runs in.

Decisions (read these before changing anything):

* Every datetime argument must be timezone-aware (a naive one is a ``ValueError`` naming the argument:
  guessing a zone is how SLAs silently drift by hours). Work is done in UTC and results are aware UTC.
* The ``"24x7"`` clock counts absolute time: 30 minutes across a DST change are 30 real minutes.
* Business hours are local wall-clock times, so 09:00 is 09:00 local on both sides of a DST change. A local
  time T on day D means "the first moment of D at which the wall clock shows T or later": an ambiguous T on a
  fall-back day is its first occurrence; a T inside a spring-forward gap is the instant the clock jumps past
  it (an interval lying wholly inside a gap is empty). The rule is deterministic and monotonic in T, so an
  interval can shrink but never invert.
* Transferred working days (Russia's "working Saturdays"): ``holidays`` models them as ``weekend_workdays``
  (e.g. RU Saturday 2027-02-20). With ``observe_working_weekends`` on (the default) such a date is open even
  if the customer's schedule closes that weekday, with the hours of their first open weekday (normally
  Monday), because legally it is an ordinary working day. TAMs can switch this off per customer.
* A date is closed when it is in ``extra_closed_dates`` or is a public holiday, whatever the weekly hours say.
* Pauses (e.g. waiting for the customer) remove time from counting on either clock; overlapping pauses are
  merged. A pause whose end is ``None`` is still running: ``due_at`` returns ``None`` unless the target had
  already elapsed before that pause began (then the breach time is known and returned).
"""

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

Clock = Literal["24x7", "business"]
Pause = tuple[datetime, datetime | None]
Interval = tuple[datetime, datetime]

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_NAMES_SHORT = tuple(name[:3].lower() for name in WEEKDAY_NAMES)
_DAY_KEYS = {key: i for i, name in enumerate(WEEKDAY_NAMES) for key in (name.lower(), name[:3].lower())}

# Scanning this many consecutive days without any business time means the calendar can never satisfy a
# target; failing loudly beats looping forever.
_MAX_IDLE_DAYS = 3 * 366
# Stand-in for "no end" so open pauses and the 24x7 clock merge and compare like closed spans.
_FOREVER = datetime.max.replace(tzinfo=UTC)
_ONE_DAY = timedelta(days=1)
_RESOLUTION = timedelta(microseconds=1)

_SEGMENT = re.compile(
    r"^\s*(?P<days>[a-z][a-z,\-\s]*?)\s+(?P<hours>closed|\d{1,2}:\d{2}(?::\d{2})?\s*-\s*\d{1,2}:\d{2}(?::\d{2})?)\s*$",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------------------------------------
# Weekly hours


def _office_hours() -> dict[int, tuple[time, time]]:
    return {weekday: (time(9), time(18)) for weekday in range(5)}


def _fmt_time(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second or value.microsecond else "%H:%M")


def _day_index(name: str) -> int:
    try:
        return _DAY_KEYS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown weekday {name.strip()!r}; use mon..sun or full English names") from None


def _parse_days(text: str) -> list[int]:
    """'mon-fri' / 'sat' / 'mon,wed,fri' / 'sun-thu' (ranges wrap around the week) -> weekday numbers."""
    days: list[int] = []
    for item in text.split(","):
        first, dash, last = item.partition("-")
        start = _day_index(first)
        span = (_day_index(last) - start) % 7 if dash else 0
        days.extend((start + offset) % 7 for offset in range(span + 1))
    return days


def _parse_time(text: str) -> time:
    try:
        return time(*(int(part) for part in text.strip().split(":")))
    except ValueError as exc:
        raise ValueError(f"invalid time {text.strip()!r}: {exc}") from None


def _parse_hours(text: str) -> tuple[time, time] | None:
    """'09:00-18:00' -> (09:00, 18:00); 'closed' -> None."""
    if text.strip().lower() == "closed":
        return None
    opens, dash, closes = text.partition("-")
    if not dash:
        raise ValueError(f"invalid hours {text!r}; expected 'HH:MM-HH:MM' or 'closed'")
    return _parse_time(opens), _parse_time(closes)


def _apply(days: dict[int, Any], weekdays: Iterable[int], hours: Any) -> None:
    for weekday in weekdays:
        if hours is None:
            days.pop(weekday, None)
        else:
            days[weekday] = hours


def _parse_spec(spec: str) -> dict[int, Any]:
    days: dict[int, Any] = {}
    for segment in filter(str.strip, spec.split(";")):
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(f"cannot parse weekly hours {segment.strip()!r}; expected e.g. 'mon-fri 09:00-18:00'")
        _apply(days, _parse_days(match["days"]), _parse_hours(match["hours"]))
    return days


def _parse_day_mapping(mapping: Mapping[Any, Any]) -> dict[int, Any]:
    days: dict[int, Any] = {}
    for key, value in mapping.items():
        weekdays = [key] if isinstance(key, int) else _parse_days(str(key))
        if isinstance(value, str):
            value = _parse_hours(value)
        _apply(days, weekdays, value)
    return days


class WeeklyHours(BaseModel):
    """A customer's (or person's) regular week: at most one local wall-clock interval per weekday.

    ``days`` maps weekday (0 = Monday .. 6 = Sunday) to ``(opens, closes)``; a missing weekday is closed.
    Besides ``WeeklyHours(days={...})`` two compact forms are accepted anywhere a ``WeeklyHours`` is
    validated (e.g. ``BusinessCalendar(weekly_hours=...)`` or ``WeeklyHours.model_validate(...)``), because
    TAMs type these by hand and the DB stores them as text:

    * a string of ``;``-separated segments ``<days> <HH:MM>-<HH:MM>`` or ``<days> closed``, where ``<days>``
      is a day, a range (``mon-fri``, ``sun-thu`` wraps) or a comma list (``mon,wed``); later segments
      override earlier ones: ``"mon-fri 09:00-18:00; fri 09:00-16:00; sat 10:00-14:00"``.
      Seconds are allowed (``HH:MM:SS``). ``to_spec()`` produces this form.
    * a mapping ``{"mon": "09:00-18:00", "tue-thu": ("08:00", "17:00"), "fri": "closed", 5: None}``.

    Treat ``days`` as read-only (the model is frozen; a read-only mapping would not serialise to JSON).
    Intervals stay within one day (a close of 24:00 is not expressible); the 24x7 clock covers round-the-clock
    service.
    """

    model_config = ConfigDict(frozen=True)

    days: dict[int, tuple[time, time]] = Field(default_factory=_office_hours)

    @model_validator(mode="before")
    @classmethod
    def _accept_compact_forms(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"days": _parse_spec(data)}
        if isinstance(data, Mapping) and data and "days" not in data:
            return {"days": _parse_day_mapping(data)}
        return data

    @field_validator("days")
    @classmethod
    def _check_days(cls, days: dict[int, tuple[time, time]]) -> dict[int, tuple[time, time]]:
        for weekday, (opens, closes) in days.items():
            if not 0 <= weekday <= 6:
                raise ValueError(f"weekday must be 0 (Monday) .. 6 (Sunday), got {weekday}")
            if opens.tzinfo is not None or closes.tzinfo is not None:
                raise ValueError("business hours are local wall-clock times and must not carry a tzinfo")
            if closes <= opens:
                raise ValueError(
                    f"business hours end before they start: {WEEKDAY_NAMES[weekday]} "
                    f"{_fmt_time(opens)}-{_fmt_time(closes)}"
                )
        return dict(sorted(days.items()))

    def __hash__(self) -> int:
        return hash(tuple(self.days.items()))

    @property
    def first_open_day_hours(self) -> tuple[time, time] | None:
        """Hours used on a transferred working day: the customer's first open weekday (normally Monday)."""
        return next(iter(self.days.values()), None)

    def to_spec(self) -> str:
        """The compact string form, grouping consecutive weekdays with equal hours (round-trips)."""
        segments: list[str] = []
        weekdays = list(self.days)
        while weekdays:
            first = last = weekdays.pop(0)
            while weekdays and weekdays[0] == last + 1 and self.days[weekdays[0]] == self.days[first]:
                last = weekdays.pop(0)
            names = _DAY_NAMES_SHORT[first] + (f"-{_DAY_NAMES_SHORT[last]}" if last != first else "")
            opens, closes = self.days[first]
            segments.append(f"{names} {_fmt_time(opens)}-{_fmt_time(closes)}")
        return "; ".join(segments)


# ---------------------------------------------------------------------------------------------------------
# Business calendar


@lru_cache(maxsize=1)
def _supported_countries() -> Mapping[str, frozenset[str]]:
    return MappingProxyType(
        {code: frozenset(subdivs) for code, subdivs in holidays.list_supported_countries().items() if len(code) == 2}
    )


class _CountryYear(NamedTuple):
    holidays: Mapping[date, str]
    working_weekends: frozenset[date]


@lru_cache(maxsize=1024)
def _country_year(country: str, subdivision: str | None, year: int) -> _CountryYear:
    """One year of a country's calendar, built once: ``holidays`` objects are slow to construct."""
    calendar = holidays.country_holidays(country, subdiv=subdivision, years=year)
    # ``weekend_workdays`` is missing from older ``holidays`` releases; without it no day is transferred.
    return _CountryYear(MappingProxyType(dict(calendar)), frozenset(getattr(calendar, "weekend_workdays", ())))


def check_timezone(value: str) -> str:
    """An IANA zone name, or ValueError (shared by every model that stores a zone)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Moscow)") from None
    return value


def check_country(value: str | None) -> str | None:
    """An ISO 3166 alpha-2 code that `holidays` knows (upper-cased), None, or ValueError."""
    if value is None:
        return None
    code = value.strip().upper()
    if code not in _supported_countries():
        raise ValueError(f"unknown or unsupported country {value!r}; expected an ISO 3166 alpha-2 code such as RU")
    return code


class BusinessCalendar(BaseModel):
    """Where and when a customer is open: zone, weekly hours, national holidays and TAM-added closures.

    ``country`` is an ISO 3166 alpha-2 code supported by ``holidays`` (case-insensitive) or ``None`` for no
    public holidays (used for people whose country is unknown); it has no default so nobody forgets it.
    """

    model_config = ConfigDict(frozen=True)

    timezone: str
    country: str | None
    subdivision: str | None = None
    weekly_hours: WeeklyHours = WeeklyHours()
    extra_closed_dates: frozenset[date] = frozenset()
    observe_working_weekends: bool = True

    _check_timezone = field_validator("timezone")(classmethod(lambda cls, value: check_timezone(value)))
    _check_country = field_validator("country")(classmethod(lambda cls, value: check_country(value)))

    @field_validator("subdivision")
    @classmethod
    def _check_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or "country" not in info.data:  # an invalid country is reported on its own
            return value
        country = info.data["country"]
        if country is None:
            raise ValueError("subdivision given without a country")
        if value not in _supported_countries()[country]:
            raise ValueError(f"unknown subdivision {value!r} for country {country}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DaySchedule(NamedTuple):
    """A local date's hours, or why it is closed ("Saturday", "public holiday (Unity Day)", ...)."""

    hours: tuple[time, time] | None
    closed_reason: str | None


def day_schedule(calendar: BusinessCalendar, *, day: date) -> DaySchedule:
    """Resolve one local date: weekly hours, transferred working days, extra closed dates, holidays."""
    country_year = None
    if calendar.country is not None:
        country_year = _country_year(calendar.country, calendar.subdivision, day.year)
    hours = calendar.weekly_hours.days.get(day.weekday())
    transferred = country_year is not None and day in country_year.working_weekends
    if hours is None and transferred and calendar.observe_working_weekends:
        hours = calendar.weekly_hours.first_open_day_hours
    if hours is None:
        return DaySchedule(None, WEEKDAY_NAMES[day.weekday()])
    if day in calendar.extra_closed_dates:
        return DaySchedule(None, "extra closed date")
    holiday = None if country_year is None else country_year.holidays.get(day)
    if holiday is not None:
        return DaySchedule(None, f"public holiday ({holiday})")
    return DaySchedule(hours, None)


def as_utc(value: datetime, *, name: str) -> datetime:
    """``value`` as aware UTC; a naive datetime is refused, naming the argument."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _first_instant_at(zone: ZoneInfo, day: date, wall: time) -> datetime:
    """The first instant of local ``day`` whose wall clock shows ``wall`` or later (see module docstring)."""
    naive = datetime.combine(day, wall)
    instant = naive.replace(tzinfo=zone).astimezone(UTC)  # fold=0: first occurrence of an ambiguous time
    if instant.astimezone(zone).replace(tzinfo=None) == naive:
        return instant
    # ``naive`` is inside a spring-forward gap. fold=1 applies the later offset, giving an instant before the
    # transition, and fold=0 one after it; bisect for the transition itself, where the clock jumps past it.
    before = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    old_offset = before.astimezone(zone).utcoffset()
    after = instant
    while after - before > _RESOLUTION:
        middle = before + (after - before) // 2
        if middle.astimezone(zone).utcoffset() == old_offset:
            before = middle
        else:
            after = middle
    return after


def _day_interval(calendar: BusinessCalendar, day: date) -> Interval | None:
    hours = day_schedule(calendar, day=day).hours
    if hours is None:
        return None
    opens, closes = (_first_instant_at(calendar.zone, day, wall) for wall in hours)
    return (opens, closes) if opens < closes else None


def _intervals_from(calendar: BusinessCalendar, start: datetime, horizon: datetime | None) -> Iterator[Interval]:
    """Business intervals clipped to [start, horizon); unbounded when ``horizon`` is None (then capped)."""
    zone = calendar.zone
    day = start.astimezone(zone).date() - _ONE_DAY
    last_day = None if horizon is None else horizon.astimezone(zone).date()
    idle_days = 0
    while last_day is None or day <= last_day:
        interval = _day_interval(calendar, day)
        day += _ONE_DAY
        if interval is None:
            idle_days += 1
            if horizon is None and idle_days > _MAX_IDLE_DAYS:
                raise ValueError(f"calendar has no business hours in {_MAX_IDLE_DAYS} days up to {day}")
            continue
        idle_days = 0
        opens, closes = interval
        if horizon is not None:
            if opens >= horizon:
                return
            closes = min(closes, horizon)
        opens = max(opens, start)
        if opens < closes:
            yield opens, closes


def business_intervals(calendar: BusinessCalendar, *, start: datetime, end: datetime) -> Iterator[Interval]:
    """The customer's open intervals (aware UTC, ascending, disjoint) within [start, end), clipped to it.

    Arguments are checked eagerly, so a naive datetime fails here rather than on first iteration.
    """
    return _intervals_from(calendar, as_utc(start, name="start"), as_utc(end, name="end"))


def is_business_time(calendar: BusinessCalendar, *, at: datetime) -> bool:
    """Whether ``at`` is inside the customer's business hours (half-open intervals: 18:00 is closed)."""
    at = as_utc(at, name="at")
    return next(_intervals_from(calendar, at, at + _RESOLUTION), None) is not None


# ---------------------------------------------------------------------------------------------------------
# SLA clocks


def _check_clock(clock: str) -> None:
    if clock not in ("24x7", "business"):
        raise ValueError(f"clock must be '24x7' or 'business', got {clock!r}")


def _merged_pauses(pauses: Sequence[Pause]) -> list[Interval]:
    """Validated pauses as sorted, disjoint UTC spans; an open pause runs until ``_FOREVER``."""
    spans = []
    for index, (begins, ends) in enumerate(pauses):
        begins = as_utc(begins, name=f"pauses[{index}] start")
        ends = _FOREVER if ends is None else as_utc(ends, name=f"pauses[{index}] end")
        if ends < begins:
            raise ValueError(f"pauses[{index}] ends before it starts")
        spans.append((begins, ends))
    merged: list[Interval] = []
    for begins, ends in sorted(spans):
        if merged and begins <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ends))
        else:
            merged.append((begins, ends))
    return merged


def _without_pauses(intervals: Iterable[Interval], pauses: list[Interval]) -> Iterator[Interval]:
    """``intervals`` minus the (sorted, disjoint) ``pauses``; both inputs ascend, so one pass suffices."""
    first = 0
    for opens, closes in intervals:
        while first < len(pauses) and pauses[first][1] <= opens:
            first += 1
        cursor = opens
        for paused_from, paused_until in pauses[first:]:
            if paused_from >= closes:
                break
            if paused_from > cursor:
                yield cursor, paused_from
            cursor = max(cursor, paused_until)
            if cursor >= closes:
                break
        if cursor < closes:
            yield cursor, closes


def _counted(
    *,
    start: datetime,
    horizon: datetime | None,
    clock: Clock,
    calendar: BusinessCalendar,
    pauses: list[Interval],
) -> Iterator[Interval]:
    """The spans that count towards the target, from ``start`` until ``horizon`` (None: no end)."""
    if clock == "24x7":
        end = _FOREVER if horizon is None else horizon
        intervals: Iterable[Interval] = [(start, end)] if start < end else []
    else:
        intervals = _intervals_from(calendar, start, horizon)
    return _without_pauses(intervals, pauses)


def due_at(
    *,
    start: datetime,
    target: timedelta,
    clock: Clock,
    calendar: BusinessCalendar,
    pauses: Sequence[Pause] = (),
) -> datetime | None:
    """When ``target`` of counted time has elapsed since ``start`` (aware UTC), or None while paused.

    The result t is the earliest instant with ``elapsed(start, t) == target``; for a positive target the
    instant just before t is counted time (business hours, not paused), so t is inside an open interval or
    exactly at its end. A zero target is due at ``start``.
    """
    start = as_utc(start, name="start")
    _check_clock(clock)
    if target < timedelta(0):
        raise ValueError(f"target must not be negative, got {target}")
    spans = _merged_pauses(pauses)
    if not target:
        return start
    open_pause = next((begins for begins, ends in spans if ends == _FOREVER), None)
    remaining = target
    for opens, closes in _counted(start=start, horizon=open_pause, clock=clock, calendar=calendar, pauses=spans):
        if remaining <= closes - opens:
            return opens + remaining
        remaining -= closes - opens
    return None


def elapsed(
    *,
    start: datetime,
    now: datetime,
    clock: Clock,
    calendar: BusinessCalendar,
    pauses: Sequence[Pause] = (),
) -> timedelta:
    """Counted time in [start, now): business or absolute, minus pauses; zero unless ``now`` > ``start``."""
    start, now = as_utc(start, name="start"), as_utc(now, name="now")
    _check_clock(clock)
    spans = _merged_pauses(pauses)
    if now <= start:
        return timedelta(0)
    counted = _counted(start=start, horizon=now, clock=clock, calendar=calendar, pauses=spans)
    return sum((closes - opens for opens, closes in counted), timedelta(0))
