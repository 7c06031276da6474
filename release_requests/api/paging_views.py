"""/api/v1/pages, a request's page and its acknowledgement, and the rotation check: thin handlers over
`paging.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy import select

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.clock import db_now
from release_requests.paging import service
from release_requests.paging.models import Page
from release_requests.paging.schemas import AcknowledgeIn, ChainEntry, DutyCheckOut, GapOut, PageOut
from release_requests.people.models import Person
from release_requests.requests.models import ReleaseRequest

router = APIRouter(prefix="/api/v1", tags=["paging"])


def _outs(session, pages: list[Page]) -> list[PageOut]:
    """Pages as the API shows them; their requests' customers and acknowledgers read once for the whole list."""
    customers = dict(
        session.execute(
            select(ReleaseRequest.id, ReleaseRequest.customer_id).where(
                ReleaseRequest.id.in_({p.request_id for p in pages})
            )
        ).all()
    )
    acknowledgers = {p.acknowledged_by_id for p in pages if p.acknowledged_by_id}
    names = dict(session.execute(select(Person.id, Person.name).where(Person.id.in_(acknowledgers))).all())
    return [
        PageOut(
            request_id=page.request_id,
            customer_id=customers[page.request_id],
            dedup_key=page.dedup_key,
            severity=page.severity,
            status=page.status,
            chain=page.chain,
            step=page.step,
            paged=ChainEntry(**page.chain[page.step]) if page.chain else None,
            paged_at=page.paged_at,
            escalate_at=page.escalate_at,
            acknowledged_by_id=page.acknowledged_by_id,
            acknowledged_by=names.get(page.acknowledged_by_id),
            acknowledged_at=page.acknowledged_at,
            acknowledged_via=page.acknowledged_via,
            resolved_at=page.resolved_at,
        )
        for page in pages
    ]


@router.get("/pages", response_model=list[PageOut], openapi_extra=needs("page.read"))
def list_pages(
    status: Annotated[str | None, Query(description="paging | acknowledged | resolved | exhausted")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    """Pages, newest first (a TAM: their customers' only)."""
    with ctx.unit_of_work() as session:
        return _outs(session, service.list_pages(session, actor=me, status=status, limit=limit))


@router.get("/requests/{request_id}/page", response_model=PageOut, openapi_extra=needs("page.read"))
def show_page(request_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """A request's page: its chain, who is paged now, who acknowledged it."""
    with ctx.unit_of_work() as session:
        return _outs(session, [service.page_of(session, actor=me, request_id=request_id)])[0]


@router.post("/requests/{request_id}/page/acknowledge", response_model=PageOut, openapi_extra=needs("page.acknowledge"))
def acknowledge(
    request_id: str,
    body: Annotated[AcknowledgeIn | None, Body()] = None,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    """Take the page: the escalation stops (not the SLA clock). 409 when it was already acknowledged. The body
    is optional (`{"via": "cli"}` from `relreq page ack`; none: via api)."""
    via = body.via if body is not None else "api"
    with ctx.unit_of_work() as session:
        page = service.acknowledge(session, actor=me, request_id=request_id, via=via, config=ctx.config)
        return _outs(session, [page])[0]


@router.get("/duty/check", response_model=DutyCheckOut, openapi_extra=needs("duty.read"))
def check_rotation(
    days: Annotated[int, Query(ge=1, le=366)] = 14,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    """The gaps in the duty rotation for the next `days` days, each with who covers it (the fallback) or nobody."""
    with ctx.unit_of_work() as session:
        check = service.check_rotation(session, actor=me, at=db_now(session), days=days, config=ctx.config)
        return DutyCheckOut(
            at=check.at,
            until=check.until,
            days=days,
            gaps=[
                GapOut(
                    starts_at=g.starts_at,
                    ends_at=g.ends_at,
                    covered_by_id=g.covered_by.id if g.covered_by else None,
                    covered_by=g.covered_by.name if g.covered_by else None,
                )
                for g in check.gaps
            ],
            nobody=check.nobody,
            fallback=check.fallback.name if check.fallback else None,
            head_of_support=check.head_of_support.name if check.head_of_support else None,
            problems=check.problems,
        )
