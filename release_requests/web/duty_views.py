"""The duty rotation: who takes what no TAM takes now and next, the gaps of the coming week (loud when
nobody would take them), leave, the fallback person — and the forms to set the fallback (duty managers,
admins) and to record one's own leave. The same services as /api/v1/duty decide."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Depends, Form, Request

from release_requests import access
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.clock import db_now
from release_requests.routing import service
from release_requests.routing.service import LeaveCreate
from release_requests.web.rendering import render
from release_requests.web.session import Viewer, back_to, checked, valid, viewer, web_router

router = web_router()
DAYS = 7  # how far ahead the page looks for shifts and gaps
LEAVE_DAYS = 30  # …and for leave


@router.get("/duty", openapi_extra=needs("duty.read"))
def duty_page(request: Request, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        board = service.duty_overview(session, actor=me.person, at=db_now(session), days=DAYS, leave_days=LEAVE_DAYS)
    return render(
        request,
        "duty.html",
        viewer=me,
        title="Duty",
        board=board,
        days=DAYS,
        leave_days=LEAVE_DAYS,
        on_leave_now={a.person.id for a in board.absences if a.now},
        can_set_fallback=access.allows(me.person, "duty.set_fallback"),
        can_record_leave=access.allows(me.person, "leave.record_own"),
    )


@router.post("/duty/fallback", openapi_extra=needs("duty.set_fallback"))
def set_fallback(
    person: Annotated[str, Form(max_length=254)] = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    with ctx.unit_of_work() as session:
        service.choose_fallback(session, actor=me.person, person_ref=person.strip())
    return back_to("/duty", "The fallback person is set.")


@router.post("/duty/leave", openapi_extra=needs("leave.record_own"))
def record_leave(
    first_day: Annotated[date | None, Form()] = None,
    last_day: Annotated[date | None, Form()] = None,
    reason: Annotated[str, Form(max_length=1000)] = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    data = valid(LeaveCreate, first_day=first_day, last_day=last_day, reason=reason.strip() or None)
    with ctx.unit_of_work() as session:
        service.record_leave(session, actor=me.person, person_ref=str(me.person.id), data=data)
    return back_to("/duty", "Your leave is recorded.")
