"""The notification outbox: rows written in the same transaction as the change they announce.

Nothing is sent from a request handler; a deliverer claims rows and sends them. `dedupe_key` is unique
so that announcing the same thing twice (a retried transaction, an overlapping watcher) queues it once.
`channel` names the transport that sends the row (`pager`: the paging service's Events v2 webhook);
`skipped` is final: its transport was not configured where the deliverer ran, so it was neither sent nor
retried (`last_error` says which setting is unset).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("audience IN ('customer', 'internal')", name="audience"),
        CheckConstraint("channel IN ('slack', 'email', 'webhook', 'pager')", name="channel"),
        CheckConstraint("status IN ('queued', 'sending', 'sent', 'failed', 'dead', 'skipped')", name="status"),
        Index("ix_notifications_due", "next_attempt_at", postgresql_where="status IN ('queued', 'failed', 'sending')"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(ForeignKey("release_requests.id"), index=True)
    event: Mapped[str] = mapped_column(String(60))
    audience: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(10))
    recipient: Mapped[str] = mapped_column(String(254))
    recipient_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    language: Mapped[str] = mapped_column(String(5), default="en")
    context: Mapped[dict] = mapped_column(JSONB, default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    external_id: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerNotificationPrefs(Base):
    """How one customer wants to hear from us; no row means the defaults (both media, the customer's contacts)."""

    __tablename__ = "customer_notification_prefs"
    __table_args__ = (CheckConstraint("language IS NULL OR language IN ('en', 'ru')", name="language"),)

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    slack_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    email_recipients: Mapped[list] = mapped_column(JSONB, default=list)  # empty: the customer's e-mail contacts
    language: Mapped[str | None] = mapped_column(String(5))  # None: the customer's language
    quiet_hours: Mapped[str | None] = mapped_column(String(11))  # "22:00-08:00" in the customer's zone
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SlackDecision(Base):
    """One accepted Slack button press. The signature is unique (a replayed request is refused) and so is a
    person's decision on one message (pressing twice is refused; a second engineer may still sign a stage
    that needs two), both enforced by the database."""

    __tablename__ = "slack_decisions"
    __table_args__ = (UniqueConstraint("notification_id", "person_id", name="uq_slack_decisions_message_person"),)

    signature: Mapped[str] = mapped_column(String(100), primary_key=True)
    notification_id: Mapped[str] = mapped_column(ForeignKey("notifications.id"))
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    slack_user_id: Mapped[str] = mapped_column(String(40))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    action: Mapped[str] = mapped_column(String(20))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
