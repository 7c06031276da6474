"""/api/v1/duty and leave: the on-duty rotation and people's absences, which routing relies on."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict

from release_requests import access
from release_requests.api.deps import AppContext, caller, context
from release_requests.people.models import Person
from release_requests.people.service import actor_of, find_person
from release_requests.requests.service import db_now
from release_requests.routing import service
from release_requests.routing.service import LeaveCreate, ShiftCreate

router = APIRouter(prefix="/api/v1", tags=["duty"])
MANAGES_DUTY = frozenset({"admin", "duty_manager"})


class ShiftIn(ShiftCreate):
    person: str  # e-mail or id


class ShiftOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    person_id: int
    person: str
    starts_at: datetime
    ends_at: datetime
    note: str | None


class FallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: str


class OnDutyOut(BaseModel):
    at: datetime
    person_id: int | None
    person: str | None
    reason: str


def _out(shift, person: Person) -> ShiftOut:
    return ShiftOut(
        id=shift.id,
        person_id=person.id,
        person=person.name,
        starts_at=shift.starts_at,
        ends_at=shift.ends_at,
        note=shift.note,
    )


@router.post("/duty/shifts", status_code=201, response_model=list[ShiftOut])
def add_shifts(body: ShiftIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    access.require_role(me, MANAGES_DUTY, to="plan duty shifts")
    with ctx.unit_of_work() as session:
        person = find_person(session, ref=body.person)
        data = ShiftCreate(**body.model_dump(exclude={"person"}))
        return [_out(s, person) for s in service.add_shifts(session, actor=actor_of(me), person=person, data=data)]


@router.get("/duty/shifts", response_model=list[ShiftOut])
def list_shifts(
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 14,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    access.require_role(me, access.STAFF, to="read the duty rotation")
    with ctx.unit_of_work() as session:
        start = start or db_now(session)
        return [_out(s, p) for s, p in service.list_shifts(session, start=start, end=start + timedelta(days=days))]


@router.get("/duty/now", response_model=OnDutyOut)
def who_is_on_duty(
    at: Annotated[AwareDatetime | None, Query()] = None,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    access.require_role(me, access.STAFF, to="read the duty rotation")
    with ctx.unit_of_work() as session:
        at = at or db_now(session)
        duty = service.on_duty(session, at=at)
        return OnDutyOut(
            at=at,
            person_id=duty.person.id if duty.person else None,
            person=duty.person.name if duty.person else None,
            reason=duty.reason,
        )


@router.put("/duty/fallback", response_model=OnDutyOut)
def set_fallback(body: FallbackIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    access.require_role(me, MANAGES_DUTY, to="set the duty fallback")
    with ctx.unit_of_work() as session:
        person = find_person(session, ref=body.person)
        service.set_fallback(session, actor=actor_of(me), person=person)
        return OnDutyOut(at=db_now(session), person_id=person.id, person=person.name, reason="fallback person")


@router.post("/people/{person_ref}/leave", status_code=201)
def add_leave(person_ref: str, body: LeaveCreate, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Record leave: staff for themselves, duty managers and admins for anybody (routing skips them)."""
    access.require_role(me, access.STAFF, to="record leave")
    with ctx.unit_of_work() as session:
        if person_ref not in (str(me.id), me.email):
            access.require_role(me, MANAGES_DUTY, to="record other people's leave")
        person = find_person(session, ref=person_ref)
        leave = service.add_leave(session, actor=actor_of(me), person=person, data=body)
        return {"id": leave.id, "person": person.name, **body.model_dump(mode="json")}
