"""The request page, for staff and for the customer: details, samples, the timeline as a story, and the
decisions the reader may take on it — the same services and rules as /api/v1/requests.

A control is shown when the permission table allows it and the request's state admits it; the service still
decides. A form whose input is wrong is shown again with the message next to it and the words kept; any
other refusal (a stale version, an illegal transition) is an error page. Another customer's request is the
404 page (the services raise NotFound for it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import FileResponse
from pydantic import ValidationError

from release_requests import access, errors
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.notifications import service as notifications
from release_requests.notifications.schemas import NotificationFilters
from release_requests.paging import service as paging
from release_requests.people.service import display_name
from release_requests.requests import lifecycle, presentation, samples, service
from release_requests.requests.schemas import (
    Accept,
    Answer,
    Assign,
    Cancel,
    Duplicate,
    NeedsInfo,
    Reject,
    Respond,
    SeverityChange,
)
from release_requests.requests.states import OPEN_STATES, Status
from release_requests.samples.store import verified_sample_path
from release_requests.web import page_panel, story
from release_requests.web.i18n import translate
from release_requests.web.rendering import local_time, render
from release_requests.web.session import Viewer, back_to, checked, viewer, web_router
from release_requests.workflows import intake

router = web_router()

# From accepted on, the request has a pipeline (a duplicate follows its primary's): the panel loads itself.
PIPELINE_STATES = frozenset(Status) - {Status.submitted, Status.needs_info, Status.rejected, Status.cancelled}

Text = Annotated[str, Form(max_length=20000)]
Short = Annotated[str, Form(max_length=254)]  # an e-mail address or a request id
Version = Annotated[int | None, Form()]


def _controls(me: Viewer, shown) -> dict[str, bool]:
    """Which forms to show: the table allows the reader, and the request's state admits the step."""
    person, status, allowed = me.person, shown.status, set(shown.allowed_transitions)
    triage = access.allows(person, "request.triage") and status == Status.submitted
    is_open = status in OPEN_STATES
    return {
        "accept": triage and Status.accepted in allowed,
        "reject": triage and Status.rejected in allowed,
        "needs_info": triage and Status.needs_info in allowed,
        "duplicate": triage and Status.duplicate in allowed,
        "respond": access.allows(person, "request.respond") and is_open,
        "severity": access.allows(person, "request.change_severity") and is_open,
        "assign": access.allows(person, "request.assign") and is_open,
        "answer": access.allows(person, "request.answer") and status == Status.needs_info,
        "cancel": access.allows(person, "request.cancel") and Status.cancelled in allowed,
        "download": access.allows(person, "vendor.staff") and access.allows(person, "sample.fetch"),
        "staff": access.allows(person, "vendor.staff"),
    }


def _open_question(entries) -> str | None:
    asked = [e for e in entries if e.action == "request.needs_info"]
    return (asked[-1].after or {}).get("question") if asked else None


def _page(
    request: Request,
    me: Viewer,
    ctx: AppContext,
    request_id: str,
    *,
    status_code: int = 200,
    errors_: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
):
    with ctx.unit_of_work() as session:
        found = lifecycle.read(session, actor=me.person, request_id=request_id)
        shown = presentation.present(session, requests=[found], config=ctx.config, viewer=me.person)[0]
        entries = presentation.request_timeline(session, actor=me.person, request_id=found.id)
        can = _controls(me, shown)
        paged = page_panel.panel(session, reader=me.person, request_id=found.id)
        people, outbox = {}, {}
        if can["staff"]:
            people = {pid: display_name(session, pid) for pid in story.person_ids(entries)}
        if access.allows(me.person, "notification.read"):
            rows = notifications.list_notifications(
                session, actor=me.person, filters=NotificationFilters(request_id=found.id, limit=1000)
            )
            outbox = {row.id: row.status for row in rows}

    def _(text: str, **params: object) -> str:
        return translate(me.language, text, **params)

    lines = story.tell(entries, _=_, staff=can["staff"], people=people, outbox=outbox)
    severity = ctx.config.severity
    return render(
        request,
        "request.html",
        viewer=me,
        status_code=status_code,
        item=shown,
        lines=lines,
        can=can,
        severity_label=severity.label(shown.severity, me.language),
        severities=[(n, severity.label(n, me.language)) for n in range(1, 5)],
        intake_channel=story.INTAKE.get(shown.channel, shown.channel),
        question=_open_question(entries),
        show_pipeline=shown.status in PIPELINE_STATES,
        paging=paged,
        errors=errors_ or {},
        values=values or {},
    )


@router.get("/requests/{request_id}", openapi_extra=needs("request.read"))
def request_page(request: Request, request_id: str, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)):
    return _page(request, me, ctx, request_id)


@router.get("/requests/{request_id}/samples/{sha256}", openapi_extra=needs("sample.fetch"))
def download_sample(request_id: str, sha256: str, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)):
    """The sample's bytes as a download (never shown, never its original name), like the API's — for staff only
    here: a customer's browser has no business fetching a file flagged as malware."""
    access.authorize(me.person, "vendor.staff")
    with ctx.unit_of_work() as session:
        sample = samples.find_sample(session, actor=me.person, request_id=request_id, sha256=sha256)
    path = verified_sample_path(ctx.samples_dir, sample.sha256)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{sample.sha256}.sample",  # no .exe lands on a desktop
        headers={"X-Content-Type-Options": "nosniff", "X-Sample-SHA256": sample.sha256},
    )


# --------------------------------------------------------------------------------------------------
# Decisions: POST → 303 → the page with a notice; a wrong input → the page again with the message


def _again(request, me, ctx, request_id, form: str, message: str, values: dict[str, str]):
    return _page(request, me, ctx, request_id, status_code=422, errors_={form: message}, values=values)


def _invalid(exc: ValidationError) -> str:
    return "; ".join(str(e["msg"]) for e in exc.errors())


@router.post("/requests/{request_id}/triage", openapi_extra=needs("request.triage"))
def triage(
    request: Request,
    request_id: str,
    decision: Short = "",
    note: Text = "",
    assignee: Short = "",
    reason: Text = "",
    question: Text = "",
    duplicate_of: Short = "",
    version: Version = None,
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    duplicate_of = duplicate_of.strip().upper()
    values = {"note": note, "assignee": assignee, "reason": reason, "question": question, "duplicate_of": duplicate_of}
    values = {f"{decision}_{k}": v for k, v in values.items()}
    _ = lambda text: translate(me.language, text)  # noqa: E731 - messages in the reader's language
    missing = {
        "reject": not reason.strip() and _("Give the reason for rejecting it."),
        "needs_info": not question.strip() and _("Write the question for the customer."),
        "duplicate": (not duplicate_of.strip() and _("Give the id of the request it duplicates."))
        or (not reason.strip() and _("Give the reason: why is it the same problem?")),
    }.get(decision)
    if missing:
        return _again(request, me, ctx, request_id, decision, missing, values)
    try:
        match decision:
            case "accept":
                body = Accept(decision="accept", note=note or None, assignee=assignee or None, version=version)
            case "reject":
                body = Reject(decision="reject", reason=reason, version=version)
            case "needs_info":
                body = NeedsInfo(decision="needs_info", question=question, version=version)
            case "duplicate":
                body = Duplicate(decision="duplicate", duplicate_of=duplicate_of, reason=reason, version=version)
            case _unknown:
                raise errors.InvalidInput(f"unknown decision '{decision}'", field="decision")
    except ValidationError as exc:
        message = _invalid(exc)
        if decision == "duplicate" and "duplicate_of" in str(exc):
            message = _("Give the id of the request it duplicates, e.g. RR-2026-000123.")
        return _again(request, me, ctx, request_id, decision, message, values)
    try:
        with ctx.unit_of_work() as session:
            intake.triage(session, actor=me.person, request_id=request_id, decision=body, config=ctx.config)
    except errors.InvalidInput as exc:
        return _again(request, me, ctx, request_id, decision, exc.message, values)
    return back_to(f"/requests/{request_id}", "Decision recorded.")


def _decide(
    request, me: Viewer, ctx: AppContext, request_id: str, form: str, values: dict, *, missing, build, apply, notice
):
    """One decision form: a required field left empty (`missing`: its message) or a value the schema or the service
    refuses → the page again, the message next to the form and everything typed kept; done → back to the page
    (POST → 303 → GET) with `notice`."""
    if missing:
        return _again(request, me, ctx, request_id, form, translate(me.language, missing), values)
    try:
        data = build()
    except ValidationError as exc:
        return _again(request, me, ctx, request_id, form, _invalid(exc), values)
    try:
        with ctx.unit_of_work() as session:
            apply(session, data)
    except errors.InvalidInput as exc:
        return _again(request, me, ctx, request_id, form, exc.message, values)
    return back_to(f"/requests/{request_id}", notice)


@router.post("/requests/{request_id}/respond", openapi_extra=needs("request.respond"))
def respond(
    request: Request,
    request_id: str,
    message: Text = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    return _decide(
        request,
        me,
        ctx,
        request_id,
        "respond",
        {"respond_message": message},
        missing=not message.strip() and "Write the answer for the customer.",
        build=lambda: Respond(message=message),
        apply=lambda session, data: service.respond(
            session, actor=me.person, request_id=request_id, data=data, config=ctx.config
        ),
        notice="Response sent.",
    )


@router.post("/requests/{request_id}/severity", openapi_extra=needs("request.change_severity"))
def change_severity(
    request: Request,
    request_id: str,
    severity: Annotated[int, Form(ge=1, le=4)],
    reason: Text = "",
    version: Version = None,
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    return _decide(
        request,
        me,
        ctx,
        request_id,
        "severity",
        {"severity_reason": reason, "severity_value": str(severity)},
        missing=not reason.strip() and "Give the reason for the new severity.",
        build=lambda: SeverityChange(severity=severity, reason=reason, version=version),
        apply=lambda session, data: service.change_severity(session, actor=me.person, request_id=request_id, data=data),
        notice="Severity changed.",
    )


@router.post("/requests/{request_id}/assignee", openapi_extra=needs("request.assign"))
def assign(
    request: Request,
    request_id: str,
    assignee: Short = "",
    version: Version = None,
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    return _decide(
        request,
        me,
        ctx,
        request_id,
        "assign",
        {"assign_assignee": assignee},
        missing=not assignee.strip() and "Give the engineer's e-mail or id.",
        build=lambda: Assign(assignee=assignee, version=version),
        apply=lambda session, data: service.assign(session, actor=me.person, request_id=request_id, data=data),
        notice="Assigned.",
    )


@router.post("/requests/{request_id}/answer", openapi_extra=needs("request.answer"))
def answer(
    request: Request,
    request_id: str,
    message: Text = "",
    version: Version = None,
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    return _decide(
        request,
        me,
        ctx,
        request_id,
        "answer",
        {"answer_message": message},
        missing=not message.strip() and "Write your answer to the question.",
        build=lambda: Answer(message=message, version=version),
        apply=lambda session, data: service.answer(session, actor=me.person, request_id=request_id, data=data),
        notice="Answer sent.",
    )


@router.post("/requests/{request_id}/cancel", openapi_extra=needs("request.cancel"))
def cancel(
    request: Request,
    request_id: str,
    reason: Text = "",
    version: Version = None,
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    return _decide(
        request,
        me,
        ctx,
        request_id,
        "cancel",
        {"cancel_reason": reason},
        missing=not reason.strip() and "Give the reason for cancelling it.",
        build=lambda: Cancel(reason=reason, version=version),
        apply=lambda session, data: service.cancel(session, actor=me.person, request_id=request_id, data=data),
        notice="Request cancelled.",
    )


@router.post("/requests/{request_id}/page/acknowledge", openapi_extra=needs("page.acknowledge"))
def acknowledge_page(
    request: Request, request_id: str, me: Viewer = Depends(checked), ctx: AppContext = Depends(context)
):
    """Take the request's page from the console: the escalation stops (not the SLA clock). Somebody was quicker
    (or it was answered meanwhile): the page again, 409, saying who took it and when, beside the panel."""
    try:
        with ctx.unit_of_work() as session:
            paging.acknowledge(session, actor=me.person, request_id=request_id, via="web", config=ctx.config)
    except errors.Conflict as exc:
        return _page(request, me, ctx, request_id, status_code=409, errors_={"page": _taken(me, exc)})
    return back_to(f"/requests/{request_id}", "Page acknowledged: nobody else is paged. The SLA clock runs on.")


def _taken(me: Viewer, exc: errors.Conflict) -> str:
    """Who was quicker, and when in the reader's own zone (the service says it in UTC, for logs and scripts)."""
    by, at = exc.details.get("acknowledged_by"), exc.details.get("acknowledged_at")
    if not at:
        return exc.message  # resolved meanwhile: the service's words
    moment = local_time(datetime.fromisoformat(at), me.zone, language=me.language)
    return translate(me.language, "Already acknowledged by {who} at {when}.", who=by or "?", when=moment)
