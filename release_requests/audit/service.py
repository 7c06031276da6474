"""Writing and checking the audit chain.

Every event is written by the same transaction as the change it records, and chained when that transaction
commits: `record` keeps the event with the session, and just before the commit `write_pending` takes one
transaction-scoped advisory lock, reads the last event, hashes this transaction's events after it and
inserts them in one statement; the commit releases the lock. So the chain stays linear however many
requests commit at once, and the lock is held only for those three statements and the commit, not for the
whole transaction: writers no longer queue behind each other's work, only behind each other's commits.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy import insert, select, text
from sqlalchemy.event import listens_for
from sqlalchemy.orm import Session
from sqlalchemy.sql import TextClause
from sqlalchemy.sql.util import find_tables

from artifacts.progress import Progress, silent
from release_requests.audit.models import AuditEvent

GENESIS_HASH = "0" * 64
_CHAIN_LOCK_KEY = 0x52524155  # "RRAU": the one advisory lock all audit writers take
_SECRET_KEYS = {"token", "password", "secret", "api_token", "token_hash", "smtp_password"}


@dataclass(frozen=True)
class Actor:
    """Who did it: a person (id + display name) or a named system component (`system:sla_watch`)."""

    name: str
    id: int | None = None

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls(name=f"system:{component}")


def jsonable(value: Any) -> Any:
    """Plain JSON values only, so the hash computed before storage equals the one after JSONB round-trip."""
    if isinstance(value, dict):
        return {str(k): ("[redacted]" if str(k).lower() in _SECRET_KEYS else jsonable(v)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        raise TypeError("floats are not allowed in audit payloads (not canonical); use str or int")
    return value


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(event: AuditEvent) -> str:
    fields = {
        "seq": event.seq,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
        "actor": event.actor,
        "actor_id": event.actor_id,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "request_id": event.request_id,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "prev_hash": event.prev_hash,
    }
    return hashlib.sha256(_canonical(fields)).hexdigest()


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str,
    request_id: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Append one event to the chain when the caller's transaction commits (see the module's docstring).

    The event returned has no `seq`, `occurred_at` or `hash` until then; a caller that needs them inside the
    transaction uses `record_now`. An event recorded inside a SAVEPOINT that is rolled back is dropped with it.
    """
    event = AuditEvent(
        actor=actor.name,
        actor_id=actor.id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        request_id=request_id,
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        reason=reason,
    )
    # the transaction it belongs to (begun now if need be, so that a rollback of it takes the event along)
    recorded_in = session.get_nested_transaction() or session.get_transaction() or session.begin()
    session.info.setdefault(_PENDING, []).append((event, recorded_in))
    return event


def record_now(session: Session, **event: Any) -> AuditEvent:
    """`record`, chained at once: for a caller that keys something on the event's `seq` or time inside its
    transaction. The chain's lock is then held from here to the commit, as every writer held it before."""
    recorded = record(session, **event)
    write_pending(session)
    return recorded


def pending_events(session: Session) -> list[AuditEvent]:
    """Events this transaction recorded and has not chained yet (no seq, no time), in the order recorded."""
    return [event for event, _ in session.info.get(_PENDING, ())]


def write_pending(session: Session) -> None:
    """Chain this transaction's recorded events after the last committed one, under the chain's lock.

    The lock is a transaction-scoped advisory lock, released by the commit that follows at once (or by a
    rollback): the next writer reads the last event only after this one committed, so the chain stays linear.
    Two statements, not one: a single statement's snapshot is taken before it waits for the lock, and would
    miss the event the previous holder committed meanwhile.
    """
    pending = session.info.get(_PENDING)
    if not pending:
        return
    chained_in = session.get_nested_transaction() or session.get_transaction()
    try:
        now = session.execute(_LOCK_AND_CLOCK, {"k": _CHAIN_LOCK_KEY}, execution_options=_CHAIN_OPTIONS).scalar_one()
        last = session.execute(_LAST, execution_options=_CHAIN_OPTIONS).first()
        seq, prev_hash = (last.seq, last.hash) if last else (0, GENESIS_HASH)
        # time follows the chain: each event is at least 1 µs after the one before it (a batch's events are the
        # same moment, a clock stepped back by NTP is another), so ordering by time never contradicts the chain
        at = max(now, last.occurred_at + _TICK) if last else now
        rows = []
        for event, _ in pending:
            seq += 1
            event.seq, event.occurred_at, event.prev_hash = seq, at.astimezone(UTC), prev_hash
            event.hash = prev_hash = compute_hash(event)
            at += _TICK
            rows.append({column: getattr(event, column) for column in _COLUMNS})
        session.execute(_INSERT, rows, execution_options=_CHAIN_OPTIONS)  # one multi-row INSERT
    except BaseException:
        _unchain(event for event, _ in pending)  # still pending, as if never tried
        raise
    session.info[_PENDING] = []
    session.info.setdefault(_CHAINED, []).extend((event, recorded, chained_in) for event, recorded in pending)


def _unchain(events: Iterable[AuditEvent]) -> None:
    for event in events:
        event.seq = event.occurred_at = event.prev_hash = event.hash = None


_PENDING = "audit.pending"  # session.info: [(event, the (nested) transaction it was recorded in)]
_CHAINED = "audit.chained"  # session.info: [(event, recorded in, chained in)] of the transaction under way
_CHAIN_OPTIONS = {"audit_chain": True}  # the chain's own statements: the read hook below leaves them alone
_LOCK_AND_CLOCK = text("SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(:k)) AS locked")
_LAST = select(AuditEvent.seq, AuditEvent.hash, AuditEvent.occurred_at).order_by(AuditEvent.seq.desc()).limit(1)
_TICK = timedelta(microseconds=1)
_COLUMNS = [column.key for column in AuditEvent.__table__.columns]
_INSERT = insert(AuditEvent.__table__)  # Core, every column in every row: the ORM would split rows by their NULLs


@listens_for(Session, "before_commit")
def _chain_at_commit(session: Session) -> None:
    # also called when a SAVEPOINT is released: the events wait for the real commit (or the test's outer one)
    if session.info.get(_PENDING) and session.get_nested_transaction() is None:
        write_pending(session)


@listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction) -> None:
    """Events recorded inside the transaction (or SAVEPOINT) just rolled back never happened. Events recorded
    before it but chained inside it (a read of the log in the SAVEPOINT) lost their rows with it: they are
    pending again, ahead of those recorded since, and are chained at the commit like the others."""

    def inside(transaction) -> bool:
        while transaction is not None:
            if transaction is previous_transaction:
                return True
            transaction = transaction.parent
        return previous_transaction.parent is None  # the whole transaction: everything goes

    chained, pending = session.info.get(_CHAINED, []), session.info.get(_PENDING, [])
    undone = [(event, recorded) for event, recorded, chained_in in chained if inside(chained_in)]
    _unchain(event for event, _ in undone)
    session.info[_CHAINED] = [entry for entry in chained if not inside(entry[2])]
    session.info[_PENDING] = [(e, t) for e, t in undone + pending if not inside(t)]


@listens_for(Session, "after_transaction_end")
def _forget_ended(session: Session, transaction) -> None:
    """The session's transaction is over (committed: its events are written; rolled back or closed: they
    never happened): nothing of it waits for the next one."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_CHAINED, None)


@listens_for(Session, "do_orm_execute")
def _chain_before_reading(state) -> None:
    """A transaction reading the audit log sees its own events, as it did when each was inserted at once:
    pending events are chained before a statement that reads the table. Readers that merge `pending_events`
    themselves (the SLA clock, on the hot path of filing) opt out with the execution option `audit_pending`."""
    session = state.session
    if not session.info.get(_PENDING) or not state.is_select and not isinstance(state.statement, TextClause):
        return  # nothing waits, or a write (nobody writes the log but write_pending)
    options = state.execution_options
    if options.get("audit_chain") or options.get("audit_pending") == "merged":
        return
    if isinstance(state.statement, TextClause):
        reads_log = "audit_events" in state.statement.text
    else:
        reads_log = _AUDIT_TABLE in find_tables(state.statement, check_columns=True)
    if reads_log:
        write_pending(session)


_AUDIT_TABLE = AuditEvent.__table__


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


# Raw rows, not ORM objects: building objects cost more than hashing them. The time is formatted by the
# server exactly as `compute_hash` does (`isoformat` in UTC, no ".000000"); out of Python's range (BC,
# year 10000+, infinity) it is NULL, a row `compute_hash` could not even load. JSONB comes as its text.
_ROWS = """
    SELECT seq,
           CASE WHEN occurred_at BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00'
                THEN replace(to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                             '.000000+', '+')
           END,
           actor, actor_id, action, entity_type, entity_id, request_id, before::text, after::text, reason,
           prev_hash, hash
    FROM audit_events WHERE seq BETWEEN %s AND %s ORDER BY seq"""
# Rows arrive in chunks parsed in C (libpq 17+); one by one they cost more to fetch than to hash.
_FETCH = 2000 if psycopg.pq.version() >= 170000 else 1
_SEQ_MIN, _SEQ_MAX = -(2**63), 2**63 - 1
_PARALLEL_FROM = 100_000  # below this, starting worker processes costs about what they save
_MAX_WORKERS = 8  # each holds a connection
_PROGRESS_EVERY = 10_000


def _exact(value: Any) -> bool:
    """Whether orjson decoded this JSON as `json` does: no floats. orjson turns integers beyond 64 bits
    into floats, and floats (which `jsonable` refuses, so only a tampered row has them) may print
    differently; such a value takes the `json` path."""
    kind = type(value)
    if kind is float:
        return False
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return True
    for item in value:
        kind = type(item)
        if kind is float or ((kind is dict or kind is list) and not _exact(item)):
            return False
    return True


def _row_canonical(row: tuple) -> bytes | None:
    """The bytes `compute_hash` hashes for this raw row (None: its time is out of Python's range).

    orjson's sorted compact output is byte-identical to `_canonical` for strings, ints within 64 bits,
    booleans, null, lists and dicts (tests/platform/test_audit.py proves it with hypothesis); anything
    else — floats, big integers, what orjson refuses (lone surrogates, very deep nesting) — is decoded
    and encoded by `json`, as `compute_hash` does.
    """
    seq, occurred_at, actor, actor_id, action, entity_type, entity_id, request_id, before, after, reason, prev, _ = row
    if occurred_at is None:
        return None
    try:
        before_value = None if before is None else orjson.loads(before)
        after_value = None if after is None else orjson.loads(after)
        fast = _exact(before_value) and _exact(after_value)
    except orjson.JSONDecodeError:
        fast = False
    if not fast:
        before_value = None if before is None else json.loads(before)
        after_value = None if after is None else json.loads(after)
    fields = {
        "action": action,
        "actor": actor,
        "actor_id": actor_id,
        "after": after_value,
        "before": before_value,
        "entity_id": entity_id,
        "entity_type": entity_type,
        "occurred_at": occurred_at,
        "prev_hash": prev,
        "reason": reason,
        "request_id": request_id,
        "seq": seq,
    }
    if fast:
        try:
            return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    return _canonical(fields)


@dataclass(frozen=True)
class _Segment:
    """What one run of consecutive rows showed: its ends, for linking it to its neighbours, and its first
    problem. Its first row's seq and prev_hash are checked by whoever knows the row before."""

    first_seq: int | None = None  # None: no rows in this range
    first_prev: str = ""
    last_seq: int = 0
    last_hash: str = ""
    checked: int = 0
    broken_seq: int | None = None
    problem: str | None = None


def _scan(conn: psycopg.Connection, lo: int, hi: int, on_rows: Callable[[int], None] | None = None) -> _Segment:
    """Check the rows with `lo <= seq <= hi` on `conn`, in its transaction."""
    sha256, canonical = hashlib.sha256, _row_canonical
    first_seq, first_prev, last_seq, last_hash, checked = None, "", 0, "", 0
    broken: tuple[int, str] | None = None
    with conn.cursor(binary=True) as cursor:
        rows = cursor.stream(_ROWS, (lo, hi), size=_FETCH)
        for row in rows:
            seq, prev, stored = row[0], row[11], row[12]
            if first_seq is None:
                first_seq, first_prev = seq, prev
            elif seq != last_seq + 1:
                broken = (last_seq + 1, f"row {last_seq + 1} is missing (next row is {seq})")
                break
            elif prev != last_hash:
                broken = (seq, f"row {seq}: prev_hash does not link to row {seq - 1}")
                break
            data = canonical(row)
            if data is None or sha256(data).hexdigest() != stored:
                broken = (seq, f"row {seq}: content does not match its hash")
                break
            last_seq, last_hash, checked = seq, stored, checked + 1
            if on_rows is not None and checked % _PROGRESS_EVERY == 0:
                on_rows(checked)
        for _ in rows:  # read to the end: an abandoned stream is cancelled, aborting the caller's transaction
            pass
    if broken is None:
        return _Segment(first_seq, first_prev, last_seq, last_hash, checked)
    return _Segment(first_seq, first_prev, last_seq, last_hash, checked, *broken)


def _scan_snapshot(conninfo: str, snapshot: str, role: str, lo: int, hi: int) -> _Segment:
    """`_scan` in a worker process, on its own connection that sees what the caller's transaction saw."""
    with psycopg.connect(conninfo) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(snapshot))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        return _scan(conn, lo, hi)


def _stitch(segments: Iterable[_Segment]) -> ChainReport:
    """Link consecutive segments; the first problem in seq order wins, with the messages of a single pass."""
    expected_seq, expected_prev, checked = 1, GENESIS_HASH, 0
    for segment in segments:
        if segment.first_seq is None:
            continue
        if segment.first_seq != expected_seq:
            return ChainReport(
                checked, expected_seq, f"row {expected_seq} is missing (next row is {segment.first_seq})"
            )
        if segment.first_prev != expected_prev:
            seq = segment.first_seq
            return ChainReport(checked, seq, f"row {seq}: prev_hash does not link to row {seq - 1}")
        checked += segment.checked
        if segment.problem is not None:
            return ChainReport(checked, segment.broken_seq, segment.problem)
        expected_seq, expected_prev = segment.last_seq + 1, segment.last_hash
    return ChainReport(checked)


def verify_chain(
    session: Session, *, progress: Progress = silent, workers: int | None = None, chunk: int = 50_000
) -> ChainReport:
    """Recompute every hash in order; name the first row that was altered, removed or re-linked.

    A long chain is cut into ranges of `chunk` seqs checked by `workers` processes (default: one per
    core, at most 8, from 100,000 events on) that read the caller's snapshot; the ranges' ends are
    linked here, so the report is the one a single pass gives. A transaction that has written (or sits
    in a savepoint) is checked in-process, the only way to see its own rows.
    """
    session.flush()
    first, last = session.execute(text("SELECT min(seq), max(seq) FROM audit_events")).one()
    total = 0 if last is None else last - first + 1
    if workers is None:
        workers = min(os.cpu_count() or 1, _MAX_WORKERS) if total >= _PARALLEL_FROM else 1
    connection = session.connection()
    if workers > 1 and not connection.in_nested_transaction():
        wrote = session.execute(text("SELECT pg_current_xact_id_if_assigned()")).scalar() is not None
        if not wrote:
            bounds = _ranges(first or 0, last or 0, chunk)
            return _verify_in_workers(session, bounds, total, progress, workers)
    driver = connection.connection.driver_connection
    return _stitch([_scan(driver, _SEQ_MIN, _SEQ_MAX, lambda done: progress(done, total, "verifying"))])


def _ranges(first: int, last: int, chunk: int) -> list[tuple[int, int]]:
    """Inclusive seq ranges of `chunk` covering every possible seq: the ends are open."""
    starts = range(first, last + 1, chunk)
    return [
        (_SEQ_MIN if n == 0 else start, _SEQ_MAX if n == len(starts) - 1 else start + chunk - 1)
        for n, start in enumerate(starts)
    ]


def _verify_in_workers(
    session: Session, bounds: list[tuple[int, int]], total: int, progress: Progress, workers: int
) -> ChainReport:
    snapshot = session.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    role = session.execute(text("SELECT current_user")).scalar_one()
    info = session.connection().connection.driver_connection.info
    conninfo = make_conninfo(info.dsn, password=info.password or None)
    # fork starts a worker at once; with other threads running (a server, a test harness) one of them
    # may hold a lock the child would need, so then a fresh interpreter (~0.5 s to import) is safer
    start = "fork" if threading.active_count() == 1 else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(start)) as pool:
        futures = [pool.submit(_scan_snapshot, conninfo, snapshot, role, lo, hi) for lo, hi in bounds]

        def in_order() -> Iterator[_Segment]:
            done = 0
            for future in futures:
                segment = future.result()
                done += segment.checked
                progress(done, total, "verifying")
                yield segment

        try:
            return _stitch(in_order())
        finally:
            for future in futures:  # past the first problem nothing matters; after a failure neither
                future.cancel()


def timeline(session: Session, *, request_id: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(AuditEvent.seq)))
