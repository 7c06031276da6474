"""Pydantic I/O for release requests. Unknown fields are refused so that typos are not silently lost."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from release_requests.samples.names import safe_filename
from release_requests.sla.service import SlaStatus

Kind = Literal["false_positive", "false_negative", "private_hotfix"]
IntakeChannel = Literal["portal", "phone", "email", "tam"]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$", to_lower=True)]
Severity = Annotated[int, Field(ge=1, le=4, description="1 critical, 2 high, 3 medium, 4 low")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
SUBMISSION_KEY_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
SubmissionKey = Annotated[str, StringConstraints(pattern=SUBMISSION_KEY_PATTERN)]
# a number a person can dial back: digits with the usual separators, an optional leading +, an extension
CALLBACK_PATTERN = r"^\+?[0-9][0-9 ()./-]{3,28}[0-9](\s*(ext\.?|x|доб\.?)\s*[0-9]{1,6})?$"
CallerName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
CallbackNumber = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40, pattern=CALLBACK_PATTERN)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SubmitRequest(_In):
    customer_id: str | None = Field(default=None, description="defaults to the caller's own customer")
    kind: Kind
    severity: Severity
    channel: IntakeChannel
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    description: str = Field(default="", max_length=20000)
    product: str | None = Field(default=None, max_length=100)
    product_version: str | None = Field(default=None, max_length=50)
    detection_name: str | None = Field(default=None, max_length=200)
    received_at: AwareDatetime | None = Field(
        default=None, description="when the customer reached us (phone/e-mail); defaults to now"
    )
    sample_sha256: list[Sha256] = Field(default_factory=list, description="hash-only evidence")
    submission_key: SubmissionKey | None = Field(
        default=None,
        description=(
            "a key of the client's choosing: the same person submitting the same key again gets the request "
            "already filed, not a second one"
        ),
    )
    caller_name: CallerName | None = Field(default=None, description="phone intake: who called (channel phone)")
    callback_number: CallbackNumber | None = Field(
        default=None, description="phone intake: the number to call back, e.g. +7 495 123-45-67 ext. 12"
    )

    @model_validator(mode="after")
    def _only_a_call_has_a_caller(self) -> SubmitRequest:
        """Optional even for a call (clients that filed calls before these fields existed go on working), but
        a caller on a request that did not come by phone is a mistake worth saying."""
        if self.channel != "phone" and (self.caller_name is not None or self.callback_number is not None):
            raise ValueError("caller_name and callback_number are for channel 'phone' only")
        return self


class Accept(_In):
    decision: Literal["accept"]
    severity: Severity | None = None
    assignee: str | None = Field(default=None, description="e-mail or id of the engineer; default: you")
    note: str | None = Field(default=None, max_length=20000)
    version: int | None = None


class Reject(_In):
    decision: Literal["reject"]
    reason: Text
    version: int | None = None


class Duplicate(_In):
    decision: Literal["duplicate"]
    duplicate_of: Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,8}-\d{4}-\d{6,}$")]
    reason: str | None = Field(
        default=None, max_length=20000, description="why it is the same problem (kept in the audit log)"
    )
    version: int | None = None


class NeedsInfo(_In):
    decision: Literal["needs_info"]
    question: Text
    version: int | None = None


TriageDecision = Annotated[Accept | Reject | Duplicate | NeedsInfo, Field(discriminator="decision")]


class Assign(_In):
    """Hand an open request to an engineer (vendor staff) after triage."""

    assignee: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)] = Field(
        description="e-mail or id of the engineer"
    )
    version: int | None = None


class Answer(_In):
    """The customer's answer to a needs-info question; it puts the request back in the triage queue."""

    message: Text
    version: int | None = None


class Respond(_In):
    """An explicit, qualified answer to the customer (it meets the SLA clock)."""

    message: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]


class SeverityChange(_In):
    severity: Severity
    reason: Text
    version: int | None = None


class Cancel(_In):
    reason: Text
    version: int | None = None


class SampleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sha256: str
    size: int | None
    filename: str | None = Field(description="as sent, with bidi and control characters shown as [U+XXXX]")
    stored: bool
    created_at: datetime

    @field_validator("filename")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        """Cleaned again when shown: names stored before uploads were cleaned are safe to show too."""
        return safe_filename(value)


class RequestOut(BaseModel):
    id: str
    customer_id: str
    customer_name: str
    kind: str
    severity: int
    severity_label: str = Field(description="the severity as people read it, e.g. '1 critical' (config/severity.toml)")
    channel: str
    title: str
    description: str
    product: str | None
    product_version: str | None
    detection_name: str | None
    caller_name: str | None = None
    callback_number: str | None = None
    status: str
    allowed_transitions: list[str]
    owner: str | None
    assignee: str | None
    duplicate_of: str | None
    advisory_id: str | None = None
    submitted_by: str
    version: int
    received_at: datetime
    created_at: datetime
    updated_at: datetime
    samples: list[SampleOut] = Field(default_factory=list)
    sla: SlaStatus | None = None


class RequestPage(BaseModel):
    items: list[RequestOut]
    total: int
    limit: int
    offset: int


class TimelineEntry(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    entity: str
    before: dict | None
    after: dict | None
    reason: str | None

    @field_validator("before", "after")
    @classmethod
    def _safe_sample_name(cls, value: dict | None) -> dict | None:
        """A sample's name in an audit event is shown like everywhere else; the stored event is unchanged."""
        if value is not None and isinstance(value.get("filename"), str):
            return {**value, "filename": safe_filename(value["filename"])}
        return value


class RequestFilters(_In):
    status: list[str] = Field(default_factory=list)
    customer_id: str | None = None
    severity: Severity | None = None
    kind: Kind | None = None
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000_000)
