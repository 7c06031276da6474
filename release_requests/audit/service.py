"""Writing and checking the audit chain.

Every event is written by the same transaction as the change it records. Writers serialize on one
transaction-scoped advisory lock, so the chain stays linear however many requests commit at once;
the lock is taken as late as possible (just before the insert) and released at commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

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
    """Append one event to the chain inside the caller's transaction."""
    session.flush()  # the change being recorded must reach the database before the lock is taken
    now = session.execute(
        text("SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(:k)) AS locked"),
        {"k": _CHAIN_LOCK_KEY},
    ).scalar_one()
    last = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    event = AuditEvent(
        seq=(last.seq + 1) if last else 1,
        occurred_at=now.astimezone(UTC),
        actor=actor.name,
        actor_id=actor.id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        request_id=request_id,
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        reason=reason,
        prev_hash=last.hash if last else GENESIS_HASH,
    )
    event.hash = compute_hash(event)
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


def _all_events(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    last_seq = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_seq = rows[-1].seq
        session.expunge_all()


def verify_chain(session: Session) -> ChainReport:
    """Recompute every hash in order; name the first row that was altered, removed or re-linked."""
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    for event in _all_events(session):
        if event.seq != expected_seq:
            return ChainReport(checked, expected_seq, f"row {expected_seq} is missing (next row is {event.seq})")
        if event.prev_hash != expected_prev:
            return ChainReport(checked, event.seq, f"row {event.seq}: prev_hash does not link to row {event.seq - 1}")
        if compute_hash(event) != event.hash:
            return ChainReport(checked, event.seq, f"row {event.seq}: content does not match its hash")
        expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    return ChainReport(checked)


def timeline(session: Session, *, request_id: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(AuditEvent.seq)))
