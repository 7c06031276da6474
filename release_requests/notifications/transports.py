"""How a notice leaves: one `Transport` per outbox channel (`slack`, `email`, `webhook`, `pager`), found by name.

The deliverer knows nothing of Slack or SMTP: it claims a row, renders it into a `Notice`, and hands it to
`transports[row.channel].send(notice)`, which returns a `Delivered` (the provider's id for the message) or
raises a `SendError` of one of two kinds:

- `PermanentError` — trying again cannot help (refused token, unknown channel, an address that is not an
  address, a refused login, a 4xx from the webhook);
- `TransientError` — try later (rate limit, 5xx, dropped connection, timeout, SMTP outage); a rate limit
  carries the far side's Retry-After. Nothing here blocks or sleeps: the deliverer decides when to try again.

A transport that is not configured (its `RR_*` setting unset) is a `NotConfigured` with the reason: the
deliverer records its notices once as `skipped` — not sent, not retried, no alert. `configure()` builds the
registry from the settings; `transport_status()` says, for /healthz, which transport is configured.

SMTP URL (`RR_SMTP_URL`): `smtp://[user:password@]host[:port]` (plain, port 25),
`smtp+starttls://…` (STARTTLS, port 587), `smtps://…` (TLS from the first byte, port 465); the query
parameter `cafile=/path/ca.pem` trusts a private CA (a test server's self-signed certificate).
User and password are URL-encoded (`%40` for `@`).

Webhook (`RR_WEBHOOK_URL`, `RR_WEBHOOK_SECRET`): a POST of a JSON document per notice, signed with
HMAC-SHA256 over `{timestamp}.{body}` (header `X-RR-Signature: v1=<hex>`, `X-RR-Timestamp`). Only
`https://` URLs, or `http://` to a loopback address; the URL comes from the settings only, never from a row.

Pager (`RR_PAGING_WEBHOOK_URL`, `RR_PAGING_ROUTING_KEY`): the paging service's Events API v2 endpoint (PagerDuty's
`https://events.pagerduty.com/v2/enqueue`, or any service that speaks it) and the integration's routing key.
The same URL rules as the webhook; the key goes in each event's body and nowhere else (docs/paging.md).
"""

from __future__ import annotations

import base64
import email.policy
import hashlib
import hmac
import http.client
import ipaddress
import json
import math
import re
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
from email_validator import EmailNotValidError, validate_email
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from release_requests.errors import ConfigError
from release_requests.notifications.render import COMPOSED, SLACK_EVENT_TYPE, Rendered

if TYPE_CHECKING:
    from release_requests.config import AppConfig
    from release_requests.settings import Settings

MESSAGE_ID_DOMAIN = "release-requests"
WEBHOOK_TYPE = "rr_notification"  # the webhook document's `type`, as in Slack message metadata
WEBHOOK_VERSION = 1
WEBHOOK_USER_AGENT = "release-requests-webhook/1"
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
_HISTORY_MARGIN = timedelta(minutes=1)  # a resend looks back from the row's creation, minus clock skew


# --- the interface --------------------------------------------------------------------------------


class SendError(Exception):
    """A send that did not happen. Raise `PermanentError` or `TransientError`; `permanent` tells them apart."""

    def __init__(self, message: str, *, permanent: bool, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class PermanentError(SendError):
    """Trying again cannot help: the notice goes to `dead` at once (and the team is alerted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class TransientError(SendError):
    """Try again later: after the backoff, or exactly `retry_after` seconds later when the far side said so."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message, permanent=False, retry_after=retry_after)


@dataclass(frozen=True)
class Notice:
    """A claimed outbox row, rendered, as a transport needs it (no ORM object crosses the transaction)."""

    id: str
    attempt: int  # 1 for the first attempt; > 1: an earlier attempt may have reached the far side
    event: str
    audience: str  # customer | internal
    channel: str  # the outbox channel: the name of the transport that sends it
    recipient: str  # channel-specific: a Slack channel/user, an e-mail address, the webhook's name
    language: str
    request_id: str | None
    created_at: datetime
    rendered: Rendered
    context: dict = field(default_factory=dict)  # the row's context (Slack: `update_ts` edits that message)
    request: dict = field(default_factory=dict)  # the request as of now: id, title, status, severity, kind, customer
    sla: dict | None = None
    status_url: str = ""


@dataclass(frozen=True)
class Delivered:
    external_id: str  # the far side's id for the message: `channel/ts`, a Message-ID, the webhook's X-Request-Id
    already_delivered: bool = False  # an earlier attempt had delivered it (found, not sent again)


@runtime_checkable
class Transport(Protocol):
    """One way out. `name` is the outbox channel it serves; `configured` False means its notices are skipped
    (never sent, never retried, no alert) and `reason` says why (`RR_SLACK_TOKEN unset`)."""

    name: str
    configured: bool
    reason: str

    def send(self, notice: Notice) -> Delivered:
        """Deliver `notice` or raise PermanentError / TransientError. May be called again for the same notice
        (a crash, a timeout): make that harmless (look before resending, or a stable id the far side dedupes)."""
        ...


class NotConfigured:
    """A transport whose settings are absent: nothing is sent through it."""

    configured = False

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def send(self, notice: Notice) -> Delivered:
        raise PermanentError(f"{self.name} is not configured: {self.reason}")


# --- Slack ----------------------------------------------------------------------------------------


class SlackTransport:
    """Posts, finds and updates messages (slack-sdk Web API); channel names are resolved to ids once per process.

    Every message carries metadata with the notification id, so an attempt after the first looks for it in
    the channel's history before posting again."""

    name = "slack"
    configured = True
    reason = "configured"

    def __init__(self, *, token: str, base_url: str | None = None, timeout: int = 10) -> None:
        kwargs = {"base_url": base_url} if base_url else {}
        # no retry handlers: a retry hidden inside the client could post twice; the outbox decides when to retry
        self.client = WebClient(token=token, timeout=timeout, retry_handlers=[], **kwargs)
        self._ids: dict[str, str] = {}

    @staticmethod
    def check(settings: Settings) -> str | None:
        """Why this transport is not configured (None: it is)."""
        return None if settings.slack_token else "RR_SLACK_TOKEN unset"

    @classmethod
    def from_settings(cls, settings: Settings, config: AppConfig) -> SlackTransport | NotConfigured:
        if reason := cls.check(settings):
            return NotConfigured(cls.name, reason)
        timeout = config.notifications.delivery.timeout_seconds
        return cls(token=settings.slack_token, base_url=settings.slack_base_url, timeout=timeout)

    def send(self, notice: Notice) -> Delivered:
        channel = self.channel_id(notice.recipient)
        update_ts = notice.context.get("update_ts")
        if update_ts:  # edit that message (chat.update) instead of posting a new one
            self.update(channel=channel, ts=update_ts, rendered=notice.rendered)
            return Delivered(f"{channel}/{update_ts}")
        if notice.attempt > 1:
            since = notice.created_at - _HISTORY_MARGIN
            ts = self.find_posted(channel=channel, notification_id=notice.id, since=since)
            if ts is not None:
                return Delivered(f"{channel}/{ts}", already_delivered=True)
        ts = self.post(
            channel=channel, rendered=notice.rendered, notification_id=notice.id, request_id=notice.request_id
        )
        return Delivered(f"{channel}/{ts}")

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
                raise TransientError(
                    f"Slack {api_method}: rate limited, retry after {retry_after} s", retry_after=retry_after
                ) from None
            detail = error or f"HTTP {response.status_code}"
            if error in PERMANENT_SLACK_ERRORS:
                raise PermanentError(f"Slack {api_method}: {detail}") from None
            raise TransientError(f"Slack {api_method}: {detail}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, dropped, timed out, not JSON
            raise TransientError(f"Slack {api_method}: {type(exc).__name__}: {exc}") from None

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
                raise PermanentError(f"Slack: channel #{name} not found (or the app is not in it)")

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


# --- e-mail (SMTP) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    security: str  # plain | starttls | tls
    user: str | None
    password: str | None = field(repr=False)  # a target in a log line or a traceback never shows it
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


def message_id(notification_id: str) -> str:
    """The same notice always has the same Message-ID, so a resend after a crash is collapsed by mail clients."""
    return f"<{notification_id}@{MESSAGE_ID_DOMAIN}>"


def check_address(address: str) -> str:
    """The normalized address, or a PermanentError saying why it is not one."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PermanentError(f"e-mail address '{address}' is not valid: {exc}") from None


_WORD_BYTES = 42  # UTF-8 bytes per encoded-word: 56 base64 characters, so each folded line stays under 78


def encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 encoded-words that together hold every character, spaces included, never splitting
    a character across two words."""
    chunks, current = [], b""
    for char in text:
        encoded = char.encode()
        if current and len(current) + len(encoded) > _WORD_BYTES:
            chunks.append(current)
            current = b""
        current += encoded
    chunks.append(current)
    return [f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=" for chunk in chunks]


class _Subject(UnstructuredHeader):
    """A subject that reads the same after folding. CPython's folder (3.11) splits a long non-ASCII subject
    into encoded-words at a space and leaves that space between them, where RFC 2047 says readers drop it:
    "ваш запрос" arrived as "вашзапрос". Here every character, spaces included, is inside an encoded-word,
    so the folding whitespace between them is the only whitespace readers drop."""

    def fold(self, *, policy) -> str:
        value = str(self)
        if value.isascii():
            return super().fold(policy=policy)
        return f"{self.name}: " + f"{policy.linesep} ".join(encoded_words(value)) + policy.linesep


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("subject", _Subject)
MAIL_POLICY = email.policy.default.clone(header_factory=_HEADERS)  # e-mails we write


def request_root(request_id: str) -> str:
    """The Message-ID every notice about one request refers to: mail clients thread them under it, and a
    customer's reply that keeps it in References finds its request again (e-mail intake)."""
    return f"<{request_id}@{MESSAGE_ID_DOMAIN}>"


# A Message-ID we accept from anyone (a customer's message, intake) and write into our own headers: printable
# ASCII without < or > (so no NUL, no line break, nothing a header or a Postgres index refuses), at most 250.
MESSAGE_ID_PATTERN = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>")


def build_email(
    *,
    notification_id: str,
    request_id: str | None,
    rendered: Rendered,
    sender: str,
    to: str,
    language: str,
    date: datetime,
    in_reply_to: str | None = None,
    auto_submitted: str = "auto-generated",
) -> EmailMessage:
    """One notice as an e-mail. Every message says it was sent by a machine (`Auto-Submitted`, RFC 3834, and
    Microsoft's `X-Auto-Response-Suppress`), so that out-of-office replies and other robots do not answer
    it and two mail robots never talk to each other. `in_reply_to` (a customer's Message-ID, from intake)
    makes the notice a reply to their message; anything that is not one Message-ID is left out."""
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Message-ID"] = message_id(notification_id)
    references = [request_root(request_id)] if request_id else []  # every notice about one request threads
    if in_reply_to and MESSAGE_ID_PATTERN.fullmatch(in_reply_to):
        msg["In-Reply-To"] = in_reply_to
        references.append(in_reply_to)
    if references:
        msg["References"] = " ".join(references)
    msg["Auto-Submitted"] = auto_submitted
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Date"] = format_datetime(date)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = rendered.subject
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    for attachment in rendered.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename)
    msg["Content-Language"] = language  # after the parts: set_content() drops Content-* headers
    return msg


class SmtpTransport:
    """E-mail over SMTP, one connection per message: simple, and an outage between messages costs nothing to
    recover from. The Message-ID is derived from the notification id, so a resend is the same message."""

    name = "email"
    configured = True
    reason = "configured"

    def __init__(self, url: str, *, sender: str, timeout: int = 10) -> None:
        self.target = parse_smtp_url(url)
        self.sender = sender
        self.timeout = timeout

    @staticmethod
    def check(settings: Settings) -> str | None:
        """Why this transport is not configured (None: it is); ConfigError for a URL that is not an SMTP URL."""
        if not settings.smtp_url:
            return "RR_SMTP_URL unset"
        parse_smtp_url(settings.smtp_url)
        return None

    @classmethod
    def from_settings(cls, settings: Settings, config: AppConfig) -> SmtpTransport | NotConfigured:
        if reason := cls.check(settings):
            return NotConfigured(cls.name, reason)
        notifications = config.notifications
        return cls(
            settings.smtp_url, sender=notifications.email.from_address, timeout=notifications.delivery.timeout_seconds
        )

    def send(self, notice: Notice) -> Delivered:
        message = build_email(
            notification_id=notice.id,
            request_id=notice.request_id,
            rendered=notice.rendered,
            sender=self.sender,
            to=check_address(notice.recipient),
            language=notice.language,
            date=notice.created_at,
            in_reply_to=notice.context.get("in_reply_to"),
            # a reply to a person's message (intake's answer to an unknown sender) is an auto-reply (RFC 3834)
            auto_submitted="auto-replied" if notice.context.get("auto_replied") else "auto-generated",
        )
        self.submit(message)
        return Delivered(message["Message-ID"])

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.target.cafile)

    def submit(self, message: EmailMessage) -> None:
        """Hand one message to the SMTP server."""
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
            raise PermanentError(f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"SMTP server: {exc}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise SendError(f"SMTP recipient refused: {code} {_text(text)}", permanent=code >= 500) from None
        except smtplib.SMTPResponseException as exc:
            raise SendError(f"SMTP: {exc.smtp_code} {_text(exc.smtp_error)}", permanent=exc.smtp_code >= 500) from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(f"SMTP TLS: {exc.verify_message}") from None
        except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timed out, disconnected
            raise TransientError(f"SMTP {t.host}:{t.port} unavailable: {type(exc).__name__}: {exc}") from None


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# --- webhook --------------------------------------------------------------------------------------


def check_webhook_url(url: str, *, setting: str = "RR_WEBHOOK_URL") -> str:
    """`url` if it is https://host…, or http:// to a loopback address (tests, a local relay); ConfigError if not,
    naming `setting` (the generic webhook's, or the pager's `RR_PAGING_WEBHOOK_URL`).

    The message names the scheme and host only: the URL may carry a token in its path or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host and is_loopback_host(host):
        return url
    shown = f"{parts.scheme or 'no scheme'}://{host}" if host else (parts.scheme or "no scheme")
    raise ConfigError(
        f"{setting}: expected https://host/…, or http:// to a loopback address (127.0.0.1, ::1, localhost), "
        f"got {shown}…"
    )


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address: where a plain-text URL (http://, imap://) may point."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256(secret, `{timestamp}.` + body): the `X-RR-Signature` header."""
    return "v1=" + hmac.new(secret.encode(), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def webhook_document(notice: Notice) -> dict:
    """What the webhook receives for one notice (documented in docs/notifications.md, "Webhook")."""
    return {
        "type": WEBHOOK_TYPE,
        "version": WEBHOOK_VERSION,
        "notification_id": notice.id,
        "event": notice.event,
        "audience": notice.audience,
        "attempt": notice.attempt,
        "queued_at": notice.created_at.isoformat(),
        "request": {**notice.request, "status_url": notice.status_url} if notice.request else None,
        "sla": notice.sla,
        "subject": notice.rendered.subject,
        "text": notice.rendered.text,
        "context": {k: v for k, v in notice.context.items() if k != COMPOSED},  # a report goes by e-mail
    }


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isascii() and value.isdigit() else None


class _PostTransport:
    """What the webhook and the pager share: a URL and a secret from two settings (the subclass names them:
    `url_field`, `secret_field`, whose environment variables every message names), the URL checked (https, or
    http to loopback), an HTTP client that follows no redirects, and how an answer that is not 2xx is judged.
    A subclass takes the secret as its second argument and says why it must not be empty."""

    name: str
    url_field: str  # the Settings field of the URL: RR_<FIELD> in the environment
    secret_field: str
    configured = True
    reason = "configured"

    def __init__(self, url: str, *, timeout: float, cafile: str | None) -> None:
        self.url = check_webhook_url(url, setting=self.setting(self.url_field))
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cafile) if cafile else True
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, verify=verify)

    @staticmethod
    def setting(field: str) -> str:
        """The environment variable of a Settings field (RR_ prefix)."""
        return f"RR_{field.upper()}"

    @classmethod
    def check(cls, settings: Settings) -> str | None:
        """Why this transport is not configured (None: it is); ConfigError for a URL it refuses."""
        url, secret = getattr(settings, cls.url_field), getattr(settings, cls.secret_field)
        if not url:
            return f"{cls.setting(cls.url_field)} unset"
        check_webhook_url(url, setting=cls.setting(cls.url_field))
        return None if (secret or "").strip() else f"{cls.setting(cls.secret_field)} unset"

    @classmethod
    def from_settings(cls, settings: Settings, config: AppConfig) -> _PostTransport | NotConfigured:
        if reason := cls.check(settings):
            return NotConfigured(cls.name, reason)
        timeout = config.notifications.delivery.timeout_seconds
        return cls(getattr(settings, cls.url_field), getattr(settings, cls.secret_field), timeout=timeout)

    @staticmethod
    def _refused(response: httpx.Response, detail: str) -> SendError:
        """A non-2xx answer, `detail` saying what it was: 429 transient (honouring Retry-After), other 4xx but 408
        permanent (the far side refuses this document), anything else — 408, 3xx, 5xx — transient."""
        status = response.status_code
        if status == 429:
            retry_after = _retry_after(response)
            suffix = f", retry after {retry_after} s" if retry_after is not None else ""
            return TransientError(f"{detail}{suffix}", retry_after=retry_after)
        if 400 <= status < 500 and status != 408:
            return PermanentError(detail)
        return TransientError(detail)


class WebhookTransport(_PostTransport):
    """A signed JSON POST per notice to the one configured URL (the team's relay, later the pager).

    2xx: delivered. 4xx except 408 and 429: permanent (the receiver refuses this document). 429: transient,
    honouring Retry-After. Anything else — 408, 3xx (redirects are not followed), 5xx, timeouts, refused or
    dropped connections — transient. The receiver dedupes on `X-RR-Notification-Id`: after a crash or a
    timeout the same notice may arrive twice, with the same id."""

    name = "webhook"
    url_field, secret_field = "webhook_url", "webhook_secret"

    def __init__(self, url: str, secret: str, *, timeout: float = 10, cafile: str | None = None) -> None:
        super().__init__(url, timeout=timeout, cafile=cafile)
        if not secret:
            raise ConfigError("RR_WEBHOOK_SECRET: empty; the webhook is never sent unsigned")
        self._secret = secret

    def send(self, notice: Notice) -> Delivered:
        body = json.dumps(webhook_document(notice), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": WEBHOOK_USER_AGENT,
            "X-RR-Notification-Id": notice.id,
            "X-RR-Event": notice.event,
            "X-RR-Timestamp": timestamp,
            "X-RR-Signature": webhook_signature(self._secret, timestamp, body),
        }
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientError(f"webhook: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise PermanentError(f"webhook TLS: certificate not trusted ({exc})") from None
            raise TransientError(f"webhook: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return Delivered(response.headers.get("X-Request-Id") or f"HTTP {status}")
        raise self._refused(response, f"webhook: HTTP {status} {response.reason_phrase}".rstrip())


# --- the pager (Events API v2) ------------------------------------------------------------------------

PAGER_SOURCE = "release-requests"  # the event's `payload.source` and `client`: who raised the alert
PAGER_USER_AGENT = "release-requests-pager/1"
PAGER_ACTIONS = ("trigger", "acknowledge", "resolve")
PAGER_SEVERITIES = {1: "critical", 2: "error", 3: "warning", 4: "info"}  # our severity → PD-CEF severity
PAGER_SUMMARY_LIMIT = 1024  # Events v2 refuses a longer `payload.summary`
PAGER_DEDUP_KEY_LIMIT = 255
_PAGER_ERROR_LIMIT = 500  # of the far side's words kept in `last_error`


def pager_event(notice: Notice, *, routing_key: str) -> dict:
    """The Events API v2 event for one `pager` outbox row (https://developer.pagerduty.com, "Send an Alert Event").

    The row's context says what to do (`action`: trigger | acknowledge | resolve) to which incident
    (`dedup_key`, one per request); a trigger also describes the incident from the context (severity, customer,
    who is paged at which step) and the rendered subject. A row that cannot make a valid event is a
    PermanentError: sending it again would be refused again."""
    context = notice.context
    action, dedup_key = context.get("action"), context.get("dedup_key")
    if action not in PAGER_ACTIONS:
        raise PermanentError(f"pager: the row's action {action!r} is not one of {', '.join(PAGER_ACTIONS)}")
    if not isinstance(dedup_key, str) or not 0 < len(dedup_key) <= PAGER_DEDUP_KEY_LIMIT:
        raise PermanentError(f"pager: the row has no dedup_key of 1–{PAGER_DEDUP_KEY_LIMIT} characters")
    event = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}
    if action != "trigger":
        return event  # acknowledge and resolve name the incident; anything else in them is ignored
    severity = context.get("severity", notice.request.get("severity"))
    if severity not in PAGER_SEVERITIES:
        raise PermanentError(f"pager: severity {severity!r} has no Events v2 severity")
    customer = str(context.get("customer") or notice.request.get("customer") or "")
    summary = notice.rendered.subject
    if len(summary) > PAGER_SUMMARY_LIMIT:
        summary = summary[: PAGER_SUMMARY_LIMIT - 1] + "…"
    event["payload"] = {
        "summary": summary,
        "source": PAGER_SOURCE,
        "severity": PAGER_SEVERITIES[severity],
        "timestamp": notice.created_at.isoformat(),  # when we decided to page, not when this attempt ran
        "component": str(notice.request.get("kind") or "request"),
        "group": customer,
        "class": f"severity {severity} request",
        "custom_details": {
            "request_id": notice.request_id,
            "customer": customer,
            "severity": severity,
            "step": context.get("step"),
            "paged": context.get("paged"),
        },
    }
    event["client"] = PAGER_SOURCE
    if notice.status_url:
        event["client_url"] = notice.status_url
        event["links"] = [{"href": notice.status_url, "text": f"Request {notice.request_id}"}]
    return event


def _answer(response: httpx.Response) -> dict:
    """The Events v2 answer (`status`, `message`, `dedup_key`, `errors`), or {} when the body is not one."""
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


class PagerTransport(_PostTransport):
    """The paging service (PagerDuty, or anything that speaks its Events API v2): one JSON event per `pager` row,
    POSTed to RR_PAGING_WEBHOOK_URL with the integration's routing key (RR_PAGING_ROUTING_KEY) in the body.

    Every event of one request carries the request's `dedup_key`, so the paging service keeps one incident
    per request: a trigger sent again after a crash or a timeout (the far side may have taken the first) is
    added to the open incident instead of opening another, and an acknowledge or a resolve sent twice changes
    nothing. That is what makes resending safe, so a resend is simply a send.

    Answers as the Events v2 documentation lists them: 2xx (202) delivered; 400 — and any other 4xx but 408
    and 429 (a wrong URL or key) — permanent, naming the far side's `errors`; 429 transient, honouring
    Retry-After; 408, 3xx (redirects are not followed), 5xx, timeouts, refused or dropped connections
    transient. The routing key is a secret: it is never in an error, a log line or the audit trail
    (whatever the far side says is scrubbed of it before it is recorded)."""

    name = "pager"
    url_field, secret_field = "paging_webhook_url", "paging_routing_key"

    def __init__(self, url: str, routing_key: str, *, timeout: float = 10, cafile: str | None = None) -> None:
        super().__init__(url, timeout=timeout, cafile=cafile)
        if not routing_key or not routing_key.strip():
            raise ConfigError("RR_PAGING_ROUTING_KEY: empty; the paging service routes events by it")
        self._routing_key = routing_key.strip()

    def __repr__(self) -> str:  # never the routing key
        return f"PagerTransport({urlsplit(self.url).hostname})"

    def _scrub(self, text: str) -> str:
        """`text` without the routing key (a receiver may quote the event back), cut to a readable length."""
        text = text.replace(self._routing_key, "[routing key]")
        return text if len(text) <= _PAGER_ERROR_LIMIT else text[: _PAGER_ERROR_LIMIT - 1] + "…"

    def send(self, notice: Notice) -> Delivered:
        event = pager_event(notice, routing_key=self._routing_key)
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": PAGER_USER_AGENT}
        action = event["event_action"]
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            # the far side may have taken it: the resend carries the same dedup_key, so it opens nothing new
            raise TransientError(f"pager {action}: timed out ({type(exc).__name__}), will resend") from None
        except httpx.TransportError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise PermanentError(self._scrub(f"pager TLS: certificate not trusted ({exc})")) from None
            raise TransientError(self._scrub(f"pager {action}: {type(exc).__name__}: {exc}")) from None
        status, answer = response.status_code, _answer(response)
        if 200 <= status < 300:
            external = str(answer.get("dedup_key") or f"HTTP {status}")
            return Delivered(self._scrub(external)[:200])
        detail = f"pager {action}: HTTP {status} {response.reason_phrase}".rstrip()
        said = [str(answer[k]) for k in ("status", "message") if isinstance(answer.get(k), str) and answer[k]]
        if said:
            detail += f": {' — '.join(said)}"
        errors = answer.get("errors")
        if isinstance(errors, list) and errors:
            detail += f" ({'; '.join(str(e) for e in errors[:5])})"
        raise self._refused(response, self._scrub(detail))


# --- the registry ---------------------------------------------------------------------------------

TRANSPORTS = (SlackTransport, SmtpTransport, WebhookTransport, PagerTransport)  # every outbox channel, by `name`


def configure(settings: Settings, config: AppConfig) -> dict[str, Transport]:
    """Every transport by channel name, configured or `NotConfigured`; a setting that is present but wrong
    (an `ftp://` SMTP URL, a plain-http webhook to another host) is a ConfigError."""
    return {cls.name: cls.from_settings(settings, config) for cls in TRANSPORTS}


def transport_status(settings: Settings) -> dict[str, str]:
    """For /healthz and the start-up warnings: `configured`, `not configured: RR_… unset`, or `invalid: …`
    per transport (from the settings alone: no client is built, nothing is contacted)."""
    status = {}
    for cls in TRANSPORTS:
        try:
            reason = cls.check(settings)
        except ConfigError as exc:
            status[cls.name] = f"invalid: {exc}"
            continue
        status[cls.name] = f"not configured: {reason}" if reason else "configured"
    return status


def unconfigured_warnings(transports: dict[str, Transport]) -> list[str]:
    """What a process says once at start about each transport it cannot use (never once per notice)."""
    return [
        f"notifications: {name} not configured ({t.reason}): its notices are skipped, not sent"
        for name, t in transports.items()
        if not t.configured
    ]
