"""Recorded SLA threshold crossings: the unique key makes each crossing happen exactly once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base


class SlaCrossing(Base):
    __tablename__ = "sla_crossings"
    __table_args__ = (UniqueConstraint("request_id", "severity", "threshold", name="uq_sla_crossings_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    severity: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[str] = mapped_column(String(20))  # "50%", "80%", "breach"
    crossed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
