"""The support mailbox over IMAP: where it is (`RR_IMAP_URL`), one connection to it, and the cursor of what
has been taken from it. No decisions about mail here: `workflows.mailbox` reads with this and files with
`workflows.mail_intake`.

`RR_IMAP_URL`: `imaps://user:password@host[:port]/MAILBOX` (TLS from the first byte, port 993; MAILBOX
defaults to INBOX), or `imap://…` (plain, port 143) to a loopback address only — a password never crosses
a network in the clear. User, password and mailbox are URL-encoded (`%40` for `@`); the query parameter
`cafile=/path/ca.pem` trusts a private CA. The password stays inside `ImapTarget` and the login: no repr,
error message or log line shows it. The mailbox's key (`user@host:port/MAILBOX`) names its cursor row.

The cursor (`mailbox_cursors`) is the last UID taken under the mailbox's UIDVALIDITY. It is read with
SELECT … FOR UPDATE SKIP LOCKED: whoever holds the row takes the next message, a second poller finds it
locked and leaves the mailbox to the first, so no UID is taken twice at once. `\\Seen` is set after the
commit, for people reading the same mailbox; the cursor, not the flag, says what was taken.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs, unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from release_requests.errors import ConfigError
from release_requests.mail.models import MailboxCursor
from release_requests.notifications.transports import is_loopback_host as loopback_host

log = logging.getLogger(__name__)

_SCHEMES = {"imaps": (True, 993), "imap": (False, 143)}
_EXPECTED = "RR_IMAP_URL: expected imaps://user:password@host[:port]/MAILBOX (or imap:// to a loopback address)"
SEEN = b"\\Seen"
# what a mailbox that cannot be reached or read raises (TLS and timeouts are OSErrors; imaplib's errors are
# IMAPClientError); anything else is a bug and shows as itself
_FAILURES = (IMAPClientError, OSError, EOFError)


@dataclass(frozen=True)
class ImapTarget:
    """Where the mailbox is and how to log in; its repr and str leave the password out."""

    host: str
    port: int
    tls: bool
    user: str
    password: str = field(repr=False)
    mailbox: str = "INBOX"
    cafile: str | None = None

    @property
    def key(self) -> str:
        """The cursor's key and the mailbox's name in logs: `user@host:port/MAILBOX`."""
        return f"{self.user}@{self.host}:{self.port}/{self.mailbox}"

    def __str__(self) -> str:
        return f"{'imaps' if self.tls else 'imap'}://{self.key}"


def parse_imap_url(url: str) -> ImapTarget:
    """The target `url` names; ConfigError (naming the scheme or the host, never the password) if it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # a stray `/`, `?` or `#` in an unencoded password lands here: never echo it
    except ValueError:
        raise ConfigError(f"{_EXPECTED}; the port or the user:password part does not parse (URL-encode them)") from None
    if "@" in parts.path + parts.query + parts.fragment:  # `/`, `?` or `#` in an unencoded password: never echo it
        raise ConfigError(f"{_EXPECTED}; an @ after the host: URL-encode the user, password and mailbox (%40 for @)")
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ConfigError(f"{_EXPECTED}, got {url.split('://', 1)[0] + '://…' if '://' in url else 'no scheme'}")
    tls, default_port = _SCHEMES[parts.scheme]
    if not tls and not loopback_host(parts.hostname):
        raise ConfigError(
            f"{_EXPECTED}: plain imap:// would send the password in the clear to {parts.hostname}; use imaps://"
        )
    if not parts.username or not parts.password:
        raise ConfigError(f"{_EXPECTED}: the user and the password are both required")
    query = parse_qs(parts.query, keep_blank_values=True)
    if unknown := sorted(set(query) - {"cafile"}):
        raise ConfigError(f"RR_IMAP_URL: unknown parameter {', '.join(unknown)} (only cafile=/path/ca.pem)")
    cafile = query.get("cafile", [None])[0]
    if cafile is not None and not os.path.isfile(cafile):
        raise ConfigError(f"RR_IMAP_URL: cafile {cafile} is not a file")
    return ImapTarget(
        host=parts.hostname,
        port=port or default_port,
        tls=tls,
        user=unquote(parts.username),
        password=unquote(parts.password),
        mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
        cafile=cafile,
    )


class MailboxError(Exception):
    """The mailbox could not be reached or read (refused login, no such mailbox, TLS, connection lost):
    worth trying again later. The message names the mailbox's key, never the password."""


@dataclass(frozen=True)
class Fetched:
    uid: int
    raw: bytes  # the whole message, or only its first bytes when asked (see `Mailbox.fetch`)
    internaldate: datetime | None  # when the message reached the server (aware)
    size: int  # RFC822.SIZE: the size of the whole message


class Mailbox:
    """One logged-in connection with the target's mailbox SELECTed: `with Mailbox(target) as box: …`.

    Every IMAP or network failure leaves as a `MailboxError`; the connection is then useless (close it)."""

    def __init__(self, target: ImapTarget, *, timeout: float = 30) -> None:
        self.target = target
        self.timeout = timeout
        self.client: IMAPClient | None = None
        self.uidvalidity: int | None = None

    def __enter__(self) -> Mailbox:
        t = self.target
        try:
            context = ssl.create_default_context(cafile=t.cafile) if t.tls else None
            self.client = IMAPClient(t.host, port=t.port, ssl=t.tls, ssl_context=context, timeout=self.timeout)
            self.client.normalise_times = False  # INTERNALDATE as the server's aware time, not local naive
            self.client.login(t.user, t.password)
            selected = self.client.select_folder(t.mailbox)
        except LoginError as exc:
            self.close()
            said = self._said(exc)
            raise MailboxError(f"IMAP login to {t} refused ({said}): check RR_IMAP_URL's user and password") from None
        except _FAILURES as exc:
            self.close()
            raise self._error("open", exc) from None
        except Exception:
            self.close()
            raise
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            # imaplib closes the socket whatever the server answers; a connection already gone has no answer
            with contextlib.suppress(*_FAILURES):
                client.logout()

    def _said(self, exc: BaseException) -> str:
        """An exception's text without bytes-literal noise (`b'[AUTHENTICATIONFAILED] …'`) and, whatever a server
        or library put in it, without the password."""
        text = str(exc)
        if len(text) > 2 and text[:2] in ("b'", 'b"') and text[-1] == text[1]:
            text = text[2:-1]
        return text.replace(self.target.password, "[password]") if self.target.password else text

    def _error(self, doing: str, exc: BaseException) -> MailboxError:
        return MailboxError(f"IMAP {self.target}: {doing} failed: {type(exc).__name__}: {self._said(exc)}")

    @property
    def idle_supported(self) -> bool:
        return self.client is not None and self.client.has_capability("IDLE")

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than `last_uid`, ascending (`UID n:*` also answers the highest UID when n is past it)."""
        try:
            self.client.noop()  # without IDLE the server tells of new messages at a command
            uids = self.client.search(["UID", f"{last_uid + 1}:*"])
        except _FAILURES as exc:
            raise self._error("search", exc) from None
        return sorted(uid for uid in uids if uid > last_uid)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        if not uids:
            return {}
        try:
            return {uid: int(data[b"RFC822.SIZE"]) for uid, data in self.client.fetch(uids, ["RFC822.SIZE"]).items()}
        except _FAILURES as exc:
            raise self._error("fetch sizes", exc) from None

    def fetch(self, uid: int, *, size: int, first: int | None = None) -> Fetched | None:
        """The message (BODY.PEEK[]: fetching does not set `\\Seen`) and its INTERNALDATE, or only its `first`
        bytes; None if it was expunged meanwhile. `size` is its RFC822.SIZE (from `sizes`)."""
        item = "BODY.PEEK[]" if first is None else f"BODY.PEEK[]<0.{first}>"
        try:
            data = self.client.fetch([uid], [item, "INTERNALDATE"]).get(uid)
        except _FAILURES as exc:
            raise self._error(f"fetch UID {uid}", exc) from None
        raw = next((value for key, value in (data or {}).items() if key.startswith(b"BODY[]")), None)
        if raw is None:
            return None
        return Fetched(uid=uid, raw=bytes(raw), internaldate=data.get(b"INTERNALDATE"), size=size)

    def mark_seen(self, uid: int) -> bool:
        """Set `\\Seen` (for people reading the mailbox too); False, logged, when the server did not take it."""
        try:
            self.client.add_flags([uid], [SEEN], silent=True)
            return True
        except _FAILURES as exc:  # best effort: the cursor, not the flag, says what was taken
            log.warning(
                "could not mark a taken message \\Seen",
                extra={"mailbox": self.target.key, "uid": uid, "error": str(self._error("store", exc))},
            )
            return False

    def idle(self, seconds: float, stop: threading.Event) -> None:
        """IDLE until the server tells of a change, `seconds` pass or `stop` (a threading.Event) is set, looking at
        `stop` every second. Callers keep `seconds` well under the 29 minutes after which a server may drop an
        idle client (RFC 2177)."""
        deadline = time.monotonic() + seconds
        try:
            self.client.idle()
            try:
                while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                    if self.client.idle_check(timeout=min(left, 1.0)):
                        break  # EXISTS, EXPUNGE, FETCH…: poll now
            finally:
                self.client.idle_done()
        except _FAILURES as exc:
            raise self._error("IDLE", exc) from None


# --- the cursor -----------------------------------------------------------------------------------


def ensure_cursor(session: Session, *, key: str, uidvalidity: int) -> None:
    """The mailbox's cursor row exists (a new mailbox starts before its first UID)."""
    session.execute(
        insert(MailboxCursor).values(mailbox=key, uidvalidity=uidvalidity, last_uid=0).on_conflict_do_nothing()
    )


def lock_cursor(session: Session, *, key: str) -> MailboxCursor | None:
    """The cursor row, locked until the transaction ends; None while another poller holds it (SKIP LOCKED)."""
    return session.scalars(
        select(MailboxCursor).where(MailboxCursor.mailbox == key).with_for_update(skip_locked=True)
    ).one_or_none()
