"""Report settings: a customer's report preferences, a person's own digest, the TAM's notes (thin handlers)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.people.models import Person
from release_requests.reports import periods, preferences
from release_requests.reports.schemas import (
    DigestSubscriptionIn,
    DigestSubscriptionOut,
    NoteIn,
    NoteOut,
    Period,
    ReportPreferencesIn,
    ReportPreferencesOut,
)

router = APIRouter(prefix="/api/v1", tags=["reports"])
ALL_TIME = Period(start=date.min, end=date.max, label="all")


@router.get(
    "/customers/{customer_id}/report-preferences",
    response_model=ReportPreferencesOut,
    openapi_extra=needs("report.read"),
)
def get_report_preferences(customer_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return preferences.get_report_preferences(session, actor=me, customer_id=customer_id)


@router.put(
    "/customers/{customer_id}/report-preferences",
    response_model=ReportPreferencesOut,
    openapi_extra=needs("report.preferences"),
)
def put_report_preferences(
    customer_id: str, body: ReportPreferencesIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    with ctx.unit_of_work() as session:
        return preferences.set_report_preferences(session, actor=me, customer_id=customer_id, data=body)


@router.get("/reports/digest/subscription", response_model=DigestSubscriptionOut, openapi_extra=needs("report.read"))
def get_digest_subscription(me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return preferences.get_digest_subscription(session, actor=session.get(Person, me.id))


@router.put(
    "/reports/digest/subscription", response_model=DigestSubscriptionOut, openapi_extra=needs("digest.subscribe")
)
def put_digest_subscription(
    body: DigestSubscriptionIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    with ctx.unit_of_work() as session:
        return preferences.set_digest_subscription(session, actor=session.get(Person, me.id), data=body)


@router.post("/reports/notes", status_code=201, response_model=NoteOut, openapi_extra=needs("report.note"))
def add_note(body: NoteIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return preferences.add_note(session, actor=me, data=body)


@router.get("/reports/notes", response_model=list[NoteOut], openapi_extra=needs("report.read"))
def list_notes(
    customer_id: str,
    quarter: str | None = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    """Every note for the customer, or those about one period (`quarter`, or `from` and `to`)."""
    everything = quarter is None and start is None and end is None
    period = ALL_TIME if everything else periods.from_query(quarter_label=quarter, start=start, end=end)
    with ctx.unit_of_work() as session:
        return preferences.list_notes(session, actor=me, customer_id=customer_id, period=period)
