"""/api/v1/healthchecks: book a yearly Health Check, move it through its life, record findings, get the report.

Ids are accepted as `HC-12` or `12`. Customers read their own; another customer's is 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.clock import db_now
from release_requests.healthchecks import service
from release_requests.healthchecks.schemas import (
    BookIn,
    CancelIn,
    FindingOut,
    HealthCheckOut,
    RescheduleIn,
    Versioned,
)
from release_requests.people.models import Person
from release_requests.web.rendering import DOCUMENT_HEADERS  # a report's HTML: its inline styles, nothing else

router = APIRouter(prefix="/api/v1/healthchecks", tags=["healthchecks"])

FINDINGS_BODY = Body(
    description="a list of findings, each with the fields of FindingIn (product, area, setting, found, severity: "
    "critical|high|medium|low, recommendation); the first bad row is refused by number "
    "(1 = the first) and field, and then nothing is stored",
    examples=[
        [
            {
                "product": "Endpoint Agent 11",
                "area": "Scan settings",
                "setting": "Archive scanning",
                "found": "Archives are not scanned on servers",
                "severity": "high",
                "recommendation": "Enable archive scanning in the server policy",
            }
        ]
    ],
)


def _out(session, healthcheck) -> HealthCheckOut:
    return service.present(session, [healthcheck])[0]


@router.post("", status_code=201, response_model=HealthCheckOut, openapi_extra=needs("healthcheck.book"))
def book(body: BookIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Book a Health Check: a business day of the customer at least 14 days ahead in their zone, in their
    support certificate, one per certificate year, with an engineer free that day."""
    with ctx.unit_of_work() as session:
        healthcheck = service.book(session, actor=me, data=body, now=db_now(session), config=ctx.config)
        return _out(session, healthcheck)


@router.get("", response_model=list[HealthCheckOut], openapi_extra=needs("healthcheck.read"))
def list_healthchecks(
    customer_id: Annotated[str | None, Query(max_length=40)] = None,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    with ctx.unit_of_work() as session:
        return service.present(session, service.list_healthchecks(session, actor=me, customer_id=customer_id))


@router.get("/{healthcheck_id}", response_model=HealthCheckOut, openapi_extra=needs("healthcheck.read"))
def show(healthcheck_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return _out(session, service.get(session, actor=me, ref=healthcheck_id))


@router.post("/{healthcheck_id}/confirm", response_model=HealthCheckOut, openapi_extra=needs("healthcheck.book"))
def confirm(
    healthcheck_id: str, body: Versioned | None = None, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    """The customer agreed the date."""
    with ctx.unit_of_work() as session:
        version = body.version if body else None
        return _out(
            session, service.confirm(session, actor=me, ref=healthcheck_id, version=version, now=db_now(session))
        )


@router.post("/{healthcheck_id}/start", response_model=HealthCheckOut, openapi_extra=needs("healthcheck.conduct"))
def start(
    healthcheck_id: str, body: Versioned | None = None, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    """The engineer begins the audit (on its day or later)."""
    with ctx.unit_of_work() as session:
        version = body.version if body else None
        return _out(session, service.start(session, actor=me, ref=healthcheck_id, version=version, now=db_now(session)))


@router.post("/{healthcheck_id}/reschedule", response_model=HealthCheckOut, openapi_extra=needs("healthcheck.book"))
def reschedule(
    healthcheck_id: str, body: RescheduleIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    """A new date and/or engineer, with a reason, under the booking rules; back to booked."""
    with ctx.unit_of_work() as session:
        healthcheck = service.reschedule(
            session, actor=me, ref=healthcheck_id, data=body, now=db_now(session), config=ctx.config
        )
        return _out(session, healthcheck)


@router.post("/{healthcheck_id}/cancel", response_model=HealthCheckOut, openapi_extra=needs("healthcheck.book"))
def cancel(healthcheck_id: str, body: CancelIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        healthcheck = service.cancel(
            session, actor=me, ref=healthcheck_id, data=body, now=db_now(session), config=ctx.config
        )
        return _out(session, healthcheck)


@router.post("/{healthcheck_id}/findings", response_model=HealthCheckOut, openapi_extra=needs("healthcheck.conduct"))
def record_findings(
    healthcheck_id: str,
    rows: Annotated[list[Any], FINDINGS_BODY],
    version: Annotated[int | None, Query(description="refuse unless the Health Check is at this version")] = None,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    """Record findings (all or none); the Health Check moves to findings_recorded."""
    with ctx.unit_of_work() as session:
        service.record_findings(session, actor=me, ref=healthcheck_id, rows=rows, version=version, now=db_now(session))
        return _out(session, service.get(session, actor=me, ref=healthcheck_id))


@router.get("/{healthcheck_id}/findings", response_model=list[FindingOut], openapi_extra=needs("healthcheck.read"))
def list_findings(healthcheck_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return service.findings(session, actor=me, ref=healthcheck_id)


@router.post("/{healthcheck_id}/deliver", response_model=HealthCheckOut, openapi_extra=needs("healthcheck.conduct"))
def deliver(
    healthcheck_id: str, body: Versioned | None = None, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    """E-mail the report (PDF attached) to the customer's contacts; the Health Check is report_delivered."""
    with ctx.unit_of_work() as session:
        version = body.version if body else None
        healthcheck = service.deliver(
            session, actor=me, ref=healthcheck_id, version=version, now=db_now(session), config=ctx.config
        )
        return _out(session, healthcheck)


@router.get("/{healthcheck_id}/report", openapi_extra=needs("healthcheck.read"), response_class=Response)
def get_report(
    healthcheck_id: str,
    fmt: Annotated[Literal["html", "pdf"], Query(alias="format")] = "html",
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    """The report in the customer's language: HTML or PDF (a draft until it is delivered)."""
    with ctx.unit_of_work() as session:
        document = service.report_document(session, actor=me, ref=healthcheck_id, fmt=fmt, now=db_now(session))
    disposition = "attachment" if fmt == "pdf" else "inline"
    headers = {"Content-Disposition": f'{disposition}; filename="{document.filename}"'}
    return Response(document.content, media_type=document.content_type, headers=headers | DOCUMENT_HEADERS)
