"""Domain errors → HTTP, in one place. Clients get a JSON body with a code and a message, never a trace."""

from __future__ import annotations

import logging
import uuid

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg.errors import DeadlockDetected, SerializationFailure
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from release_requests import errors

log = logging.getLogger("release_requests.api")

STATUS = {
    errors.BadRequest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    errors.InvalidInput: 422,
    errors.ConfigError: 500,
    errors.ServiceUnavailable: 503,
}


DATABASE_RETRY_AFTER = 2  # seconds: a restarting Postgres is back within a few; clients retry on their own


def database_unreachable(exc: Exception) -> bool:
    """The database cannot be reached or is restarting, as opposed to refusing this statement: the connection
    was lost or refused (no SQLSTATE, class 08), or the server is shutting down or starting (57P01–57P03),
    or no pooled connection came free in time. Retrying later is the answer, not a 500."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    orig = exc.orig
    if not isinstance(orig, psycopg.OperationalError):
        return False
    state = getattr(orig, "sqlstate", None)
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def _status_of(exc: errors.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _body(code: str, message: str, **extra) -> dict:
    return {"error": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}


def _field_path(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form")]
    # drop the discriminator tag pydantic inserts for tagged unions (e.g. body.accept.severity)
    return ".".join(parts) or str(loc[-1] if loc else "")


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.DomainError)
    async def _domain(_: Request, exc: errors.DomainError) -> JSONResponse:
        details = {k: v for k, v in exc.details.items() if v is not None}
        headers = None
        if isinstance(exc, errors.Unauthenticated):
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(exc, errors.RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(_body(exc.code, exc.message, **details), status_code=_status_of(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": _field_path(tuple(e["loc"])), "message": e["msg"], "type": e["type"]} for e in exc.errors()]
        message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return JSONResponse(_body("validation_error", message, fields=fields), status_code=422)

    @app.exception_handler(StaleDataError)
    async def _stale(_: Request, exc: StaleDataError) -> JSONResponse:
        return JSONResponse(
            _body("stale_version", "the request was changed by someone else meanwhile; reload and retry"),
            status_code=409,
        )

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL byte in a text, a number beyond bigint: the client's value, not our bug
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "value out of range"
        return JSONResponse(_body("invalid_input", f"a value cannot be stored: {reason}"), status_code=422)

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        return JSONResponse(_body("invalid_input", f"a date or number is out of range ({exc})"), status_code=422)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if database_unreachable(exc):
            # the transaction did not commit, or its answer was lost: a retry with the same submission_key
            # finds what was filed, so the client loses nothing by retrying
            log.warning("database unreachable on %s %r: %s", request.method, request.url.path, type(exc).__name__)
            body = _body("unavailable", "the database is restarting or unreachable; retry in a few seconds")
            return JSONResponse(body, status_code=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
        if isinstance(exc, OperationalError) and isinstance(exc.orig, DeadlockDetected | SerializationFailure):
            log.warning("transaction conflict on %s %r; client asked to retry", request.method, request.url.path)
            body = _body("conflict", "concurrent changes collided; nothing was saved, retry in a moment")
            return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
        return await _unexpected(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %r", incident, request.method, request.url.path)
        return JSONResponse(_body("internal_error", f"internal error (reference {incident})"), status_code=500)
