"""What customers and staff asked to receive, what was sent (once), and the TAM's notes for a period."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base

REPORT_SECTIONS = ("summary", "sla", "response_times", "breaches", "releases", "healthcheck", "notes")
REPORT_FREQUENCIES = ("none", "weekly", "monthly", "quarterly")
REPORT_FORMATS = ("html", "pdf", "csv")


class ReportPreferences(Base):
    """How one customer wants its regular report and its daily digest; no row means the defaults."""

    __tablename__ = "report_preferences"
    __table_args__ = (
        CheckConstraint("frequency IN ('none', 'weekly', 'monthly', 'quarterly')", name="frequency"),
        CheckConstraint("format IN ('html', 'pdf', 'csv')", name="format"),
        CheckConstraint("language IS NULL OR language IN ('en', 'ru')", name="language"),
        CheckConstraint("digest_at ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'", name="digest_at"),
    )

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    recipients: Mapped[list] = mapped_column(JSONB, default=list)  # empty: the customer's e-mail recipients
    frequency: Mapped[str] = mapped_column(String(10), default="quarterly")
    sections: Mapped[list] = mapped_column(JSONB, default=lambda: list(REPORT_SECTIONS))
    language: Mapped[str | None] = mapped_column(String(2))  # None: the customer's notification language
    format: Mapped[str] = mapped_column(String(4), default="pdf")
    digest_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    digest_at: Mapped[str] = mapped_column(String(5), default="09:00")  # local time in the customer's zone
    digest_slack: Mapped[bool] = mapped_column(Boolean, default=False)  # also post it to the customer's channel
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DigestSubscription(Base):
    """One person's own digest setting (staff: every customer; a customer's user: their own customer).

    No row: staff in the roles of `reports.preferences.DEFAULT_STAFF_ROLES` get it at 09:00 in their zone, others
    do not; a customer's contacts get it through the customer's `ReportPreferences`."""

    __tablename__ = "digest_subscriptions"
    __table_args__ = (CheckConstraint("send_at ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'", name="send_at"),)

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    send_at: Mapped[str] = mapped_column(String(5), default="09:00")  # local time in the person's zone
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReportDelivery(Base):
    """One report sent to one recipient for one period: the unique key makes it happen once, across restarts
    and overlapping runs (inserted in the same transaction as its outbox rows)."""

    __tablename__ = "report_deliveries"
    __table_args__ = (
        CheckConstraint("kind IN ('digest', 'customer_report')", name="kind"),
        UniqueConstraint("kind", "recipient", "period_start", "period_end", name="uq_report_deliveries_once"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    recipient: Mapped[str] = mapped_column(String(254))  # an e-mail address, a person, or a customer's channel
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    items: Mapped[int] = mapped_column(Integer)  # rows of the digest, requests of the report (0: nothing sent)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReportNote(Base):
    """The TAM's notes for one customer and period; the customer report of any overlapping period shows them."""

    __tablename__ = "report_notes"
    __table_args__ = (CheckConstraint("period_end >= period_start", name="ordered"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)  # inclusive
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
