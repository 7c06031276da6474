"""The segment queue and the builds it runs: asking for the next automated segment, marking it done, and
finding a request's newest build. Lowest layer of the pipeline: the line and the services build on it."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from release_requests.audit.service import Actor, record
from release_requests.clock import db_now
from release_requests.pipeline.models import Build, SegmentTrigger

PIPELINE = Actor.system("pipeline")

SEGMENTS_CHANNEL = "rr_segments"  # the dispatcher LISTENs here: a committed trigger wakes it at once


def enqueue(session: Session, *, request_id: str, step: str, decision_id: str) -> SegmentTrigger | None:
    """Ask for the next automated segment; the same (request, step, decision) is asked once."""
    key = f"{request_id}:{step}:{decision_id}"
    trigger_id = session.execute(
        insert(SegmentTrigger)
        .values(request_id=request_id, step=step, decision_id=decision_id, key=key, status="pending", dispatches=0)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(SegmentTrigger.id)
    ).scalar_one_or_none()
    if trigger_id is None:
        return None
    session.execute(text("SELECT pg_notify(:channel, :key)"), {"channel": SEGMENTS_CHANNEL, "key": key})
    record(
        session,
        actor=PIPELINE,
        action="segment.requested",
        entity_type="segment",
        entity_id=key,
        request_id=request_id,
        after={"step": step, "decision_id": decision_id},
    )
    return session.get(SegmentTrigger, trigger_id)


def finish_trigger(session: Session, *, key: str) -> None:
    trigger = session.scalar(select(SegmentTrigger).where(SegmentTrigger.key == key))
    if trigger is not None and trigger.status != "done":
        trigger.status, trigger.done_at = "done", db_now(session)


def latest_build(session: Session, *, request_id: str) -> Build | None:
    return session.scalar(select(Build).where(Build.request_id == request_id).order_by(Build.attempt.desc()).limit(1))
