"""Pipeline state in Postgres: builds, stage runs, sign-off events and segment triggers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base


class Build(Base):
    """One attempt at building the fix for a request (a base or a hotfix), and its verification."""

    __tablename__ = "builds"
    __table_args__ = (
        UniqueConstraint("request_id", "attempt", name="uq_builds_request_attempt"),
        CheckConstraint(
            "status IN ('waiting_input', 'pending', 'building', 'verifying', 'verified', 'failed')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(10))  # base | hotfix
    status: Mapped[str] = mapped_column(String(20))
    fix: Mapped[dict] = mapped_column(JSONB, default=dict)  # how to make the fix: allowlist | rule | ref | commits
    builder: Mapped[str] = mapped_column(String(200))
    builder_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    branch: Mapped[str | None] = mapped_column(String(200))
    commit: Mapped[str | None] = mapped_column(String(40))  # the candidate: the release line plus this fix
    line_base: Mapped[str | None] = mapped_column(String(40))  # the line commit the candidate was made on
    change_id: Mapped[str | None] = mapped_column(String(16))  # fingerprint of the fix alone (sign-offs follow it)
    fix_ref: Mapped[str | None] = mapped_column(String(20), index=True)  # opaque id shipped in public bases
    rebased_from_id: Mapped[int | None] = mapped_column(ForeignKey("builds.id"))  # rebuilt because the line moved
    version: Mapped[str | None] = mapped_column(String(80))
    bundle_dir: Mapped[str | None] = mapped_column(Text)
    verification: Mapped[dict | None] = mapped_column(JSONB)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StageRun(Base):
    """A release stage of one build: waiting for sign-off, publishing, published — or superseded by a rebuild."""

    __tablename__ = "stage_runs"
    __table_args__ = (
        UniqueConstraint("build_id", "stage", name="uq_stage_runs_build_stage"),
        CheckConstraint("status IN ('awaiting', 'publishing', 'published', 'superseded')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id"))
    stage: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="awaiting")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    channels: Mapped[list] = mapped_column(JSONB, default=list)
    # channel -> the version it served when the stage opened: publishing compares-and-swaps against it
    expected: Mapped[dict] = mapped_column(JSONB, default=dict)


class SignoffEvent(Base):
    """A sign-off granted, rejected, revoked or overridden. Rows are never edited (a trigger refuses it)."""

    __tablename__ = "signoff_events"
    __table_args__ = (CheckConstraint("action IN ('approve', 'reject', 'revoke', 'override')", name="action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id"))
    stage: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    role: Mapped[str] = mapped_column(String(30))
    action: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    via: Mapped[str] = mapped_column(String(10), default="api")  # api | cli | slack
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SegmentTrigger(Base):
    """A request to run the next automated segment, written with the decision that caused it.

    The dispatcher turns it into a Prefect deployment run with `key` as idempotency key; the reconciler
    re-dispatches triggers whose run was lost. A segment marks its trigger done when it finishes.
    """

    __tablename__ = "segment_triggers"
    __table_args__ = (CheckConstraint("status IN ('pending', 'dispatched', 'done')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    step: Mapped[str] = mapped_column(String(40))  # build | publish:<stage>
    decision_id: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    dispatches: Mapped[int] = mapped_column(Integer, default=0)
    flow_run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
