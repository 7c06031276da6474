"""Pydantic I/O for notifications and customer notification preferences."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

Status = Literal["queued", "sending", "sent", "failed", "dead"]
QuietHoursSpec = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d\d:\d\d-\d\d:\d\d$")]


def parse_quiet_hours(spec: str) -> tuple[time, time]:
    """'22:00-08:00' → (22:00, 08:00); the window may wrap past midnight but must not be empty."""
    start, end = (time.fromisoformat(part) for part in spec.split("-"))
    if start == end:
        raise ValueError("quiet hours must start and end at different times")
    return start, end


class PreferencesIn(BaseModel):
    """The whole preference set (PUT replaces it); the CLI reads, changes and writes it back."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slack_enabled: bool = True
    email_enabled: bool = True
    email_recipients: list[EmailStr] = Field(
        default_factory=list, max_length=50, description="empty: the customer's e-mail contacts"
    )
    language: Literal["en", "ru"] | None = Field(default=None, description="empty: the customer's language")
    quiet_hours: QuietHoursSpec | None = Field(
        default=None, description="HH:MM-HH:MM in the customer's zone: severity 3–4 updates wait until it ends"
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_quiet_hours(value)
            except ValueError as exc:
                raise ValueError(f"'{value}': {exc}") from None
        return value


class PreferencesOut(PreferencesIn):
    model_config = ConfigDict(from_attributes=True)

    customer_id: str
    effective_language: str
    effective_email_recipients: list[str]
    slack_channel: str | None
    updated_at: datetime | None


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    request_id: str | None
    event: str
    audience: str
    channel: str
    recipient: str
    language: str
    status: str
    attempts: int
    next_attempt_at: datetime
    external_id: str | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class NotificationFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str | None = None
    status: Status | None = None
    limit: int = Field(default=100, ge=1, le=1000)
