"""Reading the support mailbox: every new message taken once, filed once (`mail_intake.ingest`), never lost.

The mailbox client (`mail.imap`) knows IMAP, `mail_intake` knows what a message means; this joins them, so it
lives with the other choreography. Two ways in, one pass:

- `poll_once` — connect, take what is new, log out: the `mail_intake` flow, every minute;
- `listen` — one connection for as long as the process lives (`relreq serve` runs it in a thread): take
  what is new, then IDLE until the server tells of a new message (or `poll_seconds` pass, or the server
  has no IDLE and we simply wait), and again; reconnects with backoff, stops when told.

Per message, ONE transaction: lock the cursor row, fetch the message, `ingest` it, advance the cursor,
commit; `\\Seen` after that. A crash anywhere before the commit leaves the cursor where it was, so the
next pass takes the message again; a crash after it at most leaves the message without `\\Seen`. `ingest`
files nothing for a Message-ID it has seen, which also makes a new UIDVALIDITY (the mailbox rebuilt;
everything is read again from the first UID) harmless. A message whose ingest fails stops the pass there
— the messages after it wait, none is skipped — and the failure is raised (the flow run fails, the
listener logs and retries). That is for failures a retry can fix (the database unreachable): a message
the database refuses whatever we do is held by `ingest`, so one hostile message cannot stop the mailbox.

Size: `ingest` holds a message over `max_message_bytes` unparsed, keeping its bytes for a duty manager to
file by hand, so such a message is fetched whole — up to `OVERSIZE_FACTOR` times that limit. Past that
(a server with no size limit of its own), only its first `max_message_bytes + 1` bytes are fetched and kept:
its headers (Message-ID, sender, subject) and enough for `ingest` to hold it as too large. `ingest` is told
it is truncated and its true size (the row keeps that size, and its reason says "truncated"; a duty
manager filing it gets its text, never a cut attachment); the whole message stays in the mailbox and a
warning names its UID and true size. A 2 GB message never sits in memory or in the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.orm import Session, sessionmaker

from release_requests.config import AppConfig
from release_requests.crashpoints import crash_point
from release_requests.db import transaction
from release_requests.errors import ConfigError
from release_requests.mail.imap import Mailbox, MailboxError, ensure_cursor, lock_cursor, parse_imap_url
from release_requests.settings import Settings
from release_requests.workflows.mail_intake import IngestResult, ingest

log = logging.getLogger(__name__)

OVERSIZE_FACTOR = 2  # a held message is kept whole up to twice max_message_bytes (see the module's docstring)
IDLE_RENEW_SECONDS = 10 * 60  # well under the 29 minutes after which a server may drop an idle client (RFC 2177)
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class PollResult:
    """What one pass took: `outcomes` counts `ingest`'s outcomes (`filed`, `held`, …) and `duplicate` (a
    Message-ID seen before); `uids` in the order taken. `busy`: another poller held the mailbox's cursor."""

    mailbox: str
    outcomes: dict[str, int] = field(default_factory=dict)
    uids: tuple[int, ...] = ()
    busy: bool = False


def poll_once(sessions: sessionmaker[Session], *, settings: Settings, config: AppConfig) -> PollResult:
    """One pass over RR_IMAP_URL's mailbox on a connection of its own. ConfigError when the URL is unset or
    wrong; MailboxError when the mailbox cannot be reached or read (nothing taken after that point is lost)."""
    if not settings.imap_url:
        raise ConfigError("RR_IMAP_URL is not set: there is no mailbox to read")
    with Mailbox(parse_imap_url(settings.imap_url)) as box:
        return take_new(box, sessions=sessions, config=config, samples_dir=settings.samples_dir)


def take_new(box: Mailbox, *, sessions: sessionmaker[Session], config: AppConfig, samples_dir: Path) -> PollResult:
    """Take every message past the cursor from an open mailbox, oldest first (see the module's docstring)."""
    key = box.target.key
    with transaction(sessions) as session:
        ensure_cursor(session, key=key, uidvalidity=box.uidvalidity)
        cursor = lock_cursor(session, key=key)
        if cursor is None:
            return PollResult(key, busy=True)
        if cursor.uidvalidity != box.uidvalidity:
            log.warning(
                "mailbox UIDVALIDITY changed: reading it again from its first message (seen Message-IDs file nothing)",
                extra={"mailbox": key, "uidvalidity": box.uidvalidity, "was": cursor.uidvalidity},
            )
            cursor.uidvalidity, cursor.last_uid, cursor.updated_at = box.uidvalidity, 0, func.now()
        last_uid = cursor.last_uid
    uids = box.uids_after(last_uid)
    sizes = box.sizes(uids)
    outcomes: Counter[str] = Counter()
    taken: list[int] = []
    for uid in uids:
        with transaction(sessions) as session:
            cursor = lock_cursor(session, key=key)
            if cursor is None:  # another poller is taking messages now: the rest is its to take
                return _done(PollResult(key, dict(outcomes), tuple(taken), busy=True))
            if cursor.uidvalidity != box.uidvalidity or cursor.last_uid >= uid:
                continue  # another poller took it between our search and now
            result = _ingest(session, box, uid=uid, size=sizes.get(uid, 0), config=config, samples_dir=samples_dir)
            if result is not None:  # None: expunged meanwhile, nothing to take
                outcomes["duplicate" if result.duplicate else result.outcome] += 1
            crash_point("mail:ingested")
            cursor.last_uid, cursor.updated_at = uid, func.now()
        taken.append(uid)
        box.mark_seen(uid)
    return _done(PollResult(key, dict(outcomes), tuple(taken)))


def _ingest(
    session: Session, box: Mailbox, *, uid: int, size: int, config: AppConfig, samples_dir: Path
) -> IngestResult | None:
    """Fetch one message and file it in the caller's transaction (see the module's docstring for its size)."""
    max_bytes = config.intake.email.max_message_bytes
    huge = size > OVERSIZE_FACTOR * max_bytes
    fetched = box.fetch(uid, size=size, first=max_bytes + 1 if huge else None)
    if fetched is None:
        return None
    if huge:
        log.warning(
            "mailbox: a %d-byte message: only its first %d bytes are kept (held); the whole one stays in the mailbox",
            size,
            max_bytes + 1,
            extra={"mailbox": box.target.key, "uid": uid, "size": size},
        )
    return ingest(
        session,
        raw=fetched.raw,
        source="imap",
        received_at=fetched.internaldate,
        config=config,
        samples_dir=samples_dir,
        size=size,
        truncated=huge,
    )


def _done(result: PollResult) -> PollResult:
    if result.uids:
        log.info(
            "mailbox: took %d message(s): %s",
            len(result.uids),
            ", ".join(f"{n} {outcome}" for outcome, n in sorted(result.outcomes.items())) or "none left",
            extra={"mailbox": result.mailbox, "uids": list(result.uids), "outcomes": result.outcomes},
        )
    return result


def listen(stop: threading.Event, *, sessions: sessionmaker[Session], settings: Settings, config: AppConfig) -> None:
    """Until `stop` is set: take what is new, then wait on IDLE (or sleep `poll_seconds` where the server has
    no IDLE), again and again on one connection. A lost or refused connection is logged at WARNING when the
    outage starts and when it ends, never per attempt, and retried with capped backoff; any other failure is
    logged with its traceback and retried the same way. ConfigError (a wrong RR_IMAP_URL) ends it: waiting
    cannot fix that."""
    target = parse_imap_url(settings.imap_url or "")
    poll_seconds = config.intake.email.poll_seconds
    failures, down_since = 0, None
    while not stop.is_set():
        try:
            with Mailbox(target) as box:
                if down_since is not None:
                    log.warning(
                        "mailbox: reconnected after %.1f s; catching up",
                        time.monotonic() - down_since,
                        extra={"mailbox": target.key},
                    )
                else:
                    log.info("mailbox: reading", extra={"mailbox": target.key, "idle": box.idle_supported})
                failures, down_since = 0, None
                while not stop.is_set():
                    take_new(box, sessions=sessions, config=config, samples_dir=settings.samples_dir)
                    if box.idle_supported:
                        box.idle(min(poll_seconds, IDLE_RENEW_SECONDS), stop)
                    else:
                        stop.wait(poll_seconds)
        except MailboxError as exc:
            if down_since is None:
                down_since = time.monotonic()
                log.warning(
                    "mailbox unreachable; retrying, at most every %.0f s",
                    MAX_BACKOFF_SECONDS,
                    extra={"mailbox": target.key, "error": str(exc)},
                )
        except Exception:
            down_since = down_since or time.monotonic()
            log.exception("mailbox: reading failed; retrying", extra={"mailbox": target.key})
        stop.wait(min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** min(failures, 10)))
        failures += 1
