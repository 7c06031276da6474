"""Pages from Jinja2 templates: every text through `_` (en/ru), every time in the reader's zone with the zone
named, every value a customer typed escaped (autoescape everywhere), and the same security headers on every
response."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from release_requests import access
from release_requests.people.service import actor_as_seen
from release_requests.web.i18n import catalog, translate

if TYPE_CHECKING:
    from release_requests.web.session import Viewer

STATIC = Path(__file__).parent / "static"

# No inline script or style anywhere: scripts and styles come from /static, htmx's own indicator style is
# switched off (meta htmx-config). Forms post only here; nothing may frame the console.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages carry customers' data: not kept by the browser or a proxy
}


# A document to keep (a report as the e-mail shows it): its own inline styles, nothing else, never framed
DOCUMENT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
DOCUMENT_HEADERS = {"Content-Security-Policy": DOCUMENT_POLICY, "X-Content-Type-Options": "nosniff"}


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def download(content: str | bytes, *, filename: str, media_type: str) -> Response:
    """A file to save, never shown in the console: an HTML document gets `DOCUMENT_POLICY` instead of the
    console's (its styles are inline)."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if media_type.startswith("text/html"):
        headers |= DOCUMENT_HEADERS
    return Response(content, media_type=media_type, headers=headers)


def zone_label(moment: datetime) -> str:
    """'MSK', 'CET', or 'UTC+04' where the zone has no abbreviation (tzdata writes '+04')."""
    name = moment.tzname() or "UTC"
    return f"UTC{name}" if name[:1] in "+-" else name


MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "ru": ("янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"),
}
UNITS = {"en": ("d", "h", "min"), "ru": ("д", "ч", "мин")}  # console.js ticks with the same words


def local_time(moment: datetime | None, zone: ZoneInfo, *, with_date: bool = True, language: str = "en") -> str:
    """'30 Nov 2026 14:05 MSK' in `zone` ('30 ноя 2026 14:05 MSK' in Russian); '—' for no time (a missing
    value never breaks a page)."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    clock = f"{local:%H:%M} {zone_label(local)}"
    if not with_date:
        return clock
    month = MONTHS.get(language, MONTHS["en"])[local.month - 1]
    return f"{local.day} {month} {local.year} {clock}"


def duration(seconds: int | float | None, language: str = "en") -> str:
    """'2 h 05 min', '12 min', '3 d 4 h'; '—' for none. The browser ticks the same format (console.js)."""
    if seconds is None:
        return "—"
    day, hour, minute = UNITS.get(language, UNITS["en"])
    sign = "−" if seconds < 0 else ""
    minutes = int(abs(seconds)) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{sign}{days} {day} {hours} {hour}"
    if hours:
        return f"{sign}{hours} {hour} {minutes:02d} {minute}"
    return f"{sign}{minutes} {minute}"


@pass_context
def _duration_filter(context, seconds: int | float | None) -> str:
    return duration(seconds, context.get("language", "en"))


# Words for stored values (translated through the catalogue like every other text).
STATUSES = {
    "submitted": "Submitted",
    "needs_info": "Needs information",
    "accepted": "Accepted",
    "rejected": "Rejected",
    "duplicate": "Duplicate",
    "building": "Building",
    "verifying": "Verifying",
    "awaiting_approval": "Awaiting approval",
    "releasing": "Releasing",
    "released": "Released",
    "closed": "Closed",
    "cancelled": "Cancelled",
    "failed": "Failed",
}
KINDS = {"false_positive": "False positive", "false_negative": "Missed detection", "private_hotfix": "Private hotfix"}
SLA_STATES = {
    "on_track": "On track",
    "at_risk": "At risk",
    "breached": "Breached",
    "met": "Answered",
    "withdrawn": "Withdrawn",
}


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("release_requests.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a misspelt name fails the test of its page, it does not render blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = _duration_filter
    env.globals.update(
        STATUSES=STATUSES, KINDS=KINDS, SLA_STATES=SLA_STATES, allows=access.allows, as_seen=actor_as_seen
    )
    return env


ENV = _environment()


def render(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None,
    language: str = "en",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: object,
) -> HTMLResponse:
    """The page `template` for `viewer` (None on the sign-in pages), in their language and zone."""
    language = viewer.language if viewer else language
    zone = viewer.zone if viewer else ZoneInfo("UTC")

    def _(text: str, **params: object) -> str:
        return translate(language, text, **params)

    def when(moment: datetime | None, *, with_date: bool = True) -> Markup:
        if moment is None:
            return Markup("—")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        iso = moment.astimezone(UTC).isoformat()
        return Markup('<time datetime="{}" title="{}">{}</time>').format(
            iso, f"{zone.key}", local_time(moment, zone, with_date=with_date, language=language)
        )

    html = ENV.get_template(template).render(
        request=request,
        viewer=viewer,
        language=language,
        zone=zone,
        csrf_token=viewer.csrf_token if viewer else context.pop("csrf_token", ""),
        _=_,
        when=when,
        notice=_known_notice(request.query_params.get("notice")),
        **context,
    )
    return secure(HTMLResponse(html, status_code=status_code, headers=headers))


def _known_notice(text: str | None) -> str | None:
    """A notice from the query (after a form) is shown only when it is one of our own texts: a link cannot
    put words of its own on our page."""
    return text if text and text in catalog() else None


def plain(text: str) -> Markup:
    """Text a person typed, escaped, with its line breaks kept (never interpreted as markup)."""
    return Markup("<br>").join(escape(line) for line in text.splitlines()) if text else Markup("")


ENV.filters["plain"] = plain
