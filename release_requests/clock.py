"""One clock for every process: the database's.

The API, the flow runners and the watchers run on different machines; their own clocks drift, the
database's is the one they share. Everything recorded (audit events, SLA clocks, outbox due times)
takes its time from here, so "before" and "after" mean the same thing in every process.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

_NOW = "clock.now"  # session.info: (the transaction, its now()): asked once per transaction
_SELECT_NOW = text("SELECT now()")  # built once: building a statement costs more than running a cached one


def db_now(session: Session) -> datetime:
    """The database's current time (the start of the caller's transaction: constant, so asked once)."""
    cached = session.info.get(_NOW)
    if cached is not None and cached[0] is session.get_transaction():
        return cached[1]
    now = session.execute(_SELECT_NOW).scalar_one()
    session.info[_NOW] = (session.get_transaction(), now)
    return now
