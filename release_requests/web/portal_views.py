"""The customer portal: a customer's requests, filing a new one (with sample files or hashes), the page that
confirms it with the time a qualified answer is due, and the notification and language settings.

Thin like the API's handlers: the same services decide, with the person signed in as the actor. Staff may use
these pages too (filing for a customer over the phone, a customer's settings), within what they may see.

Each new-request form carries its own `submission_key` (made when the form is first shown, kept when it is
shown again after a refusal): the same form sent twice — a double click without JavaScript, a retry after a
connection lost once the server had filed it — files one request, and the second sending goes to that
request's filed page. Sample files sent with such a repeat are ignored (the first sending's are the request's).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from release_requests import access
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.config import AppConfig
from release_requests.customers.models import Customer
from release_requests.customers.service import customers_for
from release_requests.errors import InvalidInput, PayloadTooLarge
from release_requests.notifications import preferences as notification_preferences
from release_requests.notifications.schemas import PreferencesIn
from release_requests.people.models import Person
from release_requests.people.service import set_language
from release_requests.requests import lifecycle, presentation
from release_requests.requests.schemas import SUBMISSION_KEY_PATTERN, RequestFilters, SubmitRequest, TimelineEntry
from release_requests.samples.names import safe_filename
from release_requests.web import story
from release_requests.web.i18n import translate
from release_requests.web.rendering import local_time, render
from release_requests.web.session import Viewer, back_to, checked, choose_customer, viewer, web_router
from release_requests.workflows import intake

router = web_router()

PAGE_SIZE = 50

# --------------------------------------------------------------------------------------------------
# Words the views put on pages (translated in translations/portal.toml; tests/web/test_portal.py checks)

SEVERITY_MEANINGS = {
    1: "A production system or many users are blocked, or an active attack is not detected.",
    2: "An important application or a group of users is affected and there is no workaround.",
    3: "Limited impact, or a workaround exists.",
    4: "A question, or a problem without business impact.",
}
TIERS = {"enterprise": "Enterprise", "standard": "Standard"}
CLOCKS = {
    "24x7": "qualified answer within {time}, 24×7",
    "business": "qualified answer within {time} of business hours",
}
UNITS = ("{minutes} min", "{hours} h", "{hours} h {minutes} min")
MESSAGES = {
    "title_missing": "Enter a title.",
    "too_long": "Use at most {limit} characters; this has {count}.",
    "kind": "Choose the kind of request.",
    "severity": "Choose a severity.",
    "customer": "Choose the customer this request is for.",
    "caller_name": "Enter who called.",
    "callback_number": "Enter a number to call back: digits, spaces, ( ) - . and an optional + or extension.",
    "received_at": "Enter when the call came in, e.g. 2026-11-29 02:10.",
    "received_at_range": "The call must have come in before now and within the last {hours} hours.",
    "hash": "Line {line} is not a SHA-256 hash (64 hexadecimal characters).",
    "too_many": "At most {limit} samples per request; this has {count}.",
    "too_large": "{name} is larger than the limit of {limit}; nothing was filed.",
    "sample": "{name}: {problem}",
    "email": "Line {line} is not an e-mail address.",
    "recipients": "At most {limit} recipients; this has {count}.",
    "quiet_both": "Give both the start and the end of the quiet hours, or neither.",
    "quiet_same": "Quiet hours must start and end at different times.",
    "quiet_format": "Write the times as HH:MM, e.g. 22:00.",
    "language": "Choose a language from the list.",
}
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}


def _(me: Viewer, text: str, **params: object) -> str:
    return translate(me.language, text, **params)


# --------------------------------------------------------------------------------------------------
# My requests


def latest_step(me: Viewer, entries: list[TimelineEntry]) -> story.Line | None:
    """The last step of the request's timeline (the customer-safe one for customers), told as the request
    page tells it; the notices a step sent are part of that step, not steps of their own."""
    lines = story.tell(entries, _=lambda text, **params: _(me, text, **params), staff=me.staff)
    return lines[-1] if lines else None


@router.get("/my/requests", openapi_extra=needs("request.read"))
def my_requests(
    request: Request,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    me: Viewer = Depends(viewer),
    ctx: AppContext = Depends(context),
):
    with ctx.unit_of_work() as session:
        filters = RequestFilters(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        rows, total = presentation.list_requests(session, actor=me.person, filters=filters)
        items = presentation.present(session, requests=rows, config=ctx.config, viewer=me.person)
        steps = {  # only for the rows of this page
            item.id: latest_step(me, presentation.request_timeline(session, actor=me.person, request_id=item.id))
            for item in items
        }
    return render(
        request,
        "my_requests.html",
        viewer=me,
        items=items,
        steps=steps,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        total=total,
        can_file=access.allows(me.person, "request.file"),
    )


# --------------------------------------------------------------------------------------------------
# New request


FIELDS = ("customer_id", "kind", "severity", "title", "description", "product", "product_version", "detection_name")
CALL_FIELDS = ("intake", "caller_name", "callback_number", "received_at")  # staff logging a phone call


def _max_length(field: str) -> int | None:
    """A field's length limit, as SubmitRequest declares it (the form's hints say the same number)."""
    for rule in SubmitRequest.model_fields[field].metadata:
        if getattr(rule, "max_length", None) is not None:
            return rule.max_length
    return None


LIMITS = {name: _max_length(name) for name in ("title", "description", "product", "product_version", "detection_name")}


def _duration(me: Viewer, minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return _(me, UNITS[2], hours=hours, minutes=rest)
    if hours:
        return _(me, UNITS[1], hours=hours)
    return _(me, UNITS[0], minutes=rest)


def _size(limit: int) -> str:
    return f"{limit / 1048576:g} MB" if limit >= 1048576 else f"{limit // 1024} KB"


@dataclass(frozen=True)
class SeverityChoice:
    value: int
    label: str
    response: str
    meaning: str


def severity_choices(me: Viewer, config: AppConfig, tiers: list[str]) -> list[SeverityChoice]:
    """Each level with its meaning and the response time the customer's tier gets (config/severity.toml);
    staff filing for customers of several tiers see each tier's."""
    choices = []
    for level in (1, 2, 3, 4):
        per_tier = {tier: config.severity.for_request(severity=level, tier=tier) for tier in tiers}
        phrases = {
            tier: _(me, CLOCKS[policy.clock], time=_duration(me, policy.response_minutes))
            for tier, policy in per_tier.items()
        }
        if len(set(phrases.values())) == 1:
            response = next(iter(phrases.values()))
        else:
            response = "; ".join(f"{_(me, TIERS[tier])}: {phrase}" for tier, phrase in phrases.items())
        choices.append(
            SeverityChoice(
                value=level,
                label=config.severity.label(level, me.language),
                response=response,
                meaning=_(me, SEVERITY_MEANINGS[level]),
            )
        )
    return choices


_SUBMISSION_KEY = re.compile(SUBMISSION_KEY_PATTERN)


def new_submission_key() -> str:
    """A new form's key (22 URL-safe characters): sending the form twice files one request."""
    return secrets.token_urlsafe(16)


def _new_request_page(
    request: Request,
    me: Viewer,
    ctx: AppContext,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
):
    if not _SUBMISSION_KEY.fullmatch(values.get("submission_key", "")):  # a new form, or one without a usable key
        values = {**values, "submission_key": new_submission_key()}
    with ctx.unit_of_work() as session:
        customers = customers_for(session, actor=me.person)
        member = access.allows(me.person, "customer.member")
        shown = [c for c in customers if c.id == values.get("customer_id")] or customers
        tiers = sorted({c.tier for c in shown}) or sorted(TIERS)
        products = sorted({grant["product"] for c in shown for grant in (c.licensed_products or [])})
        choices = severity_choices(me, ctx.config, tiers)
        customer_options = [(c.id, c.name) for c in customers]
        # a customer's business clock is their own; staff choose among customers with different ones
        hours = (shown[0].business_hours, shown[0].timezone) if len(shown) == 1 else None
    return render(
        request,
        "new_request.html",
        viewer=me,
        status_code=status_code,
        values=values,
        errors=errors,
        severities=choices,
        show_customer=not member,
        customers=customer_options,
        products=products,
        business_hours=hours,
        max_bytes=_size(ctx.config.intake.samples.max_bytes),
        max_files=ctx.config.intake.samples.max_per_request,
        limits=LIMITS,
    )


@router.get("/requests/new", openapi_extra=needs("request.file"))
def new_request_form(
    request: Request,
    customer_id: Annotated[str | None, Query(max_length=40)] = None,
    me: Viewer = Depends(viewer),
    ctx: AppContext = Depends(context),
):
    access.authorize(me.person, "request.file")  # the table's answer as a page, before anyone types anything
    values = {name: "" for name in (*FIELDS, *CALL_FIELDS, "sample_sha256")} | {"kind": "false_positive"}
    values["customer_id"] = customer_id or ""
    values["submission_key"] = new_submission_key()
    return _new_request_page(request, me, ctx, values=values, errors={})


def _hash_lines(text: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def _form_errors(me: Viewer, exc: ValidationError, values: dict[str, str], hashes: list[tuple[int, str]]):
    """SubmitRequest's complaints, one clear message per field in the reader's language."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        if field in errors:
            continue
        kind = error["type"]
        if field == "sample_sha256":
            index = error["loc"][1] if len(error["loc"]) > 1 else 0
            line = hashes[index][0] if isinstance(index, int) and index < len(hashes) else 1
            errors[field] = _(me, MESSAGES["hash"], line=line)
        elif kind == "string_too_long":
            limit = error.get("ctx", {}).get("max_length", LIMITS.get(field, 0))
            errors[field] = _(me, MESSAGES["too_long"], limit=limit, count=len(values.get(field, "").strip()))
        elif field == "title":
            errors[field] = _(me, MESSAGES["title_missing"])
        elif field in ("kind", "severity"):
            errors[field] = _(me, MESSAGES[field])
        elif field in ("customer_id", "caller_name", "callback_number"):
            errors[field] = _(me, MESSAGES["customer" if field == "customer_id" else field])
        else:
            errors.setdefault("form", str(error["msg"]))
    return errors


def _text(form: FormData, name: str) -> str:
    """A text field as typed: browsers send a textarea's line breaks as CRLF, the API stores LF."""
    value = form.get(name)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def _uploads(form: FormData) -> list[UploadFile]:
    """The files chosen (an empty file input still sends a part without a name: not a file)."""
    return [item for item in form.getlist("files") if isinstance(item, UploadFile) and item.filename]


@router.post("/requests/new", openapi_extra=needs("request.file"))
async def file_request(request: Request, me: Viewer = Depends(checked), ctx: AppContext = Depends(context)):
    form = await request.form()  # already read (and limited) by the CSRF check
    return await run_in_threadpool(_file_request, request, form, me, ctx)


def _call_received_at(me: Viewer, text: str) -> datetime | None:
    """The form's "call came in at": a date and time in the viewer's own zone, as the page says (an offset
    typed with it is kept). ValueError when it is not a date and time, or names a wall-clock time the zone
    skips (a spring-forward hour)."""
    if not text.strip():
        return None
    typed = datetime.fromisoformat(text.strip())
    if typed.tzinfo is not None:
        return typed
    local = typed.replace(tzinfo=me.zone)
    if local.astimezone(UTC).astimezone(me.zone).replace(tzinfo=None) != typed:
        raise ValueError(f"{typed} does not exist in {me.zone.key}")
    return local


def _file_request(request: Request, form: FormData, me: Viewer, ctx: AppContext):
    member = access.allows(me.person, "customer.member")
    values = {name: _text(form, name) for name in (*FIELDS, *CALL_FIELDS, "sample_sha256", "submission_key")}
    if member:
        values["customer_id"] = ""  # a customer files for their own company, whatever the form says
    phone = not member and values["intake"] == "phone"  # staff logging a call; otherwise filed for the customer
    hashes = _hash_lines(values["sample_sha256"])
    uploads = _uploads(form)
    values["files_chosen"] = "1" if uploads else ""
    call: dict = {}
    if phone:
        try:
            call["received_at"] = _call_received_at(me, values["received_at"])
        except ValueError:
            return _refused(request, me, ctx, values, {"received_at": _(me, MESSAGES["received_at"])})
        for name in ("caller_name", "callback_number"):
            if not values[name].strip():  # the API lets old clients leave them out; the console asks for them
                return _refused(request, me, ctx, values, {name: _(me, MESSAGES[name])})
            call[name] = values[name].strip()
    try:
        data = SubmitRequest(
            customer_id=values["customer_id"] or None,
            kind=values["kind"] or None,
            severity=values["severity"] or None,
            channel="portal" if member else ("phone" if phone else "tam"),
            **call,
            title=values["title"],
            description=values["description"],
            product=values["product"].strip() or None,
            product_version=values["product_version"].strip() or None,
            detection_name=values["detection_name"].strip() or None,
            sample_sha256=[text for _number, text in hashes],
            submission_key=values["submission_key"].strip() or None,  # a form without one files without one
        )
    except ValidationError as exc:
        return _refused(request, me, ctx, values, _form_errors(me, exc, values, hashes))
    if not member and not data.customer_id:
        return _refused(request, me, ctx, values, {"customer_id": _(me, MESSAGES["customer"])})
    limit = ctx.config.intake.samples.max_per_request
    if len(uploads) + len(hashes) > limit:
        errors = {"files": _(me, MESSAGES["too_many"], limit=limit, count=len(uploads) + len(hashes))}
        return _refused(request, me, ctx, values, errors)
    current = None
    try:
        with ctx.unit_of_work() as session:  # the request and every sample, or nothing
            submission = intake.file_request(session, actor=me.person, data=data, config=ctx.config)
            filed = submission.request
            # this form was filed already (sent twice): its filed page, with the first sending's samples
            for upload in [] if submission.replayed else uploads:
                current = safe_filename(upload.filename)
                intake.add_sample(
                    session,
                    actor=me.person,
                    request_id=filed.id,
                    config=ctx.config,
                    samples_dir=ctx.samples_dir,
                    stream=upload.file,
                    filename=current,
                    declared_sha256=None,
                )
            request_id = filed.id
    except InvalidInput as exc:
        if exc.field == "submission_key":  # a key that cannot be used again: the form gets a new one
            values["submission_key"] = ""
        return _refused(request, me, ctx, values, _service_errors(me, ctx, exc, current))
    return back_to(f"/requests/{request_id}/filed")


def _service_errors(me: Viewer, ctx: AppContext, exc: InvalidInput, sample: str | None) -> dict[str, str]:
    if exc.field == "customer_id":
        return {"customer_id": _(me, MESSAGES["customer"])}
    if exc.field == "received_at":
        hours = ctx.config.intake.requests.max_backdate_hours
        return {"received_at": _(me, MESSAGES["received_at_range"], hours=hours)}
    if sample is not None and exc.field in ("file", "sha256"):
        if isinstance(exc, PayloadTooLarge):
            return {
                "files": _(me, MESSAGES["too_large"], name=sample, limit=_size(ctx.config.intake.samples.max_bytes))
            }
        return {"files": _(me, MESSAGES["sample"], name=sample, problem=exc.message)}
    return {"form": exc.message}


def _refused(request: Request, me: Viewer, ctx: AppContext, values: dict[str, str], errors: dict[str, str]):
    """The form again with everything typed kept and each message next to its field (files must be chosen
    again: no browser lets a page fill a file input)."""
    return _new_request_page(request, me, ctx, values=values, errors=errors, status_code=422)


@router.get("/requests/{request_id}/filed", openapi_extra=needs("request.read"))
def request_filed(request: Request, request_id: str, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        filed = lifecycle.read(session, actor=me.person, request_id=request_id)
        item = presentation.present(session, requests=[filed], config=ctx.config, viewer=me.person)[0]
        customer = session.get(Customer, item.customer_id)
    due = item.sla.due_at if item.sla else None
    customer_zone = ZoneInfo(customer.timezone) if customer and customer.timezone else me.zone
    return render(
        request,
        "request_filed.html",
        viewer=me,
        item=item,
        severity_label=ctx.config.severity.label(item.severity, me.language),
        due=due,
        target=_duration(me, item.sla.target_minutes) if item.sla else None,
        clock=item.sla.clock if item.sla else None,
        # staff reading in another zone also see the customer's own clock time
        customer_time=local_time(due, customer_zone, language=me.language)
        if due and customer_zone.key != me.zone.key
        else None,
        customer_zone=customer_zone.key,
    )


# --------------------------------------------------------------------------------------------------
# Notification settings and the display language


def _back_to_settings(me: Viewer, notice: str, customer_id: str | None):
    """The settings page again; staff come back to the customer they picked (`?customer_id=`)."""
    if customer_id and not access.allows(me.person, "customer.member"):
        return back_to(f"/preferences?customer_id={quote(customer_id, safe='')}", notice)
    return back_to("/preferences", notice)


def _settings_page(
    request: Request,
    me: Viewer,
    ctx: AppContext,
    *,
    customer_id: str | None,
    form: dict | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
):
    with ctx.unit_of_work() as session:
        chosen = choose_customer(session, me, customer_id)
        prefs = (
            notification_preferences.get_preferences(session, actor=me.person, customer_id=chosen.customer.id)
            if chosen.customer
            else None
        )
        person = session.get(Person, me.person.id)
        own_language = person.language if person else None
    if form is None and prefs is not None:
        start, _sep, end = (prefs.quiet_hours or "").partition("-")
        form = {
            "slack_enabled": prefs.slack_enabled,
            "email_enabled": prefs.email_enabled,
            "email_recipients": "\n".join(prefs.email_recipients),
            "quiet_from": start,
            "quiet_until": end,
            "language": prefs.language or "",
        }
    held_back = ctx.config.notifications.quiet_hours.severities
    return render(
        request,
        "preferences.html",
        viewer=me,
        status_code=status_code,
        **chosen.for_page(),
        prefs=prefs,
        form=form or {},
        errors=errors or {},
        can_change=access.allows(me.person, "preferences.change") and prefs is not None,
        held_back=", ".join(str(s) for s in held_back),
        own_language=own_language or "",
        languages=LANGUAGE_NAMES,
    )


@router.get("/preferences", openapi_extra=needs("preferences.read"))
def settings(
    request: Request,
    customer_id: Annotated[str | None, Query(max_length=40)] = None,
    me: Viewer = Depends(viewer),
    ctx: AppContext = Depends(context),
):
    return _settings_page(request, me, ctx, customer_id=customer_id)


def _preferences_errors(me: Viewer, exc: ValidationError, form: dict) -> dict[str, str]:
    errors: dict[str, str] = {}
    lines = [line.strip() for line in form["email_recipients"].splitlines() if line.strip()]
    numbers = [n for n, line in enumerate(form["email_recipients"].splitlines(), 1) if line.strip()]
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        if field == "email_recipients" and field not in errors:
            index = error["loc"][1] if len(error["loc"]) > 1 else None
            if isinstance(index, int) and index < len(lines):
                errors[field] = _(me, MESSAGES["email"], line=numbers[index])
            else:  # the list as a whole: too many
                limit = error.get("ctx", {}).get("max_length", "?")
                errors[field] = _(me, MESSAGES["recipients"], limit=limit, count=len(lines))
        elif field == "quiet_hours" and "quiet_from" not in errors:
            wrong_format = error["type"] == "string_pattern_mismatch"
            errors["quiet_from"] = _(me, MESSAGES["quiet_format" if wrong_format else "quiet_same"])
        elif field == "language":
            errors[field] = _(me, MESSAGES["language"])
        else:
            errors.setdefault("form", str(error["msg"]))
    return errors


@router.post("/preferences", openapi_extra=needs("preferences.change"))
async def change_settings(request: Request, me: Viewer = Depends(checked), ctx: AppContext = Depends(context)):
    form = await request.form()
    return await run_in_threadpool(_change_settings, request, form, me, ctx)


def _change_settings(request: Request, posted: FormData, me: Viewer, ctx: AppContext):
    customer_id = str(posted.get("customer_id") or "") or None
    form = {
        "slack_enabled": posted.get("slack_enabled") == "on",
        "email_enabled": posted.get("email_enabled") == "on",
        "email_recipients": _text(posted, "email_recipients"),
        "quiet_from": str(posted.get("quiet_from") or "").strip(),
        "quiet_until": str(posted.get("quiet_until") or "").strip(),
        "language": str(posted.get("language") or ""),
    }

    def again(errors: dict[str, str]):
        return _settings_page(
            request,
            me,
            ctx,
            customer_id=customer_id,
            form=form,
            errors=errors,
            status_code=422,
        )

    if bool(form["quiet_from"]) != bool(form["quiet_until"]):
        return again({"quiet_from": _(me, MESSAGES["quiet_both"])})
    try:
        data = PreferencesIn(
            slack_enabled=form["slack_enabled"],
            email_enabled=form["email_enabled"],
            email_recipients=[line.strip() for line in form["email_recipients"].splitlines() if line.strip()],
            language=form["language"] or None,
            quiet_hours=f"{form['quiet_from']}-{form['quiet_until']}" if form["quiet_from"] else None,
        )
    except ValidationError as exc:
        return again(_preferences_errors(me, exc, form))
    if customer_id is None:
        return again({"form": _(me, MESSAGES["customer"])})
    with ctx.unit_of_work() as session:
        notification_preferences.set_preferences(session, actor=me.person, customer_id=customer_id, data=data)
    return _back_to_settings(me, "Notification settings saved.", customer_id)


@router.post("/preferences/language", openapi_extra=needs("profile.change"))
async def change_language(request: Request, me: Viewer = Depends(checked), ctx: AppContext = Depends(context)):
    form = await request.form()
    return await run_in_threadpool(_change_language, request, form, me, ctx)


def _change_language(request: Request, posted: FormData, me: Viewer, ctx: AppContext):
    language = str(posted.get("display_language") or "") or None
    customer_id = str(posted.get("customer_id") or "") or None
    if language is not None and language not in LANGUAGE_NAMES:
        return _settings_page(
            request,
            me,
            ctx,
            customer_id=customer_id,
            errors={"display_language": _(me, MESSAGES["language"])},
            status_code=422,
        )
    with ctx.unit_of_work() as session:
        person = session.get(Person, me.person.id)
        set_language(session, actor=person, person=person, language=language)
    return _back_to_settings(me, "Display language saved.", customer_id)
