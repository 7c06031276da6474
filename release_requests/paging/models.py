"""Pages: one per request that had to wake somebody up, climbing its escalation chain until acknowledged.

A page is keyed by its request (one request, one page: the Events v2 `dedup_key` is derived from it), so
a retried intake or two watchers at once can never page twice. The chain is fixed when the page starts
(who was on duty then, the fallback, the head of support) and `step` says who is being paged now; every
step is also an audit event on the request, so the request's timeline shows who was paged and when.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base

PAGE_STATUSES = ("paging", "acknowledged", "resolved", "exhausted")


class Page(Base):
    __tablename__ = "pages"
    __table_args__ = (
        CheckConstraint("status IN ('paging', 'acknowledged', 'resolved', 'exhausted')", name="status"),
        CheckConstraint("acknowledged_via IN ('slack', 'cli', 'api', 'web')", name="acknowledged_via"),
        Index("ix_pages_escalate_at", "escalate_at", postgresql_where="status = 'paging'"),
    )

    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(100), unique=True)  # the paging service's incident key
    severity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="paging")
    # [{"person_id": 7, "name": "Boris", "role": "on duty"}, ...]: fixed when the page starts
    chain: Mapped[list] = mapped_column(JSONB, default=list)
    step: Mapped[int] = mapped_column(Integer, default=0)  # index in `chain` of the person paged now
    paged_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    paged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    escalate_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # None once nobody is left
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_via: Mapped[str | None] = mapped_column(String(10))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
