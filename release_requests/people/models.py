"""Staff and customer users, and their API tokens (only hashes are ever stored)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base


class Person(Base):
    __tablename__ = "people"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'tam', 'duty_manager', 'triage', 'build_engineer', "
            "'release_manager', 'customer', 'emergency')",
            name="role",
        ),
        CheckConstraint("(role = 'customer') = (customer_id IS NOT NULL)", name="customer_users_only"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(30))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    working_hours: Mapped[str] = mapped_column(String(200), default="mon-fri 09:00-18:00")
    country: Mapped[str | None] = mapped_column(String(2))
    slack_user_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
