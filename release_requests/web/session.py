"""Who is looking at a page: the session cookie → a person, their language and zone, and the customer a page
shows them; the CSRF check every form and htmx request passes; and the route class that turns domain errors
into pages (not JSON)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from release_requests import access, errors
from release_requests.api.deps import AppContext, context
from release_requests.api.errors import STATUS
from release_requests.customers.models import Customer
from release_requests.customers.service import customer_for, customers_for
from release_requests.people.models import Person
from release_requests.people.signin import resolve_session
from release_requests.web import WEB_TAG
from release_requests.web.rendering import render, secure
from release_requests.workflows import mail_intake

M = TypeVar("M", bound=BaseModel)

COOKIE = "rr_session"
LOGIN_CSRF_COOKIE = "rr_login_csrf"  # double-submit token of the sign-in form (there is no session yet)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Viewer:
    person: Person
    csrf_token: str
    language: str
    zone: ZoneInfo
    staff: bool
    held_mail: int | None = None  # messages waiting for a duty manager, for those who may read the mailbox

    @property
    def name(self) -> str:
        return self.person.name


def browser_language(request: Request) -> str:
    """Russian when the browser prefers it to English; English otherwise."""
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("ru"):
            return "ru"
        if tag.startswith("en"):
            return "en"
    return "en"


class SignInRequired(Exception):
    """No session, or it ended: the browser goes to the sign-in page and comes back afterwards."""


def viewer(request: Request, ctx: AppContext = Depends(context)) -> Viewer:
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInRequired
    with ctx.unit_of_work() as session:
        try:
            person, row = resolve_session(
                session,
                token=token,
                idle=timedelta(minutes=ctx.settings.web_idle_minutes),
            )
        except errors.Unauthenticated:
            raise SignInRequired from None
        customer = session.get(Customer, person.customer_id) if person.customer_id else None
        # customers read times in their company's zone (where their SLA is counted); staff in their own
        zone = customer.timezone if customer else person.timezone
        # the person's own choice, else their browser's: a company's language is for its shared notices
        language = person.language or browser_language(request)
        found = Viewer(
            person=person,
            csrf_token=row.csrf_token,
            language=language if language in ("en", "ru") else "en",
            zone=ZoneInfo(zone or "UTC"),
            staff=access.is_staff(person),
            held_mail=mail_intake.held_count(session, actor=person) if access.allows(person, "mail.read") else None,
        )
    request.state.viewer = found
    return found


@dataclass(frozen=True)
class CustomerChoice:
    """The customer a page is about, and the customers the viewer may pick instead: (id, name) for its select."""

    customer: Customer | None
    options: list[tuple[str, str]]

    def for_page(self, *, choose: bool | None = None) -> dict[str, object]:
        """The template's `customer`, `customers` (the select's options) and `choose_customer`: whether it shows
        the select, by default when there is another customer to pick."""
        return {
            "customer": self.customer,
            "customers": self.options,
            "choose_customer": len(self.options) > 1 if choose is None else choose,
        }


def choose_customer(session: Session, me: Viewer, customer_id: str | None) -> CustomerChoice:
    """The customer asked for (another customer's is not found: a 404 page), else the first the viewer sees;
    None when they see none."""
    customers = customers_for(session, actor=me.person)
    if customer_id:
        chosen: Customer | None = customer_for(session, actor=me.person, customer_id=customer_id)
    else:
        chosen = customers[0] if customers else None
    return CustomerChoice(chosen, [(c.id, c.name) for c in customers])


FORM_UPLOAD_SAMPLES = 4  # a form's files together may weigh this many of the largest sample allowed


async def checked(request: Request, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)) -> Viewer:
    """The viewer, once the request proved it came from our own page (form field or htmx header).

    A form larger than its files may be is refused before it is read (nothing is spooled to disk first)."""
    limits = ctx.config.intake.samples
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise errors.BadRequest("a form must declare its length (Content-Length)")
    if int(declared) > FORM_UPLOAD_SAMPLES * limits.max_bytes + 1024 * 1024:
        raise errors.PayloadTooLarge(
            f"a form may carry at most {FORM_UPLOAD_SAMPLES * limits.max_bytes // (1024 * 1024)} MiB of files; "
            "add further samples afterwards",
            field="samples",
        )
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form(max_files=limits.max_per_request)).get(CSRF_FIELD)
    if not isinstance(sent, str) or not secrets.compare_digest(sent, me.csrf_token):
        raise CsrfRefused
    return me


class CsrfRefused(Exception):
    """A state change without this session's form token: made elsewhere, or from a page older than the session."""


def _error_page(request: Request, exc: errors.DomainError) -> Response:
    status = next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 400)
    titles = {
        404: "Not found",
        403: "Not allowed",
        409: "Conflict",
        422: "Something is wrong with the input",
        429: "Too many attempts",
    }
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.RateLimited) else None
    return render(
        request,
        "error.html",
        viewer=getattr(request.state, "viewer", None),
        status_code=status,
        headers=headers,
        title=titles.get(status, "Error"),
        message=exc.message if status != 404 else None,
        fields=[],
    )


def _http_error_page(request: Request, exc: StarletteHTTPException) -> Response:
    titles = {404: "Not found", 403: "Not allowed", 413: "Something is wrong with the input"}
    return render(
        request,
        "error.html",
        viewer=getattr(request.state, "viewer", None),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
        title=titles.get(exc.status_code, "Error"),
        message=None if exc.status_code == 404 else str(exc.detail),
        fields=[],
    )


def _invalid_page(request: Request, exc: RequestValidationError) -> Response:
    fields = [
        (".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path", "form")), e["msg"])
        for e in exc.errors()
    ]
    return render(
        request,
        "error.html",
        viewer=getattr(request.state, "viewer", None),
        status_code=422,
        title="Something is wrong with the input",
        message=None,
        fields=fields,
    )


def _to_sign_in(request: Request) -> Response:
    """To the sign-in page, and back afterwards to the page the person was on (a page: never a form's target,
    nor the fragment htmx was refreshing)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("HX-Request"):
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        target = current.path + (f"?{current.query}" if current.query else "") if current.path else "/"
    elif request.method != "GET":
        target = "/"
    location = "/login" if target == "/" else f"/login?next={quote(target, safe='')}"
    if request.headers.get("HX-Request"):  # htmx follows this header with a full page load
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


class WebRoute(APIRoute):
    """A page: errors become pages in the reader's language, every response carries the security headers.

    Another customer's request is a 404 page like any missing one (the services raise NotFound for it)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                response = _to_sign_in(request)
            except CsrfRefused:
                response = render(
                    request,
                    "error.html",
                    viewer=getattr(request.state, "viewer", None),
                    status_code=403,
                    title="Not allowed",
                    message=None,
                    fields=[],
                    detail="This form has expired or did not come from this site. Reload the page and try again.",
                )
            except errors.DomainError as exc:
                response = _error_page(request, exc)
            except RequestValidationError as exc:
                response = _invalid_page(request, exc)
            except StaleDataError:  # the row changed between reading and writing it
                response = _error_page(
                    request, errors.StaleVersion("it was changed by someone else meanwhile; reload and try again")
                )
            except DataError as exc:  # e.g. a NUL byte in a text: the input, not our bug
                reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "value out of range"
                response = _error_page(request, errors.InvalidInput(f"a value cannot be stored: {reason}"))
            except StarletteHTTPException as exc:
                response = _http_error_page(request, exc)
            return secure(response)

        return page


def valid(model: type[M], **fields: object) -> M:
    """The API's own input model from a form's fields: the same limits, and a 422 page naming the field."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


def web_router(**kwargs) -> APIRouter:
    """An APIRouter for pages: WebRoute, tagged `web`, left out of the OpenAPI schema."""
    return APIRouter(route_class=WebRoute, tags=[WEB_TAG], include_in_schema=False, **kwargs)


def back_to(path: str, notice: str | None = None) -> RedirectResponse:
    """After a form: the page again (POST → redirect → GET), with a short notice key to show."""
    if not notice:
        return RedirectResponse(path, status_code=303)
    return RedirectResponse(f"{path}{'&' if '?' in path else '?'}notice={quote(notice)}", status_code=303)
