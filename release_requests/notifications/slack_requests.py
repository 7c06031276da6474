"""Requests from Slack: the v0 signature checked over the raw bytes, then the payload parsed and validated.

Everything about the request is untrusted until the signature matches, so the checks run in this order
and nothing is decoded before it: headers that are not what Slack sends (a timestamp in anything but
ASCII digits, a signature that is not `v0=` + 64 hex digits) are refused like a wrong signature, with 401.
`slack_sdk.signature.SignatureVerifier` is not used because it decodes the body as UTF-8 before hashing
(a non-UTF-8 body raised instead of failing the check) and calls `int()` on a timestamp that only passed
`str.isdigit()` (true for '²'). Only a signed request is parsed; a signed request that is not a
well-formed `block_actions` payload is a 400 naming what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from urllib.parse import parse_qs

from pydantic import ValidationError

from release_requests.errors import BadRequest, Unauthenticated
from release_requests.notifications.schemas import BlockActions

MAX_AGE_SECONDS = 5 * 60  # Slack's own advice: older requests may be replays
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # Unix seconds; [0-9], not \d, which also matches '²' and '٣'
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature: HMAC-SHA256 over `v0:{timestamp}:` and the body's raw bytes."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    *, signing_secret: str, body: bytes, timestamp: str | None, signature_header: str | None, now: float | None = None
) -> str:
    """The request's signature once it is proven to come from Slack, recently; Unauthenticated otherwise."""
    if not timestamp or not _TIMESTAMP.fullmatch(timestamp):
        raise Unauthenticated("X-Slack-Request-Timestamp missing or not Unix seconds in ASCII digits")
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE_SECONDS:
        raise Unauthenticated("Slack request timestamp more than 5 minutes from now (a replay, or a wrong clock)")
    if not signature_header or not _SIGNATURE.fullmatch(signature_header):
        raise Unauthenticated("X-Slack-Signature missing or not 'v0=' followed by 64 lowercase hex digits")
    if not hmac.compare_digest(signature(signing_secret, timestamp, body), signature_header):
        raise Unauthenticated("Slack signature does not match the body (wrong signing secret, or altered)")
    return signature_header


def parse_interaction(body: bytes) -> BlockActions:
    """The button press in a verified body (`payload=<JSON>`, form-encoded); BadRequest says what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 (invalid byte at offset {exc.start})", field="payload") from None
    try:
        form = parse_qs(text, errors="strict", max_num_fields=20)
    except UnicodeDecodeError:
        raise BadRequest("a form field is not UTF-8 once percent-decoded", field="payload") from None
    except ValueError as exc:  # more fields than any Slack request has
        raise BadRequest(f"the body is not a Slack form: {exc}", field="payload") from None
    values = form.get("payload", [])
    if len(values) != 1:
        raise BadRequest(f"expected one form field 'payload' holding JSON, got {len(values)}", field="payload")
    try:
        raw = json.loads(values[0])
    except json.JSONDecodeError as exc:
        raise BadRequest(f"payload is not JSON: {exc.msg} at position {exc.pos}", field="payload") from None
    except (ValueError, RecursionError) as exc:  # an integer too long to convert, nesting too deep
        raise BadRequest(f"payload is not usable JSON: {type(exc).__name__}", field="payload") from None
    try:
        return BlockActions.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"payload.{where}: {error['msg']}" if where else f"payload: {error['msg']}")
        raise BadRequest("; ".join(problems), field="payload") from None
