"""What the API says about pages and about the rotation's gaps (`/api/v1/pages`, `/api/v1/duty/check`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ChainEntry(BaseModel):
    person_id: int
    name: str
    role: Literal["on duty", "duty fallback", "head of support"]


class PageOut(BaseModel):
    request_id: str
    customer_id: str
    dedup_key: str = Field(description="the paging service's incident key (Events v2 `dedup_key`)")
    severity: int
    status: Literal["paging", "acknowledged", "resolved", "exhausted"]
    chain: list[ChainEntry] = Field(description="who is paged, in order; fixed when the page started")
    step: int = Field(description="index in `chain` of the person paged now (0: the first)")
    paged: ChainEntry | None = Field(description="the person paged now (or last, once it stopped)")
    paged_at: datetime = Field(description="when the page started")
    escalate_at: datetime | None = Field(description="when the next person is paged unless acknowledged")
    acknowledged_by_id: int | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    acknowledged_via: Literal["slack", "cli", "api", "web"] | None
    resolved_at: datetime | None


class AcknowledgeIn(BaseModel):
    """The optional body of `POST /requests/{id}/page/acknowledge`: where the acknowledgement came from, so the
    page and its audit event say "cli" for `relreq page ack` rather than "api" for everything."""

    model_config = ConfigDict(extra="forbid")

    via: Literal["api", "cli"] = Field(default="api", description="api (default) or cli (`relreq page ack`)")


class GapOut(BaseModel):
    starts_at: datetime
    ends_at: datetime
    covered_by_id: int | None
    covered_by: str | None = Field(description="the duty fallback who takes requests then; null: NOBODY")


class DutyCheckOut(BaseModel):
    at: datetime
    until: datetime
    days: int
    gaps: list[GapOut] = Field(description="spans no duty shift covers")
    nobody: bool = Field(description="some span has nobody at all: a severity 1 request filed then pages no one")
    fallback: str | None
    head_of_support: str | None
    problems: list[str] = Field(description="settings that cannot work (a deactivated fallback, a bad head of support)")
