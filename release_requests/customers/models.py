"""Customers of the premium-support service: who they are, where they live, what they licensed."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base
from release_requests.sla.calendar import BusinessCalendar


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("tier IN ('enterprise', 'standard')", name="tier"),
        CheckConstraint("language IN ('en', 'ru')", name="language"),
        CheckConstraint("certificate_end IS NULL OR certificate_end > certificate_start", name="certificate_period"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    tier: Mapped[str] = mapped_column(String(20))
    timezone: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(2))
    subdivision: Mapped[str | None] = mapped_column(String(10))
    business_hours: Mapped[str] = mapped_column(String(200), default="mon-fri 09:00-18:00")
    extra_closed_dates: Mapped[list] = mapped_column(JSONB, default=list)
    slack_channel: Mapped[str | None] = mapped_column(String(80))
    email_contacts: Mapped[list] = mapped_column(JSONB, default=list)
    licensed_products: Mapped[list] = mapped_column(JSONB, default=list)
    language: Mapped[str] = mapped_column(String(5), default="en")
    # the support certificate: its years (from the start date) are what one Health Check per year counts
    certificate_start: Mapped[date | None] = mapped_column(Date)
    certificate_end: Mapped[date | None] = mapped_column(Date)  # inclusive
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def calendar(self) -> BusinessCalendar:
        """The customer's business calendar: what their SLA clock counts on the business clock."""
        return BusinessCalendar(
            timezone=self.timezone,
            country=self.country,
            subdivision=self.subdivision,
            weekly_hours=self.business_hours,
            extra_closed_dates=frozenset(date.fromisoformat(d) for d in self.extra_closed_dates),
        )


class TamAssignment(Base):
    """Which technical account managers work for which customer (a TAM may have several)."""

    __tablename__ = "tam_assignments"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
