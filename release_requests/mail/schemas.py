"""Pydantic I/O for the support mailbox: what became of each message, and a duty manager's assignment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Outcome = Literal["filed", "threaded", "answered", "held", "ignored", "assigned"]


class IngestOut(BaseModel):
    mail_id: int
    outcome: Outcome
    reason: str
    request_id: str | None
    duplicate: bool = Field(description="the same Message-ID was read before: this is that message's result")


class MailOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: str
    source: Literal["imap", "pipe", "api"]
    received_at: datetime
    sender: str | None
    sender_name: str | None
    subject: str
    size: int
    outcome: Outcome
    reason: str
    request_id: str | None
    customer_id: str | None
    authentication: dict
    assigned_by_id: int | None
    assigned_at: datetime | None
    created_at: datetime


class MailAttachmentOut(BaseModel):
    filename: str | None = Field(description="as sent, made safe to show")
    content_type: str
    size: int


class MailDetail(MailOut):
    text: str = Field(description="the text part (an HTML-only message as text; never the HTML itself), cut")
    attachments: list[MailAttachmentOut]
    defects: list[str] = Field(description="what the parser found wrong with the message")
    noise: str | None = Field(description="why it looks written by a machine (never answered), or null")


class MailAssign(BaseModel):
    """File a held (or ignored) message for a customer, or add it to a request: exactly one of the two."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    request_id: Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,8}-\d{4}-\d{6,}$")] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MailAssign:
        if (self.customer_id is None) == (self.request_id is None):
            raise ValueError("give exactly one of customer_id and request_id")
        return self
