"""/api/v1/duty and leave: the on-duty rotation and people's absences, which routing relies on."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.clock import db_now
from release_requests.people.models import Person
from release_requests.routing import service
from release_requests.routing.service import LeaveCreate, ShiftCreate

router = APIRouter(prefix="/api/v1", tags=["duty"])


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


@router.post("/duty/shifts", status_code=201, response_model=list[ShiftOut], openapi_extra=needs("duty.plan"))
def add_shifts(body: ShiftIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        data = ShiftCreate(**body.model_dump(exclude={"person"}))
        person, shifts = service.plan_shifts(session, actor=me, person_ref=body.person, data=data)
        return [_out(s, person) for s in shifts]


@router.get("/duty/shifts", response_model=list[ShiftOut], openapi_extra=needs("duty.read"))
def list_shifts(
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 14,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    with ctx.unit_of_work() as session:
        start = start or db_now(session)
        shifts = service.read_shifts(session, actor=me, start=start, end=start + timedelta(days=days))
        return [_out(s, p) for s, p in shifts]


@router.get("/duty/now", response_model=OnDutyOut, openapi_extra=needs("duty.read"))
def who_is_on_duty(
    at: Annotated[AwareDatetime | None, Query()] = None,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    with ctx.unit_of_work() as session:
        at = at or db_now(session)
        duty = service.who_is_on_duty(session, actor=me, at=at)
        return OnDutyOut(
            at=at,
            person_id=duty.person.id if duty.person else None,
            person=duty.person.name if duty.person else None,
            reason=duty.reason,
        )


@router.put("/duty/fallback", response_model=OnDutyOut, openapi_extra=needs("duty.set_fallback"))
def set_fallback(body: FallbackIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        person = service.choose_fallback(session, actor=me, person_ref=body.person)
        return OnDutyOut(at=db_now(session), person_id=person.id, person=person.name, reason="fallback person")


@router.post(
    "/people/{person_ref}/leave", status_code=201, openapi_extra=needs("leave.record_own", "leave.record_others")
)
def add_leave(person_ref: str, body: LeaveCreate, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Record leave: staff for themselves, duty managers and admins for anybody (routing skips them)."""
    with ctx.unit_of_work() as session:
        person, leave = service.record_leave(session, actor=me, person_ref=person_ref, data=body)
        return {"id": leave.id, "person": person.name, **body.model_dump(mode="json")}
