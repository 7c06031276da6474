"""Health Checks and their findings. A booking belongs to one certificate year of its customer; the database
keeps one live booking per year and one per engineer and day, whatever races the service loses."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base

LIVE = "status <> 'cancelled'"


class HealthCheck(Base):
    __tablename__ = "healthchecks"
    __table_args__ = (
        CheckConstraint(
            "status IN ('booked', 'confirmed', 'in_progress', 'findings_recorded', 'report_delivered', 'cancelled')",
            name="status",
        ),
        Index(
            "uq_healthchecks_one_per_year",
            "customer_id",
            "certificate_year_start",
            unique=True,
            postgresql_where=text(LIVE),
        ),
        Index("uq_healthchecks_engineer_day", "engineer_id", "scheduled_on", unique=True, postgresql_where=text(LIVE)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    engineer_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    scheduled_on: Mapped[date] = mapped_column(Date)  # a business day in the customer's calendar
    certificate_year_start: Mapped[date] = mapped_column(Date)  # which certificate year it is the check of
    status: Mapped[str] = mapped_column(String(20), default="booked")
    booked_by_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    booked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class HealthCheckFinding(Base):
    """One nonconformity: where it is (product, area, setting), what was found, how bad, what to do."""

    __tablename__ = "healthcheck_findings"
    __table_args__ = (CheckConstraint("severity IN ('critical', 'high', 'medium', 'low')", name="severity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    healthcheck_id: Mapped[int] = mapped_column(ForeignKey("healthchecks.id"), index=True)
    product: Mapped[str] = mapped_column(String(100))
    area: Mapped[str] = mapped_column(String(100))
    setting: Mapped[str] = mapped_column(String(200))
    found: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(10))
    recommendation: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
