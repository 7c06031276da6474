"""Domain errors. Each maps to exactly one HTTP status in `api/errors.py` and one CLI exit line."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can cause and fix; the message is safe to show to them."""

    code = "error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(DomainError):
    code = "config_error"


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Conflict(DomainError):
    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class StaleVersion(Conflict):
    code = "stale_version"


class BadRequest(DomainError):
    """A body that cannot be parsed at all (not UTF-8, not JSON, not the expected shape): 400, before any rule."""

    code = "bad_request"


class LineBroken(Conflict):
    """Publishing would take away a fix the channel serves (the base does not descend from its commit)."""

    code = "line_broken"


class ChannelHalted(Conflict):
    """An automatic halt stopped the channel: nothing is published to it until a person resumes it."""

    code = "channel_halted"


class InvalidInput(DomainError):
    """Input that is well-formed but wrong for the domain (e.g. a hash that does not match the bytes)."""

    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None, **details: object) -> None:
        super().__init__(message, field=field, **details)
        self.field = field


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class RateLimited(DomainError):
    """Too many calls from one client; it may retry after `retry_after` seconds (429 + Retry-After)."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """A feature that is not configured on this server (503): the caller did nothing wrong."""

    code = "service_unavailable"
