"""Waking up on Postgres NOTIFY, for as long as the process lives — whatever happens to the database.

The segment dispatcher (`rr_segments`) and the notification deliverer (`rr_outbox`) both hold one
connection that LISTENs and call their work (`on_wake`) on every notification and on every poll tick.
`listen_forever` is that loop, written once:

- **Reconnects.** A lost connection (Postgres restarted, the backend terminated, the network gone) is
  retried with capped exponential backoff until it works again. Each outage is logged twice at WARNING —
  once when it starts, once when it ends — never once per attempt.
- **Catches up.** `on_wake` runs right after every LISTEN (at start and after each reconnect), so what was
  committed while nobody listened is handled at once rather than at the next poll or sweep.
- **Notices a silent death.** A connection quiet for a whole poll is checked (`SELECT 1`), and TCP
  keepalives are on, so one that died without a word (a half-open TCP socket) is replaced too.
- **Never dies.** No exception from the database or from `on_wake` ends the thread; only `stop` does
  (checked at least every `STOP_CHECK_SECONDS`).

`on_wake` may return how many seconds until it next has work (a retry falling due, say): the wait is then
shortened to that, never below `MIN_WAIT_SECONDS`; `None` means "nothing scheduled", i.e. `poll_seconds`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0
MIN_WAIT_SECONDS = 0.05  # a row due now but locked by another worker must not make the loop spin
STOP_CHECK_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 5
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}  # TCP only


def libpq_url(url: str) -> str:
    """A libpq URL (what psycopg takes) from a SQLAlchemy one (`postgresql+psycopg://…`); others unchanged."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Backoff:
    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap, self.next_delay = first, cap, first

    def __call__(self) -> float:
        delay, self.next_delay = self.next_delay, min(self.cap, self.next_delay * 2)
        return delay

    def reset(self) -> None:
        self.next_delay = self.first


def listen_forever(
    channel: str,
    on_wake: Callable[[], float | None],
    stop: threading.Event,
    *,
    poll_seconds: float,
    url: str | Callable[[], str],
    max_backoff: float = MAX_BACKOFF_SECONDS,
) -> None:
    """LISTEN on `channel` and call `on_wake` on every notification, every `poll_seconds` and after every
    (re)connection, until `stop` is set. `url` (SQLAlchemy or libpq form) may be a function, asked at each
    connection attempt (finding the database may itself fail while it is down). See the module's docstring
    for what it survives."""
    backoff = _Backoff(FIRST_BACKOFF_SECONDS, max(FIRST_BACKOFF_SECONDS, max_backoff))
    down_since: float | None = None  # monotonic start of the current outage
    while not stop.is_set():
        try:
            target = libpq_url(url() if callable(url) else url)
            conn = psycopg.connect(target, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS, **KEEPALIVES)
        except Exception as exc:
            if down_since is None:
                down_since = time.monotonic()
                log.warning(
                    "LISTEN %s: cannot connect (%s); retrying, at most every %.1f s",
                    channel,
                    _one_line(exc),
                    backoff.cap,
                )
            else:
                log.debug("LISTEN %s: still cannot connect (%s)", channel, _one_line(exc))
            stop.wait(backoff())
            continue
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            if down_since is not None:
                log.warning("LISTEN %s: reconnected after %.1f s; catching up", channel, time.monotonic() - down_since)
                down_since = None
            else:
                log.info("LISTEN %s: listening", channel)
            backoff.reset()
            _serve(conn, channel, on_wake, stop, poll_seconds)
        except Exception as exc:
            down_since = time.monotonic()
            if conn.broken or conn.closed:
                log.warning("LISTEN %s: connection lost (%s); reconnecting", channel, _one_line(exc))
            else:  # not the connection's fault: say what it was, then start afresh on a new connection
                log.warning("LISTEN %s: unexpected error; reconnecting", channel, exc_info=True)
        finally:
            conn.close()  # not `with conn`: that would roll back a broken connection and log a second warning
        stop.wait(backoff())  # returns at once when `stop` is set


def _serve(
    conn: psycopg.Connection, channel: str, on_wake: Callable[[], float | None], stop: threading.Event, poll: float
) -> None:
    """Wake, work, wait; returns when `stop` is set, raises when the connection fails."""
    checked = time.monotonic()
    while not stop.is_set():
        due_in = _wake(channel, on_wake)
        wait = poll if due_in is None else max(MIN_WAIT_SECONDS, min(poll, due_in))
        if _notified(conn, wait, stop):
            checked = time.monotonic()  # the connection just spoke
        elif not stop.is_set() and time.monotonic() - checked >= poll:
            conn.execute("SELECT 1")  # quiet for a whole poll: make sure the connection is still alive
            checked = time.monotonic()


def _wake(channel: str, on_wake: Callable[[], float | None]) -> float | None:
    try:
        due_in = on_wake()
    except Exception:  # the work's own failure (a restarting Prefect server, ...): logged, tried again next wake
        log.exception("LISTEN %s: handling a wake-up failed; trying again at the next one", channel)
        return None
    return due_in if isinstance(due_in, int | float) else None  # anything else: nothing scheduled


def _notified(conn: psycopg.Connection, wait: float, stop: threading.Event) -> bool:
    """Wait up to `wait` seconds for a notification (consuming any others already queued); False on timeout."""
    deadline = time.monotonic() + wait
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        # list(): run each generator to its end, so it releases the connection's lock before the next one
        if list(conn.notifies(timeout=min(left, STOP_CHECK_SECONDS), stop_after=1)):
            list(conn.notifies(timeout=0))  # one wake-up handles every notification already queued
            return True
    return False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
