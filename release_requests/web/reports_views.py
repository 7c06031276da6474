"""Reports in the console and the portal: a customer's report for a quarter or any run of days, its downloads
(PDF, CSV, HTML), today's critical digest, the TAM's notes, the report settings and the reader's own digest.

Thin like the API's handlers: `reports.service` computes the figures and decides who may read which report
(another customer's is a 404 page), `reports.preferences` who may change what. The page shows the report with
the console's own templates, not `reports.rendering.report_html`: that page is made for e-mail, with inline
styles the console's Content-Security-Policy refuses. Only the downloaded HTML file is that page, served with a
policy of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from markupsafe import Markup
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from release_requests import access
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.clock import db_now
from release_requests.errors import InvalidInput
from release_requests.reports import charts, periods, preferences, rendering, service
from release_requests.reports.models import REPORT_SECTIONS
from release_requests.reports.schemas import DigestSubscriptionIn, NoteIn, Period, ReportPreferencesIn
from release_requests.web.healthchecks_views import HEALTHCHECK_STATUSES
from release_requests.web.i18n import translate
from release_requests.web.rendering import download, render
from release_requests.web.session import Viewer, back_to, checked, choose_customer, viewer, web_router

router = web_router()

QUARTERS_BEFORE = 8  # the quarter select: the current quarter and this many before it

# Words the views put on pages (translated in translations/reports.toml)
SECTIONS = {
    "summary": "Summary",
    "sla": "SLA attainment",
    "response_times": "First response times",
    "breaches": "SLA breaches",
    "releases": "Releases delivered",
    "healthcheck": "Health Checks",
    "notes": "Notes from the TAM",
}
FREQUENCIES = {"weekly": "Weekly", "monthly": "Monthly", "quarterly": "Quarterly", "none": "No regular report"}
FORMATS = {"pdf": "PDF", "html": "HTML", "csv": "CSV"}
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}
MESSAGES = {
    "date": "{field}: write the date as YYYY-MM-DD, e.g. 2026-10-01.",
    "note_empty": "Write the note before adding it.",
    "too_long": "Use at most {limit} characters; this has {count}.",
    "email": "Line {line} is not an e-mail address.",
    "recipients": "At most {limit} recipients; this has {count}.",
    "sections": "Choose at least one section.",
    "digest_at": "Daily digest time: write it as HH:MM, e.g. 09:00.",
    "send_at": "My digest time: write it as HH:MM, e.g. 09:00.",
    "choice": "Choose one of the values offered.",
}
DATE_FIELDS = {"from": "From", "to": "To"}
# the HTML download is the e-mail's page, whose styles are inline: allowed in that file alone, nothing else
MEDIA_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}


def _(me: Viewer, text: str, **params: object) -> str:
    return translate(me.language, text, **params)


# --------------------------------------------------------------------------------------------------
# The period a reader asks for


def recent_quarters(today: date) -> list[str]:
    """The quarter holding `today` and the QUARTERS_BEFORE before it, newest first."""
    year, number = today.year, (today.month - 1) // 3 + 1
    labels = []
    for _step in range(QUARTERS_BEFORE + 1):
        labels.append(f"{year}Q{number}")
        year, number = (year, number - 1) if number > 1 else (year - 1, 4)
    return labels


@dataclass(frozen=True)
class PeriodChoice:
    """The period as the form asked for it: a quarter, or from and to dates (as typed; checked by `period_of`)."""

    by: Literal["quarter", "dates"] = "quarter"
    quarter: str = ""
    start: str = ""
    end: str = ""

    def query(self, customer_id: str | None, *, page: bool = True) -> str:
        """The URL query that asks for this period again: of the page (the way back from a form), or of a
        download (`page=False`, which knows no `by`: a quarter, or from and to, like the API)."""
        params = {"customer_id": customer_id} if customer_id else {}
        if self.by == "dates":
            params |= ({"by": "dates"} if page else {}) | {"from": self.start, "to": self.end}
        else:
            params["quarter"] = self.quarter
        return urlencode(params)


def _day(me: Viewer, text: str, field: str) -> date | None:
    if not text.strip():
        return None  # periods.from_query names the missing one
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(_(me, MESSAGES["date"], field=_(me, DATE_FIELDS[field])), field=field) from None


def period_of(me: Viewer, choice: PeriodChoice) -> Period:
    """The period, or InvalidInput naming the field (`quarter`, `from`, `to`) and the rule it broke."""
    if choice.by == "dates":
        start, end = _day(me, choice.start, "from"), _day(me, choice.end, "to")
        return periods.from_query(quarter_label=None, start=start, end=end)
    return periods.quarter(choice.quarter)


# --------------------------------------------------------------------------------------------------
# The Reports page


def console_svg(svg: str) -> Markup:
    """A chart of `reports.charts` for a console page. Its root carries the one `style` attribute the charts
    write (sizing it for e-mail), which the console's Content-Security-Policy refuses: it is dropped, and
    the class `chart` sizes it instead. Everything else is presentation attributes, allowed."""
    without = re.sub(r'\sstyle="[^"]*"', "", svg)
    return Markup(without.replace("<svg ", '<svg class="chart" ', 1))  # our own SVG: no text of anyone in it


def _reports_page(
    request: Request,
    me: Viewer,
    ctx: AppContext,
    *,
    customer_id: str | None,
    choice: PeriodChoice,
    note: str = "",
    note_error: str | None = None,
    status_code: int = 200,
):
    errors: dict[str, str] = {}
    report = None
    with ctx.unit_of_work() as session:
        quarters = recent_quarters(db_now(session).astimezone(me.zone).date())
        if choice.by == "quarter" and not choice.quarter:
            choice = replace(choice, quarter=quarters[0])
        chosen = choose_customer(session, me, customer_id)
        try:
            period = period_of(me, choice)
        except InvalidInput as exc:
            period, errors = None, {exc.field or "quarter": exc.message}
        if chosen.customer is not None and period is not None:
            report = service.customer_report(
                session, actor=me.person, customer_id=chosen.customer.id, period=period, config=ctx.config
            )
        digest = service.daily_digest(session, actor=me.person, as_of=None, config=ctx.config)
    severity_labels = {n: ctx.config.severity.label(n, me.language) for n in (1, 2, 3, 4)}
    return render(
        request,
        "reports.html",
        viewer=me,
        status_code=422 if errors and status_code == 200 else status_code,
        **chosen.for_page(choose=not access.allows(me.person, "customer.member")),  # staff: even with one customer
        choice=choice,
        quarters=quarters if choice.quarter in quarters or choice.by == "dates" else [choice.quarter, *quarters],
        errors=errors,
        report=report,
        downloads=choice.query(chosen.customer.id, page=False) if chosen.customer else "",
        severity_labels=severity_labels,
        reasons=rendering.breach_reasons(report, language=me.language) if report else {},
        attainment_svg=console_svg(charts.attainment_chart(report.weekly, language=me.language)) if report else "",
        response_svg=console_svg(charts.response_chart(report.requests, language=me.language)) if report else "",
        notes={n.id: rendering.paragraphs(n.body) for n in report.notes} if report else {},
        healthcheck_statuses=HEALTHCHECK_STATUSES,
        can_note=access.allows(me.person, "report.note"),
        note=note,
        note_error=note_error,
        digest=digest,
        next_steps={row.request_id: rendering.next_step(row, language=me.language) for row in digest.rows},
    )


@router.get("/reports", openapi_extra=needs("report.read"))
def reports_page(
    request: Request,
    customer_id: Annotated[str | None, Query(max_length=40)] = None,
    by: Literal["quarter", "dates"] = "quarter",
    quarter: Annotated[str, Query(max_length=20)] = "",
    start: Annotated[str, Query(alias="from", max_length=20)] = "",
    end: Annotated[str, Query(alias="to", max_length=20)] = "",
    me: Viewer = Depends(viewer),
    ctx: AppContext = Depends(context),
):
    choice = PeriodChoice(by=by, quarter=quarter.strip(), start=start, end=end)
    return _reports_page(request, me, ctx, customer_id=customer_id or None, choice=choice)


@router.get("/reports/customer.{fmt}", openapi_extra=needs("report.read"))
def report_download(
    fmt: Literal["pdf", "csv", "html"],
    customer_id: Annotated[str, Query(min_length=1, max_length=40)],
    quarter: Annotated[str | None, Query(max_length=20)] = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    me: Viewer = Depends(viewer),
    ctx: AppContext = Depends(context),
):
    """The report as a file to keep, in the reader's language: always an attachment, never shown in the console
    (the HTML is the e-mail's page, with the inline styles its own policy allows)."""
    period = periods.from_query(quarter_label=quarter, start=start, end=end)
    with ctx.unit_of_work() as session:
        report = service.customer_report(
            session, actor=me.person, customer_id=customer_id, period=period, config=ctx.config
        )
    if fmt == "pdf":
        content: str | bytes = rendering.report_pdf(report, language=me.language)
    elif fmt == "csv":
        content = rendering.report_csv(report)
    else:
        content = rendering.report_html(report, language=me.language)
    name = f"report-{report.customer_id}-{report.period.label.replace('..', '_')}.{fmt}"
    return download(content, filename=name, media_type=MEDIA_TYPES[fmt])


@router.post("/reports/notes", openapi_extra=needs("report.note"))
def add_note(
    request: Request,
    customer_id: Annotated[str, Form(max_length=40)] = "",
    by: Annotated[Literal["quarter", "dates"], Form()] = "quarter",
    quarter: Annotated[str, Form(max_length=20)] = "",
    start: Annotated[str, Form(alias="from", max_length=20)] = "",
    end: Annotated[str, Form(alias="to", max_length=20)] = "",
    body: Annotated[str, Form()] = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    """A note for the customer and the period the Reports page shows; refused input shows on that page."""
    choice = PeriodChoice(by=by, quarter=quarter.strip(), start=start, end=end)
    text = body.replace("\r\n", "\n")

    def again(error: str | None):
        return _reports_page(
            request, me, ctx, customer_id=customer_id, choice=choice, note=text, note_error=error, status_code=422
        )

    try:
        period = period_of(me, choice)
    except InvalidInput:
        return again(None)  # the page names the period's problem itself
    try:
        data = NoteIn(customer_id=customer_id, period_start=period.start, period_end=period.end, body=text)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "string_too_long":
            return again(_(me, MESSAGES["too_long"], limit=error["ctx"]["max_length"], count=len(text.strip())))
        return again(_(me, MESSAGES["note_empty"]))
    with ctx.unit_of_work() as session:
        preferences.add_note(session, actor=me.person, data=data)
    return back_to(f"/reports?{choice.query(customer_id)}", "The note is added.")


# --------------------------------------------------------------------------------------------------
# Report settings and my daily digest


def _settings_page(
    request: Request,
    me: Viewer,
    ctx: AppContext,
    *,
    customer_id: str | None,
    form: dict | None = None,
    mine: dict | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
):
    with ctx.unit_of_work() as session:
        chosen = choose_customer(session, me, customer_id)
        prefs = (
            preferences.get_report_preferences(session, actor=me.person, customer_id=chosen.customer.id)
            if chosen.customer
            else None
        )
        subscription = preferences.get_digest_subscription(session, actor=me.person)
    if form is None and prefs is not None:
        form = {
            "frequency": prefs.frequency,
            "format": prefs.format,
            "sections": list(prefs.sections),
            "recipients": "\n".join(prefs.recipients),
            "language": prefs.language or "",
            "digest_enabled": prefs.digest_enabled,
            "digest_at": prefs.digest_at,
            "digest_slack": prefs.digest_slack,
        }
    if mine is None:
        mine = {"enabled": subscription.enabled, "send_at": subscription.send_at}
    return render(
        request,
        "report_preferences.html",
        viewer=me,
        status_code=status_code,
        **chosen.for_page(),
        prefs=prefs,
        form=form or {},
        mine=mine,
        subscription=subscription,
        errors=errors or {},
        can_change=prefs is not None and access.allows(me.person, "report.preferences"),
        can_subscribe=access.allows(me.person, "digest.subscribe"),
        sections=SECTIONS,
        section_order=REPORT_SECTIONS,
        frequencies=FREQUENCIES,
        formats=FORMATS,
        languages=LANGUAGE_NAMES,
    )


@router.get("/reports/preferences", openapi_extra=needs("report.read"))
def report_settings(
    request: Request,
    customer_id: Annotated[str | None, Query(max_length=40)] = None,
    me: Viewer = Depends(viewer),
    ctx: AppContext = Depends(context),
):
    return _settings_page(request, me, ctx, customer_id=customer_id or None)


def _back_to_settings(customer_id: str | None, notice: str):
    path = "/reports/preferences" + (f"?{urlencode({'customer_id': customer_id})}" if customer_id else "")
    return back_to(path, notice)


def _preferences_errors(me: Viewer, exc: ValidationError, form: dict) -> dict[str, str]:
    """ReportPreferencesIn's complaints, one message per field in the reader's language, naming the line."""
    errors: dict[str, str] = {}
    typed = form["recipients"].splitlines()
    numbers = [n for n, line in enumerate(typed, 1) if line.strip()]
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        if field in errors:
            continue
        if field == "recipients":
            index = error["loc"][1] if len(error["loc"]) > 1 else None
            if isinstance(index, int) and index < len(numbers):
                errors[field] = _(me, MESSAGES["email"], line=numbers[index])
            else:  # the list as a whole: too many
                limit = error.get("ctx", {}).get("max_length", "?")
                errors[field] = _(me, MESSAGES["recipients"], limit=limit, count=len(numbers))
        elif field in ("sections", "digest_at"):
            errors[field] = _(me, MESSAGES[field])
        elif field in ("frequency", "format", "language"):
            errors[field] = _(me, MESSAGES["choice"])
        else:
            errors.setdefault("form", str(error["msg"]))
    return errors


@router.post("/reports/preferences", openapi_extra=needs("report.preferences"))
async def change_report_settings(request: Request, me: Viewer = Depends(checked), ctx: AppContext = Depends(context)):
    posted = await request.form()  # already read (and limited) by the CSRF check
    return await run_in_threadpool(_change_report_settings, request, posted, me, ctx)


def _text(posted: FormData, name: str) -> str:
    value = posted.get(name)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def _change_report_settings(request: Request, posted: FormData, me: Viewer, ctx: AppContext):
    customer_id = _text(posted, "customer_id") or None
    form = {
        "frequency": _text(posted, "frequency"),
        "format": _text(posted, "format"),
        "sections": [value for value in posted.getlist("sections") if isinstance(value, str)],
        "recipients": _text(posted, "recipients"),
        "language": _text(posted, "language"),
        "digest_enabled": posted.get("digest_enabled") == "on",
        "digest_at": _text(posted, "digest_at").strip(),
        "digest_slack": posted.get("digest_slack") == "on",
    }
    try:
        data = ReportPreferencesIn(
            recipients=[line.strip() for line in form["recipients"].splitlines() if line.strip()],
            frequency=form["frequency"],
            sections=form["sections"],
            language=form["language"] or None,
            format=form["format"],
            digest_enabled=form["digest_enabled"],
            digest_at=form["digest_at"],
            digest_slack=form["digest_slack"],
        )
    except ValidationError as exc:
        errors = _preferences_errors(me, exc, form)
        return _settings_page(request, me, ctx, customer_id=customer_id, form=form, errors=errors, status_code=422)
    if customer_id is None:
        raise InvalidInput("customer_id: choose the customer whose settings these are", field="customer_id")
    with ctx.unit_of_work() as session:
        preferences.set_report_preferences(session, actor=me.person, customer_id=customer_id, data=data)
    return _back_to_settings(customer_id, "Report settings saved.")


@router.post("/reports/digest", openapi_extra=needs("digest.subscribe"))
def change_my_digest(
    request: Request,
    customer_id: Annotated[str, Form(max_length=40)] = "",
    enabled: Annotated[str, Form(max_length=10)] = "",
    send_at: Annotated[str, Form(max_length=20)] = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    """Whether and when the reader receives the daily digest, in their own zone."""
    mine = {"enabled": enabled == "on", "send_at": send_at.strip()}

    def again(errors: dict[str, str]):
        return _settings_page(
            request, me, ctx, customer_id=customer_id or None, mine=mine, errors=errors, status_code=422
        )

    try:
        data = DigestSubscriptionIn(enabled=mine["enabled"], send_at=mine["send_at"])
    except ValidationError:
        return again({"send_at": _(me, MESSAGES["send_at"])})
    try:
        with ctx.unit_of_work() as session:
            preferences.set_digest_subscription(session, actor=me.person, data=data)
    except InvalidInput as exc:  # no e-mail address to send it to
        return again({"my_enabled": exc.message})
    return _back_to_settings(customer_id or None, "Your digest setting is saved.")
