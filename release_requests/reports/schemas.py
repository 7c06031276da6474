"""The shapes of the reports (API JSON, CLI --json, and what every rendering — HTML, PDF, CSV, e-mail — shows).

Every figure is computed from the audit log and the request rows (`reports.figures`), never stored, so a
report can be recomputed and checked against the log at any time. Counts are plain ints; percentages and
minutes are floats rounded to one decimal (None when there is nothing to divide by).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from release_requests.healthchecks.schemas import FindingOut
from release_requests.reports.models import REPORT_FORMATS, REPORT_FREQUENCIES, REPORT_SECTIONS

# withdrawn: the customer cancelled before any qualified response of ours, within the target (docs/reports.md)
SlaOutcome = Literal["met", "breached", "withdrawn", "running", "none"]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Period(BaseModel):
    """Whole local days in the customer's zone, `start` to `end` inclusive; `label` is '2026Q4' for a quarter."""

    model_config = ConfigDict(frozen=True)

    start: date
    end: date
    label: str


class SeverityAttainment(BaseModel):
    severity: int
    label: str  # "critical"
    target_minutes: int
    clock: Literal["24x7", "business"]
    met: int
    breached: int
    running: int  # received in the period, clock still running at `as_of`: not counted in attainment
    attainment_pct: float | None  # met ÷ (met + breached) × 100
    withdrawn: int = 0  # cancelled by the customer before any qualified response: not counted in attainment


class RequestRow(BaseModel):
    """One request behind the period's figures (the CSV has one line per row): received in the period, or with
    its SLA outcome decided or its first response made in it. The `*_in_period` flags say which figures it feeds."""

    request_id: str
    kind: str
    severity: int  # the severity its clock ran under at the end (after any change)
    status: str
    channel: str
    received_at: datetime
    first_response_at: datetime | None
    # on the SLA clock (business minutes for 3–4), pauses excluded; only when the response came in the period
    # (it then counts in this report's p50/p90; otherwise in the report of the period it came in)
    first_response_minutes: float | None
    target_minutes: int
    due_at: datetime | None
    sla: SlaOutcome
    paused_minutes: float
    severity_changes: int
    # when `sla` was decided: the response (met) or cancellation (withdrawn), or the due time (breached)
    decided_at: datetime | None = None
    received_in_period: bool = True  # feeds requests_total, by_severity, by_kind, by_channel, running
    decided_in_period: bool = False  # feeds met, breached, withdrawn, attainment, the weeks, the breaches
    responded_in_period: bool = False  # feeds first_response_p50/p90 (its `first_response_minutes`)


class Breach(BaseModel):
    request_id: str
    severity: int
    due_at: datetime
    responded: bool
    responded_at: datetime | None
    reason: str  # why, from the log: "answered 42 min after the due time", "no qualified response yet", …
    # the same facts for a rendering in another language than the English `reason`
    late_minutes: float  # after the due time: the answer (or cancellation), else `as_of`
    severity_path: list[int]  # e.g. [2, 1]: raised from 2 to 1 (one value: never changed)
    reroutes: int  # times the SLA watch re-routed it to another owner
    cancelled: bool  # the clock was stopped by a cancellation, not an answer


class ReleaseDelivered(BaseModel):
    request_id: str
    kind: Literal["base", "hotfix"]
    version: str
    channel: str
    accepted_at: datetime | None
    delivered_at: datetime
    hours_to_deliver: float | None  # acceptance → the customer's channel


class WeekAttainment(BaseModel):
    week_start: date
    met: int
    breached: int
    attainment_pct: float | None


class HealthCheckSummary(BaseModel):
    id: int
    scheduled_on: date
    status: str
    engineer: str
    findings: int
    findings_by_severity: dict[str, int]
    # the nonconformities with their recommendations, most serious first: every critical and high one, and the
    # others while the list stays short; `findings_not_listed` says how many the Health Check report adds
    nonconformities: list[FindingOut] = Field(default_factory=list)
    findings_not_listed: int = 0


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: str
    period_start: date
    period_end: date
    body: str
    author: str
    created_at: datetime


class CustomerReport(BaseModel):
    customer_id: str
    customer_name: str
    timezone: str
    period: Period
    as_of: datetime  # events after this instant are not counted (a report can be recomputed exactly)
    requests_total: int
    by_severity: dict[str, int]  # "1".."4" → count (every key present)
    by_kind: dict[str, int]  # false_positive / false_negative / private_hotfix (every key present)
    by_channel: dict[str, int]
    sla_met: int
    sla_breached: int
    sla_running: int  # received in the period and still running at `as_of`
    sla_attainment_pct: float | None
    sla_withdrawn: int = 0  # decided in the period as withdrawn: in no attainment
    sla_by_severity: list[SeverityAttainment]
    first_response_p50_minutes: float | None
    first_response_p90_minutes: float | None
    breaches: list[Breach]
    releases: list[ReleaseDelivered]
    weekly: list[WeekAttainment]
    healthchecks: list[HealthCheckSummary]
    notes: list[NoteOut]
    requests: list[RequestRow]


class DigestRow(BaseModel):
    request_id: str
    customer_id: str
    customer_name: str
    severity: int
    kind: str
    title: str  # the customer's words: every rendering escapes it
    status: str
    owner: str | None
    sla_state: str | None  # on_track / at_risk / breached / met / withdrawn, or None (no clock)
    due_at: datetime | None
    changed_at: datetime
    next_step: str  # English, from the status; a rendering in another language uses `status` and the detail
    next_step_detail: str | None = None  # the stage awaiting sign-off or publishing, or the channel released to


class DailyDigest(BaseModel):
    as_of: datetime
    since: datetime  # as_of − 24 h
    customer_id: str | None  # None: every customer (staff)
    rows: list[DigestRow]


# --- preferences ------------------------------------------------------------------------------------


class ReportPreferencesIn(BaseModel):
    """The whole preference set (PUT replaces it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    recipients: list[EmailStr] = Field(default_factory=list, max_length=50, description="empty: the customer's")
    frequency: Literal[REPORT_FREQUENCIES] = "quarterly"  # type: ignore[valid-type]
    sections: list[Literal[REPORT_SECTIONS]] = Field(default_factory=lambda: list(REPORT_SECTIONS), min_length=1)  # type: ignore[valid-type]
    language: Literal["en", "ru"] | None = None
    format: Literal[REPORT_FORMATS] = "pdf"  # type: ignore[valid-type]
    digest_enabled: bool = True
    digest_at: str = Field(default="09:00", pattern=HHMM, description="HH:MM in the customer's zone")
    digest_slack: bool = False

    @field_validator("sections")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class ReportPreferencesOut(ReportPreferencesIn):
    customer_id: str
    effective_recipients: list[str]
    effective_language: str
    timezone: str
    updated_at: datetime | None


class DigestSubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    send_at: str = Field(default="09:00", pattern=HHMM, description="HH:MM in your own zone")


class DigestSubscriptionOut(DigestSubscriptionIn):
    person_id: int
    timezone: str
    default: bool  # no row: the default for the person's role


class NoteIn(BaseModel):
    """A note about one period: a `quarter` ('2026Q4'), or `period_start` and `period_end` (inclusive)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    customer_id: str
    quarter: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    body: str = Field(min_length=1, max_length=20_000)
