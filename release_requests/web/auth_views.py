"""Signing in and out, and the start page that sends each person where their work is."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from release_requests import access, errors
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.api.home_views import api_index, wants_html
from release_requests.people.signin import SignIn, check_password, end_session, open_session, redeem_login_link
from release_requests.web.rendering import render
from release_requests.web.session import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    Viewer,
    back_to,
    browser_language,
    checked,
    viewer,
    web_router,
)

router = web_router()


def landing_for(person) -> str:
    return "/queue" if access.is_staff(person) else "/my/requests"


def _safe_next(target: str | None) -> str | None:
    """Only a path of this site: never another host (`//evil`, `https://…`, `/\\evil`)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")) and "\n" not in target:
        return target
    return None


def _form_token(request: Request) -> str:
    """The sign-in form's double-submit token: the cookie's, or a new one."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def _keeping_form_token(request: Request, response: Response, token: str) -> Response:
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_over_https(request), path="/login"
    )
    return response


def _login_page(
    request: Request, *, status_code: int = 200, error: str | None = None, email: str = "", next_: str = ""
):
    token = _form_token(request)
    page = render(
        request,
        "login.html",
        viewer=None,
        language=browser_language(request),
        status_code=status_code,
        csrf_token=token,
        error=error,
        email=email,
        next=next_,
    )
    return _keeping_form_token(request, page, token)


def _login_csrf_ok(request: Request, sent: str) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    return bool(expected) and secrets.compare_digest(sent, expected)


def _over_https(request: Request) -> bool:
    """Cookies are `Secure` when this request came over https, or the console's public address is https (a proxy
    terminating TLS in front of it)."""
    public = request.app.state.context.settings.public_url or ""  # (the `context` dependency is async)
    return request.url.scheme == "https" or public.startswith("https://")


def _signed_in(request: Request, ctx: AppContext, token: str, target: str) -> Response:
    """The new session's cookie; a session this browser held before (someone else's, say) ends now."""
    previous = request.cookies.get(COOKIE)
    if previous:
        with ctx.unit_of_work() as session:
            end_session(session, token=previous)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=ctx.settings.web_session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=_over_https(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.get("/login", openapi_extra=needs("public"))
def login_form(request: Request, next: str | None = None):  # noqa: A002 - the query parameter's name
    return _login_page(request, next_=_safe_next(next) or "")


@router.post("/login", openapi_extra=needs("public"))
def login(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",  # noqa: A002 - the form field's name
    ctx: AppContext = Depends(context),
):
    if not _login_csrf_ok(request, csrf_token):
        return _login_page(
            request,
            status_code=403,
            error="This form has expired or did not come from this site. Reload the page and try again.",
            email=email,
            next_=_safe_next(next) or "",
        )
    try:
        credentials = SignIn(email=email, password=password)
    except ValidationError:
        return _login_page(request, status_code=401, error="Wrong e-mail or password.", email=email, next_=next)
    client = request.client.host if request.client else "unknown"
    try:
        with ctx.unit_of_work() as session:
            person = check_password(session, credentials=credentials, client=client)
            if person is not None:
                token, _ = open_session(
                    session, person=person, lifetime=timedelta(hours=ctx.settings.web_session_hours), via="password"
                )
    except errors.RateLimited as exc:
        response = _login_page(request, status_code=429, error="Too many attempts", email=email, next_=next)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if person is None:
        return _login_page(request, status_code=401, error="Wrong e-mail or password.", email=email, next_=next)
    return _signed_in(request, ctx, token, _safe_next(next) or landing_for(person))


@router.get("/login/link/{token}", openapi_extra=needs("public"))
def login_link_page(request: Request, token: str):
    """A page with one button: mail scanners that open links do not use up the link."""
    form_token = _form_token(request)
    page = render(
        request,
        "login_link.html",
        viewer=None,
        language=browser_language(request),
        csrf_token=form_token,
        token=token,
    )
    return _keeping_form_token(request, page, form_token)


@router.post("/login/link", openapi_extra=needs("public"))
def login_with_link(
    request: Request,
    token: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    ctx: AppContext = Depends(context),
):
    if not _login_csrf_ok(request, csrf_token):
        return _login_page(
            request,
            status_code=403,
            error="This form has expired or did not come from this site. Reload the page and try again.",
        )
    try:
        with ctx.unit_of_work() as session:
            person = redeem_login_link(session, token=token)
            cookie, _ = open_session(
                session, person=person, lifetime=timedelta(hours=ctx.settings.web_session_hours), via="login link"
            )
    except errors.Unauthenticated:
        return _login_page(
            request, status_code=401, error="This sign-in link has expired or was already used; ask for a new one."
        )
    return _signed_in(request, ctx, cookie, landing_for(person))


@router.post("/logout", openapi_extra=needs("public"))
def logout(request: Request, me: Viewer = Depends(checked), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        end_session(session, token=request.cookies.get(COOKIE, ""))
    response = back_to("/login", "You have signed out.")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/", openapi_extra=needs("public"))
def start(request: Request, ctx: AppContext = Depends(context)):
    """Browsers go to their landing page (the sign-in page first); programs get the API index as JSON."""
    if not wants_html(request.headers.get("accept", "")):
        return api_index(request)
    return RedirectResponse(landing_for(viewer(request, ctx).person), status_code=303)
