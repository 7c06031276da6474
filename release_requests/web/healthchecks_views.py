"""Health Checks in the console and the portal: the list (a customer's users see their own), one Health Check
with its life so far (from the audit log), its findings by severity and its report; staff book one and move it
along (confirm, start, cancel, reschedule).

Thin like the API's handlers: `healthchecks.service` decides every rule. A refusal — a date 13 days ahead, a
holiday, a second booking in the certificate year, a page older than the Health Check — shows on the form it
came from, in the service's words, with what was typed kept; another customer's Health Check is a 404 page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Form, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.audit.models import AuditEvent
from release_requests.clock import db_now
from release_requests.customers.service import customers_for
from release_requests.errors import Conflict, InvalidInput, StaleVersion
from release_requests.healthchecks import rules, service
from release_requests.healthchecks.schemas import SEVERITIES, BookIn, CancelIn, RescheduleIn
from release_requests.people.models import Person
from release_requests.web.i18n import translate
from release_requests.web.rendering import download, render
from release_requests.web.session import Viewer, back_to, checked, viewer, web_router

router = web_router()

# Words the views put on pages (translated in translations/healthchecks.toml)
HEALTHCHECK_STATUSES = {
    "booked": "Booked",
    "confirmed": "Confirmed",
    "in_progress": "In progress",
    "findings_recorded": "Findings recorded",
    "report_delivered": "Report delivered",
    "cancelled": "Cancelled",
}
FINDING_SEVERITIES = {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"}
EVENTS = {
    "healthcheck.booked": "Booked for {date} with {engineer}",
    "healthcheck.confirmed": "Date agreed with the customer",
    "healthcheck.started": "Started",
    "healthcheck.rescheduled": "Rescheduled to {date} with {engineer}",
    "healthcheck.cancelled": "Cancelled",
    "healthcheck.findings_recorded": "Findings recorded: {count}",
    "healthcheck.report_delivered": "Report delivered to the customer",
}
MESSAGES = {
    "customer_id": "Choose the customer.",
    "date": "Choose the day of the Health Check.",
    "engineer": "Choose the engineer.",
    "cancel_reason": "Give the reason for cancelling; the customer reads it.",
    "reschedule_reason": "Give the reason for the change; the customer reads it.",
    "reschedule_date": "Choose a new date, another engineer, or both.",
    "too_long": "Use at most {limit} characters; this has {count}.",
    "stale": "Someone changed this Health Check meanwhile, so nothing was changed. The page now shows it as it is: "
    "check it and try again.",
}
# what each button needs besides the status its action starts from (`rules.TRANSITIONS`)
ACTIONS = {
    "confirm": "healthcheck.book",
    "start": "healthcheck.conduct",
    "reschedule": "healthcheck.book",
    "cancel": "healthcheck.book",
}
# the service's `field` of a refusal → the form field it is about
BOOKING_FIELDS = {"customer": "customer_id", "customer_id": "customer_id", "date": "date", "engineer": "engineer"}
# the HTML report is the e-mail's page, whose styles are inline: allowed in that file alone, nothing else


def _(me: Viewer, text: str, **params: object) -> str:
    return translate(me.language, text, **params)


def _status(exc: InvalidInput | Conflict) -> int:
    return 422 if isinstance(exc, InvalidInput) else 409


def _field(exc: InvalidInput | Conflict) -> str:
    """The field a refusal names (a Conflict carries it among its details), or ''."""
    return str(exc.details.get("field") or "")


# --------------------------------------------------------------------------------------------------
# The list and booking


def _list_page(
    request: Request,
    me: Viewer,
    ctx: AppContext,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
):
    can_book = access.allows(me.person, "healthcheck.book")
    with ctx.unit_of_work() as session:
        items = service.present(session, service.list_healthchecks(session, actor=me.person))
        customers = customers_for(session, actor=me.person) if can_book else []
        engineers = service.engineers(session, actor=me.person) if can_book else []
    return render(
        request,
        "healthchecks.html",
        viewer=me,
        status_code=status_code,
        items=items,
        can_book=can_book,
        customers=[(c.id, c.name) for c in customers],
        engineers=engineers,
        values=values or {},
        errors=errors or {},
        statuses=HEALTHCHECK_STATUSES,
        min_days=rules.MIN_DAYS_AHEAD,
    )


@router.get("/healthchecks", openapi_extra=needs("healthcheck.read"))
def healthchecks_page(request: Request, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)):
    return _list_page(request, me, ctx)


@router.post("/healthchecks", openapi_extra=needs("healthcheck.book"))
def book(
    request: Request,
    customer_id: Annotated[str, Form(max_length=40)] = "",
    day: Annotated[str, Form(alias="date", max_length=20)] = "",
    engineer: Annotated[str, Form(max_length=254)] = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    values = {"customer_id": customer_id, "date": day, "engineer": engineer}

    def again(errors: dict[str, str], status_code: int):
        return _list_page(request, me, ctx, values=values, errors=errors, status_code=status_code)

    try:
        data = BookIn(customer_id=customer_id, date=day or None, engineer=engineer)
    except ValidationError as exc:
        fields = dict.fromkeys(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        return again({name: _(me, MESSAGES[name]) for name in fields if name in MESSAGES}, 422)
    try:
        with ctx.unit_of_work() as session:
            healthcheck = service.book(session, actor=me.person, data=data, now=db_now(session), config=ctx.config)
            healthcheck_id = healthcheck.id
    except (InvalidInput, Conflict) as exc:
        return again({BOOKING_FIELDS.get(_field(exc), "form"): exc.message}, _status(exc))
    return back_to(f"/healthchecks/{healthcheck_id}", "The Health Check is booked.")


# --------------------------------------------------------------------------------------------------
# One Health Check


@dataclass(frozen=True)
class Step:
    """One change in a Health Check's life, as its audit event tells it."""

    at: datetime
    actor: str
    text: str
    reason: str | None


def life(me: Viewer, session: Session, events: list[AuditEvent]) -> list[Step]:
    """Each audit event of a Health Check as one line: what happened (the date and engineer it led to), who did
    it, when, and the reason given."""
    engineer_ids = {e.after.get("engineer_id") for e in events if e.after and e.after.get("engineer_id")}
    names = {pid: person.name for pid in engineer_ids if (person := session.get(Person, pid)) is not None}
    steps = []
    for event in events:
        after = event.after or {}
        words = EVENTS.get(event.action, event.action)
        text = _(
            me,
            words,
            date=after.get("scheduled_on", "—"),
            engineer=names.get(after.get("engineer_id"), "—"),
            count=after.get("findings_added", 0),
        )
        steps.append(Step(event.occurred_at, event.actor, text, event.reason))
    return steps


def _healthcheck_page(
    request: Request,
    me: Viewer,
    ctx: AppContext,
    healthcheck_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
):
    with ctx.unit_of_work() as session:
        item = service.present(session, [service.get(session, actor=me.person, ref=healthcheck_id)])[0]
        findings = service.findings(session, actor=me.person, ref=item.id)
        steps = life(me, session, service.history(session, actor=me.person, ref=item.id))
        can = {
            action: item.status in rules.TRANSITIONS[action][0] and access.allows(me.person, permission)
            for action, permission in ACTIONS.items()
        }
        engineers = service.engineers(session, actor=me.person) if can["reschedule"] else []
    grouped = [(severity, [f for f in findings if f.severity == severity]) for severity in SEVERITIES]
    return render(
        request,
        "healthcheck.html",
        viewer=me,
        status_code=status_code,
        item=item,
        steps=steps,
        findings=[(severity, rows) for severity, rows in grouped if rows],
        severities=FINDING_SEVERITIES,
        statuses=HEALTHCHECK_STATUSES,
        can=can,
        engineers=engineers,
        values=values or {},
        errors=errors or {},
    )


@router.get("/healthchecks/{healthcheck_id}", openapi_extra=needs("healthcheck.read"))
def healthcheck_page(
    request: Request, healthcheck_id: str, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)
):
    return _healthcheck_page(request, me, ctx, healthcheck_id)


@router.get("/healthchecks/{healthcheck_id}/report.{fmt}", openapi_extra=needs("healthcheck.read"))
def report_download(
    healthcheck_id: str, fmt: Literal["html", "pdf"], me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)
):
    """The report as a file to keep (a draft until it is delivered), in the customer's language."""
    with ctx.unit_of_work() as session:
        document = service.report_document(session, actor=me.person, ref=healthcheck_id, fmt=fmt, now=db_now(session))
    return download(document.content, filename=document.filename, media_type=document.content_type)


def _refused_input(
    request, me: Viewer, ctx: AppContext, healthcheck_id: str, exc: ValidationError, action: str, values
):
    """A form the schema refused (no reason, a reason too long, nothing to change): each message by its field."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = f"{action}_{error['loc'][0]}" if error["loc"] else f"{action}_date"  # the model's own rule
        if error["type"] == "string_too_long":
            typed = len(values.get(field, "").strip())
            text = _(me, MESSAGES["too_long"], limit=error["ctx"]["max_length"], count=typed)
        else:
            text = _(me, MESSAGES[field]) if field in MESSAGES else str(error["msg"])
        errors.setdefault(field, text)
    return _healthcheck_page(request, me, ctx, healthcheck_id, values=values, errors=errors, status_code=422)


def _act(request, me: Viewer, ctx: AppContext, healthcheck_id: str, action: str, *, values=None, build, apply, notice):
    """One form on a Health Check's page: what the schema (`build`) or the service (`apply(session, data, now)`)
    refuses → the page again, each message by the form it came from (a stale version also says so at the top)
    and what was typed (`values`) kept; done → back to the page (POST → 303 → GET) with `notice`."""
    try:
        data = build()
    except ValidationError as exc:
        return _refused_input(request, me, ctx, healthcheck_id, exc, action, values)
    try:
        with ctx.unit_of_work() as session:
            apply(session, data, db_now(session))
    except (InvalidInput, Conflict) as exc:
        errors = {"form": _(me, MESSAGES["stale"])} if isinstance(exc, StaleVersion) else {}
        about = f"{action}_{_field(exc)}" if action == "reschedule" and _field(exc) in ("date", "engineer") else action
        errors[about] = exc.message
        return _healthcheck_page(
            request, me, ctx, healthcheck_id, values=values, errors=errors, status_code=_status(exc)
        )
    return back_to(f"/healthchecks/{healthcheck_id}", notice)


def _button(action: str, step, *, notice: str):
    """The handler of a button that sends only the version the page showed (confirm, start): `step` is the
    service's function for it."""

    def handler(
        request: Request,
        healthcheck_id: str,
        version: Annotated[int | None, Form()] = None,
        me: Viewer = Depends(checked),
        ctx: AppContext = Depends(context),
    ):
        return _act(
            request,
            me,
            ctx,
            healthcheck_id,
            action,
            build=lambda: version,
            apply=lambda session, version, now: step(
                session, actor=me.person, ref=healthcheck_id, version=version, now=now
            ),
            notice=notice,
        )

    handler.__name__ = handler.__qualname__ = action
    return handler


confirm = router.post("/healthchecks/{healthcheck_id}/confirm", openapi_extra=needs("healthcheck.book"))(
    _button("confirm", service.confirm, notice="The date is confirmed.")
)
start = router.post("/healthchecks/{healthcheck_id}/start", openapi_extra=needs("healthcheck.conduct"))(
    _button("start", service.start, notice="The Health Check has started.")
)


@router.post("/healthchecks/{healthcheck_id}/cancel", openapi_extra=needs("healthcheck.book"))
def cancel(
    request: Request,
    healthcheck_id: str,
    version: Annotated[int | None, Form()] = None,
    reason: Annotated[str, Form(max_length=2000)] = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    return _act(
        request,
        me,
        ctx,
        healthcheck_id,
        "cancel",
        values={"cancel_reason": reason},
        build=lambda: CancelIn(reason=reason, version=version),
        apply=lambda session, data, now: service.cancel(
            session, actor=me.person, ref=healthcheck_id, data=data, now=now, config=ctx.config
        ),
        notice="The Health Check is cancelled.",
    )


@router.post("/healthchecks/{healthcheck_id}/reschedule", openapi_extra=needs("healthcheck.book"))
def reschedule(
    request: Request,
    healthcheck_id: str,
    version: Annotated[int | None, Form()] = None,
    day: Annotated[str, Form(alias="date", max_length=20)] = "",
    engineer: Annotated[str, Form(max_length=254)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    return _act(
        request,
        me,
        ctx,
        healthcheck_id,
        "reschedule",
        values={"reschedule_date": day, "reschedule_engineer": engineer, "reschedule_reason": reason},
        build=lambda: RescheduleIn(date=day or None, engineer=engineer or None, reason=reason, version=version),
        apply=lambda session, data, now: service.reschedule(
            session, actor=me.person, ref=healthcheck_id, data=data, now=now, config=ctx.config
        ),
        notice="The Health Check is rescheduled.",
    )
