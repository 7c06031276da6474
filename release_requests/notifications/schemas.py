"""Pydantic I/O for notifications, customer notification preferences and Slack button presses."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator, model_validator

Status = Literal["queued", "sending", "sent", "failed", "dead", "skipped"]
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


# --- Slack interactions (what POST /slack/interactions accepts, after its signature was verified) ----------


class _SlackPart(BaseModel):
    """Slack sends many more fields than we read; unknown ones are ignored, the ones we read are checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class SlackUser(_SlackPart):
    id: str = Field(min_length=1, max_length=40)


class SlackChannel(_SlackPart):
    id: str = Field(min_length=1, max_length=40)


class SlackAction(_SlackPart):
    action_id: str = Field(min_length=1, max_length=255)
    value: str = Field(default="", max_length=2000)  # Slack's limit for a button value


class SlackContainer(_SlackPart):
    message_ts: str | None = Field(default=None, max_length=40)


class SlackMessage(_SlackPart):
    ts: str | None = Field(default=None, max_length=40)


class BlockActions(_SlackPart):
    """A button press on one of our messages (`block_actions`): who pressed what, where."""

    type: Literal["block_actions"]
    user: SlackUser
    channel: SlackChannel
    actions: list[SlackAction] = Field(min_length=1, max_length=25)
    container: SlackContainer | None = None
    message: SlackMessage | None = None

    @model_validator(mode="after")
    def _message_known(self) -> BlockActions:
        if not self.message_ts:
            raise ValueError("neither container.message_ts nor message.ts: the pressed message is unknown")
        return self

    @property
    def message_ts(self) -> str | None:
        """The pressed message's ts (the decision edits that message)."""
        return (self.container.message_ts if self.container else None) or (self.message.ts if self.message else None)
