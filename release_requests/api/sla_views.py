"""/api/v1/queue and /api/v1/sla: the team's work order and the due-time calculator."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.clock import db_now
from release_requests.customers.service import customer_for
from release_requests.people.models import Person
from release_requests.requests import presentation
from release_requests.requests.schemas import RequestOut, Severity
from release_requests.sla.service import due_for

router = APIRouter(prefix="/api/v1", tags=["sla"])


class DueTime(BaseModel):
    customer_id: str
    severity: int
    clock: str
    target_minutes: int
    filed_at: datetime
    due_at: datetime
    due_at_local: str
    timezone: str


@router.get("/queue", response_model=list[RequestOut], openapi_extra=needs("queue.read"))
def work_queue(me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Open work: breached first, then by severity, Enterprise before standard, then by due time."""
    with ctx.unit_of_work() as session:
        return presentation.queue(session, actor=me, config=ctx.config)


@router.get("/sla/due", response_model=DueTime, openapi_extra=needs("customer.read"))
def sla_due(
    customer_id: Annotated[str, Query()],
    severity: Annotated[Severity, Query()],
    at: Annotated[AwareDatetime | None, Query(description="ISO 8601 with zone; default now")] = None,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
) -> DueTime:
    """When a request of this severity filed at `at` is due, in the customer's zone and UTC."""
    with ctx.unit_of_work() as session:
        customer = customer_for(session, actor=me, customer_id=customer_id)
        filed = at or db_now(session)
        due, policy = due_for(customer=customer, severity=severity, at=filed, config=ctx.config)
        zone = customer.calendar().zone
        return DueTime(
            customer_id=customer.id,
            severity=severity,
            clock=policy.clock,
            target_minutes=policy.response_minutes,
            filed_at=filed,
            due_at=due,
            due_at_local=due.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
            timezone=customer.timezone,
        )
