"""Who owns a request now: the customer's TAM when they are at work, otherwise the on-duty manager.

Never an empty wait for somebody who is off: availability is checked in the person's own zone, weekly
hours, public holidays and recorded leave; a gap in the rotation falls to the fallback person. Every
decision is audited with its reason, e.g. "TAM Tanya off: Saturday; on duty: Boris (shift until …)".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import Actor, record
from release_requests.customers.service import tams_of
from release_requests.errors import InvalidInput
from release_requests.people.models import Person
from release_requests.people.service import actor_of, find_person
from release_requests.routing.models import DutyFallback, DutyShift, Leave
from release_requests.sla.availability import is_person_available
from release_requests.sla.calendar import WeeklyHours

WEEK = timedelta(days=7)


class ShiftCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime
    ends_at: AwareDatetime
    weeks: int = Field(default=1, ge=1, le=104, description="repeat weekly this many times")
    note: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _sane(self) -> ShiftCreate:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.weeks > 1 and self.ends_at - self.starts_at > WEEK:
            raise ValueError("a weekly shift longer than a week would overlap itself")
        return self


class LeaveCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_day: date
    last_day: date
    reason: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> LeaveCreate:
        if self.last_day < self.first_day:
            raise ValueError("last_day is before first_day")
        return self


def add_shifts(session: Session, *, actor: Actor, person: Person, data: ShiftCreate) -> list[DutyShift]:
    if not access.allows(person, "duty.serve"):
        raise InvalidInput(f"{person.name} has role '{person.role}'; duty shifts are for duty managers", field="person")
    spans = [(data.starts_at + WEEK * i, data.ends_at + WEEK * i) for i in range(data.weeks)]
    for starts_at, ends_at in spans:
        clash = session.scalar(
            select(DutyShift).where(
                DutyShift.person_id == person.id, DutyShift.starts_at < ends_at, DutyShift.ends_at > starts_at
            )
        )
        if clash is not None:
            raise InvalidInput(
                f"shift {starts_at.isoformat()}–{ends_at.isoformat()} overlaps {person.name}'s shift #{clash.id} "
                f"({clash.starts_at.isoformat()}–{clash.ends_at.isoformat()})",
                field="starts_at",
            )
    shifts = [DutyShift(person_id=person.id, starts_at=s, ends_at=e, note=data.note) for s, e in spans]
    session.add_all(shifts)
    session.flush()
    record(
        session,
        actor=actor,
        action="duty.shifts_added",
        entity_type="person",
        entity_id=str(person.id),
        after={"person": person.name, "shifts": [[s.isoformat(), e.isoformat()] for s, e in spans]},
    )
    return shifts


def list_shifts(session: Session, *, start: datetime, end: datetime) -> list[tuple[DutyShift, Person]]:
    rows = session.execute(
        select(DutyShift, Person)
        .join(Person, Person.id == DutyShift.person_id)
        .where(DutyShift.ends_at > start, DutyShift.starts_at < end)
        .order_by(DutyShift.starts_at)
    )
    return [(row.DutyShift, row.Person) for row in rows]


def set_fallback(session: Session, *, actor: Actor, person: Person) -> None:
    if not access.allows(person, "duty.serve"):
        raise InvalidInput(
            f"{person.name} has role '{person.role}'; the fallback must be a duty manager", field="person"
        )
    current = session.get(DutyFallback, 1)
    before = {"person_id": current.person_id} if current else None
    if current is None:
        session.add(DutyFallback(id=1, person_id=person.id))
    else:
        current.person_id = person.id
    record(
        session,
        actor=actor,
        action="duty.fallback_set",
        entity_type="duty",
        entity_id="fallback",
        before=before,
        after={"person_id": person.id, "person": person.name},
    )


def add_leave(session: Session, *, actor: Actor, person: Person, data: LeaveCreate) -> Leave:
    leave = Leave(person_id=person.id, **data.model_dump())
    session.add(leave)
    session.flush()
    record(
        session,
        actor=actor,
        action="person.leave_added",
        entity_type="person",
        entity_id=str(person.id),
        after=data.model_dump(mode="json"),
    )
    return leave


_LEAVE_SINCE = select(Leave.first_day, Leave.last_day).where(  # built once: every filing asks (routing)
    Leave.person_id == bindparam("person_id"), Leave.last_day >= bindparam("since")
)


def _leave_of(session: Session, person: Person, around: datetime) -> list[tuple[date, date]]:
    rows = session.execute(_LEAVE_SINCE, {"person_id": person.id, "since": around.date() - timedelta(days=2)})
    return [(r.first_day, r.last_day) for r in rows]


def availability(session: Session, *, person: Person, at: datetime) -> tuple[bool, str]:
    """Is `person` at work at `at`? Duty managers by their shifts; everybody else by their own zone, weekly
    hours, public holidays and recorded leave. With the reason in words."""
    if access.allows(person, "duty.by_shifts"):
        shift = session.scalar(
            select(DutyShift).where(DutyShift.person_id == person.id, DutyShift.starts_at <= at, DutyShift.ends_at > at)
        )
        if shift is not None:
            return True, f"on duty until {shift.ends_at.isoformat()}"
        fallback = session.get(DutyFallback, 1)
        if fallback is not None and fallback.person_id == person.id:
            return True, "on call as the duty fallback"
        return False, "off: not on a duty shift"
    return is_person_available(
        at=at,
        timezone=person.timezone,
        weekly_hours=WeeklyHours.model_validate(person.working_hours),
        leave=_leave_of(session, person, at),
        country=person.country,
    )


@dataclass(frozen=True)
class OnDuty:
    person: Person | None
    reason: str
    basis: str = "nobody"  # shift | fallback | nobody: why `person` takes it (paging reads it)


def on_duty(session: Session, *, at: datetime) -> OnDuty:
    """The manager on duty at `at`: the latest-started shift covering it, else the fallback person."""
    row = session.execute(
        select(DutyShift, Person)
        .join(Person, Person.id == DutyShift.person_id)
        .where(DutyShift.starts_at <= at, DutyShift.ends_at > at, Person.active.is_(True))
        .order_by(DutyShift.starts_at.desc())
        .limit(1)
    ).first()
    if row is not None:
        reason = f"on duty: {row.Person.name} (shift until {row.DutyShift.ends_at.isoformat()})"
        return OnDuty(row.Person, reason, "shift")
    fallback = session.get(DutyFallback, 1)
    if fallback is not None:
        person = session.get(Person, fallback.person_id)
        return OnDuty(person, f"rotation gap: fallback {person.name}", "fallback")
    return OnDuty(None, "rotation gap and no fallback person configured")


@dataclass(frozen=True)
class RoutingDecision:
    owner: Person | None
    reason: str
    basis: str = "tam"  # tam | shift | fallback | nobody: a request not taken by a TAM at work may page


def choose_owner(session: Session, *, customer_id: str, at: datetime) -> RoutingDecision:
    """The customer's first available TAM; otherwise the on-duty manager, saying why."""
    reasons = []
    for tam in tams_of(session, customer_id=customer_id):
        available, why = availability(session, person=tam, at=at)
        if available:
            return RoutingDecision(tam, f"TAM {tam.name} {why}", "tam")
        reasons.append(f"TAM {tam.name} {why}")
    if not reasons:
        reasons.append("customer has no TAM")
    duty = on_duty(session, at=at)
    return RoutingDecision(duty.person, "; ".join([*reasons, duty.reason]), duty.basis)


# --------------------------------------------------------------------------------------------------
# The same, as a person asks for it (API): the table decides first


def plan_shifts(
    session: Session, *, actor: Person, person_ref: str, data: ShiftCreate
) -> tuple[Person, list[DutyShift]]:
    """Duty managers and admins plan shifts for a duty manager (e-mail or id)."""
    access.authorize(actor, "duty.plan")
    person = find_person(session, ref=person_ref)
    return person, add_shifts(session, actor=actor_of(actor), person=person, data=data)


def read_shifts(session: Session, *, actor: Person, start: datetime, end: datetime) -> list[tuple[DutyShift, Person]]:
    access.authorize(actor, "duty.read")
    return list_shifts(session, start=start, end=end)


def who_is_on_duty(session: Session, *, actor: Person, at: datetime) -> OnDuty:
    access.authorize(actor, "duty.read")
    return on_duty(session, at=at)


def choose_fallback(session: Session, *, actor: Person, person_ref: str) -> Person:
    """Duty managers and admins name the person who takes what no shift covers."""
    access.authorize(actor, "duty.set_fallback")
    person = find_person(session, ref=person_ref)
    set_fallback(session, actor=actor_of(actor), person=person)
    return person


def record_leave(session: Session, *, actor: Person, person_ref: str, data: LeaveCreate) -> tuple[Person, Leave]:
    """Staff record their own leave; duty managers and admins anybody's (routing skips them meanwhile)."""
    access.authorize(actor, "leave.record_own")
    if person_ref not in (str(actor.id), actor.email):
        access.authorize(actor, "leave.record_others")
    person = find_person(session, ref=person_ref)
    return person, add_leave(session, actor=actor_of(actor), person=person, data=data)


# --------------------------------------------------------------------------------------------------
# The rotation as people read it (the console's duty page)


def rotation_gaps(
    shifts: list[tuple[datetime, datetime]], *, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The spans of [start, end) that none of these (starts_at, ends_at) shifts covers."""
    gaps, cursor = [], start
    for starts_at, ends_at in sorted(shifts):
        if cursor >= end:
            break
        if starts_at > cursor:
            gaps.append((cursor, min(starts_at, end)))
        cursor = max(cursor, ends_at)
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


@dataclass(frozen=True)
class Absence:
    person: Person
    leave: Leave
    now: bool  # today, in the person's own zone, is one of the leave's days


@dataclass(frozen=True)
class DutyOverview:
    """Who takes what no TAM takes, now and in the coming days, and where nobody does."""

    at: datetime
    until: datetime
    on_duty: OnDuty  # exactly what routing would decide at `at`
    current_shift: DutyShift | None  # the shift that puts `on_duty.person` on duty (None: fallback or nobody)
    next_shift: tuple[DutyShift, Person] | None  # the first shift starting after `at`
    shifts: list[tuple[DutyShift, Person]]  # every shift of an active person overlapping [at, until)
    gaps: list[tuple[datetime, datetime]]  # spans of [at, until) no shift covers: the fallback takes them
    fallback: Person | None
    absences: list[Absence]  # leave going on or starting within `leave_days`
    fallback_candidates: list[Person]  # active people who may be the fallback (`duty.serve`)


def duty_overview(
    session: Session, *, actor: Person, at: datetime, days: int = 7, leave_days: int = 30
) -> DutyOverview:
    """The rotation from `at` for `days` days: on duty now (as routing decides), the next shift, the gaps,
    the fallback person, and leave now or starting within `leave_days` days."""
    access.authorize(actor, "duty.read")
    until = at + timedelta(days=days)
    shifts = [(s, p) for s, p in list_shifts(session, start=at, end=until) if p.active]  # as routing counts them
    duty = on_duty(session, at=at)
    current = next(
        (s for s, p in shifts if duty.person is not None and p.id == duty.person.id and s.starts_at <= at < s.ends_at),
        None,
    )
    fallback_row = session.get(DutyFallback, 1)
    fallback = session.get(Person, fallback_row.person_id) if fallback_row is not None else None
    rows = session.execute(
        select(Leave, Person)
        .join(Person, Person.id == Leave.person_id)
        .where(
            Person.active.is_(True),
            Leave.last_day >= (at - timedelta(days=1)).date(),  # zones ahead of or behind UTC: judged below
            Leave.first_day <= (at + timedelta(days=leave_days + 1)).date(),
        )
        .order_by(Leave.first_day, Person.name)
    )
    absences = []
    for leave, person in rows:
        today = at.astimezone(ZoneInfo(person.timezone or "UTC")).date()
        if leave.last_day >= today and leave.first_day <= today + timedelta(days=leave_days):
            absences.append(Absence(person, leave, leave.first_day <= today))
    staff = session.scalars(
        select(Person).where(Person.active.is_(True), Person.customer_id.is_(None)).order_by(Person.name)
    )
    return DutyOverview(
        at=at,
        until=until,
        on_duty=duty,
        current_shift=current,
        next_shift=next(((s, p) for s, p in shifts if s.starts_at > at), None),
        shifts=shifts,
        gaps=rotation_gaps([(s.starts_at, s.ends_at) for s, _ in shifts], start=at, end=until),
        fallback=fallback,
        absences=absences,
        fallback_candidates=[p for p in staff if access.allows(p, "duty.serve")],
    )
