"""Talking to Slack (slack-sdk Web API) and to an SMTP server, with every failure sorted into two kinds.

A `SendError` is *permanent* when trying again cannot help (refused token, unknown channel, an address
that is not an address, a refused login) and *transient* otherwise (rate limit, 5xx, dropped connection,
SMTP outage); a rate limit carries Slack's Retry-After. Nothing here blocks or sleeps: the deliverer
decides when to try again.

SMTP URL (`RR_SMTP_URL`): `smtp://[user:password@]host[:port]` (plain, port 25),
`smtp+starttls://…` (STARTTLS, port 587), `smtps://…` (TLS from the first byte, port 465); the query
parameter `cafile=/path/ca.pem` trusts a private CA (a test server's self-signed certificate).
User and password are URL-encoded (`%40` for `@`).
"""

from __future__ import annotations

import http.client
import math
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import parse_qs, unquote, urlsplit

from email_validator import EmailNotValidError, validate_email
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from release_requests.errors import ConfigError
from release_requests.notifications.render import SLACK_EVENT_TYPE, Rendered

MESSAGE_ID_DOMAIN = "release-requests"
# Slack errors that no retry can fix; anything else (5xx, unknown errors) is retried with backoff.
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "user_not_found",
        "invalid_blocks",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "msg_too_long",
        "no_text",
        "invalid_arguments",
        "cant_update_message",
        "message_not_found",
        "restricted_action",
    }
)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


class SendError(Exception):
    def __init__(self, message: str, *, permanent: bool, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


def message_id(notification_id: str) -> str:
    """The same notice always has the same Message-ID, so a resend after a crash is collapsed by mail clients."""
    return f"<{notification_id}@{MESSAGE_ID_DOMAIN}>"


class SlackSender:
    """Posts, finds and updates messages; channel names are resolved to ids once per process."""

    def __init__(self, *, token: str, base_url: str | None = None, timeout: int = 10) -> None:
        kwargs = {"base_url": base_url} if base_url else {}
        # no retry handlers: a retry hidden inside the client could post twice; the outbox decides when to retry
        self.client = WebClient(token=token, timeout=timeout, retry_handlers=[], **kwargs)
        self._ids: dict[str, str] = {}

    def _call(self, method: str, **kwargs) -> dict:
        """Call a WebClient method (`chat_postMessage`); errors name the API method (`chat.postMessage`)."""
        api_method = method.replace("_", ".", 1)
        try:
            return getattr(self.client, method)(**kwargs).data
        except SlackApiError as exc:
            response = exc.response
            error = response.get("error", "") if isinstance(response.data, dict) else ""
            if response.status_code == 429:
                header = response.headers.get("Retry-After", response.headers.get("retry-after", "1"))
                retry_after = math.ceil(float(header))  # whole seconds, as Slack sends them
                raise SendError(
                    f"Slack {api_method}: rate limited, retry after {retry_after} s",
                    permanent=False,
                    retry_after=retry_after,
                ) from None
            detail = error or f"HTTP {response.status_code}"
            raise SendError(f"Slack {api_method}: {detail}", permanent=error in PERMANENT_SLACK_ERRORS) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, dropped, timed out, not JSON
            raise SendError(f"Slack {api_method}: {type(exc).__name__}: {exc}", permanent=False) from None

    def channel_id(self, recipient: str) -> str:
        """`C…`/`G…`/`D…` ids as they are; a user id → their direct-message channel; a name → its id."""
        name = recipient.removeprefix("#")
        if _CHANNEL_ID.match(name):
            return name
        if name not in self._ids:
            if _USER_ID.match(name):
                self._ids[name] = self._call("conversations_open", users=name)["channel"]["id"]
            else:
                self._ids[name] = self._find_channel(name)
        return self._ids[name]

    def _find_channel(self, name: str) -> str:
        cursor = None
        while True:
            page = self._call(
                "conversations_list",
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=200,
                cursor=cursor,
            )
            for channel in page.get("channels", []):
                if channel.get("name") == name:
                    return channel["id"]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                raise SendError(f"Slack: channel #{name} not found (or the app is not in it)", permanent=True)

    def find_posted(self, *, channel: str, notification_id: str, since: datetime) -> str | None:
        """The ts of a message this notice already posted (its metadata carries the id), or None."""
        cursor = None
        while True:
            page = self._call(
                "conversations_history",
                channel=channel,
                oldest=f"{since.timestamp():.6f}",
                limit=200,
                include_all_metadata=True,
                cursor=cursor,
            )
            for message in page.get("messages", []):
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == SLACK_EVENT_TYPE and payload.get("notification_id") == notification_id:
                    return message["ts"]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    def post(self, *, channel: str, rendered: Rendered, notification_id: str, request_id: str | None) -> str:
        data = self._call(
            "chat_postMessage",
            channel=channel,
            text=rendered.slack_text,
            blocks=rendered.blocks,
            unfurl_links=False,
            metadata={
                "event_type": SLACK_EVENT_TYPE,
                "event_payload": {"notification_id": notification_id, "request_id": request_id or ""},
            },
        )
        return data["ts"]

    def update(self, *, channel: str, ts: str, rendered: Rendered) -> None:
        self._call("chat_update", channel=channel, ts=ts, text=rendered.slack_text, blocks=rendered.blocks)


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    security: str  # plain | starttls | tls
    user: str | None
    password: str | None
    cafile: str | None


_SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
        raise ConfigError(f"RR_SMTP_URL: expected smtp://, smtp+starttls:// or smtps://host[:port], got {scheme}://…")
    security, default_port = _SCHEMES[parts.scheme]
    cafile = parse_qs(parts.query).get("cafile", [None])[0]
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or default_port,
        security=security,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        cafile=cafile,
    )


def check_address(address: str) -> str:
    """The normalized address, or a permanent SendError saying why it is not one."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise SendError(f"e-mail address '{address}' is not valid: {exc}", permanent=True) from None


def build_email(
    *,
    notification_id: str,
    request_id: str | None,
    rendered: Rendered,
    sender: str,
    to: str,
    language: str,
    date: datetime,
) -> EmailMessage:
    msg = EmailMessage()
    msg["Message-ID"] = message_id(notification_id)
    if request_id:  # every notice about one request threads under the same root in mail clients
        msg["References"] = f"<{request_id}@{MESSAGE_ID_DOMAIN}>"
    msg["Date"] = format_datetime(date)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = rendered.subject
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    msg["Content-Language"] = language  # after the parts: set_content() drops Content-* headers
    return msg


class SmtpSender:
    """One connection per message: simple, and an outage between messages costs nothing to recover from."""

    def __init__(self, url: str, *, timeout: int = 10) -> None:
        self.target = parse_smtp_url(url)
        self.timeout = timeout

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.target.cafile)

    def send(self, message: EmailMessage) -> None:
        t = self.target
        try:
            if t.security == "tls":
                smtp = smtplib.SMTP_SSL(t.host, t.port, timeout=self.timeout, context=self._tls())
            else:
                smtp = smtplib.SMTP(t.host, t.port, timeout=self.timeout)
            with smtp:
                if t.security == "starttls":
                    smtp.starttls(context=self._tls())
                if t.user:
                    smtp.login(t.user, t.password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise SendError(f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}", permanent=True) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise SendError(f"SMTP server: {exc}", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise SendError(f"SMTP recipient refused: {code} {_text(text)}", permanent=code >= 500) from None
        except smtplib.SMTPResponseException as exc:
            raise SendError(f"SMTP: {exc.smtp_code} {_text(exc.smtp_error)}", permanent=exc.smtp_code >= 500) from None
        except ssl.SSLCertVerificationError as exc:
            raise SendError(f"SMTP TLS: {exc.verify_message}", permanent=True) from None
        except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timed out, disconnected
            message = f"SMTP {t.host}:{t.port} unavailable: {type(exc).__name__}: {exc}"
            raise SendError(message, permanent=False) from None


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
