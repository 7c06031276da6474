"""/api/v1/reports/daily and /api/v1/reports/customer: the daily digest and a customer's report (thin handlers;
the figures are `reports.service`, the renderings `reports.rendering`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import AwareDatetime

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.customers.models import Customer
from release_requests.people.models import Person
from release_requests.reports import periods, rendering, service
from release_requests.reports.preferences import digest_zone
from release_requests.reports.schemas import CustomerReport, DailyDigest
from release_requests.web.rendering import DOCUMENT_HEADERS  # a report's HTML: its inline styles, nothing else

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Language = Literal["en", "ru"]
AsOf = Annotated[
    AwareDatetime | None,
    Query(description="count the audit log up to this instant (ISO 8601 with zone; default now)"),
]


def _language(session, me: Person, customer_id: str | None) -> str:
    """The caller's own language, else their (or the report's) customer's, else English."""
    if me.language:
        return me.language
    customer = session.get(Customer, customer_id) if customer_id else None
    return customer.language if customer else "en"


@router.get(
    "/daily",
    response_model=DailyDigest,
    openapi_extra=needs("report.read"),
    responses={200: {"content": {"text/plain": {}, "text/html": {}}}},
)
def daily(
    at: AsOf = None,
    format: Annotated[Literal["json", "text", "html"], Query(description="json (default), text or html")] = "json",
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    """Severity 1–2 requests open or changed in the 24 h before `at`: staff see the customers they see, a
    customer's users their own. Text and HTML are in the caller's language and zone."""
    with ctx.unit_of_work() as session:
        digest = service.daily_digest(session, actor=me, as_of=at, config=ctx.config)
        if format == "json":
            return digest
        language, zone = _language(session, me, me.customer_id), digest_zone(session, me)
    if format == "text":
        return PlainTextResponse(rendering.digest_text(digest, language=language, zone=zone))
    return HTMLResponse(rendering.digest_html(digest, language=language, zone=zone), headers=DOCUMENT_HEADERS)


@router.get(
    "/customer",
    response_model=CustomerReport,
    openapi_extra=needs("report.read"),
    responses={200: {"content": {"text/html": {}, "application/pdf": {}, "text/csv": {}}}},
)
def customer(
    customer_id: Annotated[str, Query(min_length=1, max_length=40)],
    quarter: Annotated[str | None, Query(max_length=20, description="e.g. 2026Q4; or give from and to")] = None,
    start: Annotated[date | None, Query(alias="from", description="first day (the customer's zone)")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day, inclusive")] = None,
    format: Annotated[Literal["json", "html", "pdf", "csv"], Query()] = "json",
    language: Annotated[Language | None, Query(description="default: yours, else the customer's")] = None,
    as_of: AsOf = None,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    """A customer's report for a quarter or any run of days: requests received in the period, SLA outcomes and
    first responses that happened in it, breaches with reasons, releases delivered, Health Checks and the TAM's
    notes. Exactly one of `quarter`, or `from` and `to`."""
    period = periods.from_query(quarter_label=quarter, start=start, end=end)
    with ctx.unit_of_work() as session:
        report = service.customer_report(
            session, actor=me, customer_id=customer_id, period=period, config=ctx.config, as_of=as_of
        )
        if format == "json":
            return report
        language = language or _language(session, me, customer_id)
    name = f"report-{report.customer_id}-{report.period.label.replace('..', '_')}"
    if format == "html":
        return HTMLResponse(rendering.report_html(report, language=language), headers=DOCUMENT_HEADERS)
    if format == "csv":
        return Response(
            rendering.report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        rendering.report_pdf(report, language=language),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )
