"""Pydantic I/O for Health Checks: bookings, life-cycle changes, findings, and what readers get back."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from release_requests.errors import InvalidInput, NotFound

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low")  # most serious first: the report's order
MAX_FINDINGS = 1000  # in one call: an audit of one day's work, not a data dump
_REF = re.compile(r"^(?:HC-)?([0-9]{1,9})$", re.IGNORECASE)


def parse_ref(ref: str | int) -> int:
    """`HC-12`, `hc-12` or `12` → 12; anything else is not found (it names nothing)."""
    match = _REF.match(str(ref).strip())
    if match is None:
        raise NotFound(f"no Health Check '{ref}' (ids look like HC-12 or 12)")
    return int(match[1])


class Versioned(BaseModel):
    """The version the caller last read: a change made meanwhile by somebody else is refused (409)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, description="refuse the change unless it is still at this version")


class BookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    customer_id: str = Field(min_length=1, max_length=40)
    date: dt.date = Field(description="the day of the Health Check, a business day of the customer")
    engineer: str = Field(min_length=1, max_length=254, description="the engineer's e-mail or person id")


class RescheduleIn(Versioned):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    date: dt.date | None = Field(default=None, description="the new day (default: the same day)")
    engineer: str | None = Field(default=None, max_length=254, description="the new engineer (default: the same)")
    reason: str = Field(min_length=1, max_length=500, description="why (told to the customer, kept in the audit log)")

    @model_validator(mode="after")
    def _changes_something(self) -> RescheduleIn:
        if self.date is None and not self.engineer:
            raise ValueError("give a new date, a new engineer, or both")
        return self


class CancelIn(Versioned):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=500, description="why (told to the customer, kept in the audit log)")


class FindingIn(BaseModel):
    """One nonconformity as the engineer writes it down."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    product: str = Field(min_length=1, max_length=100)
    area: str = Field(min_length=1, max_length=100)
    setting: str = Field(min_length=1, max_length=200)
    found: str = Field(min_length=1, max_length=5000, description="what was found")
    severity: Severity
    recommendation: str = Field(min_length=1, max_length=5000)


def validate_findings(rows: Any) -> list[FindingIn]:
    """Every row checked; the first bad one is refused naming its row number (1 = the first finding) and field,
    so that nothing is stored unless all of them are right."""
    if not isinstance(rows, list):
        raise InvalidInput("findings must be a list of objects", field="findings")
    if len(rows) > MAX_FINDINGS:
        raise InvalidInput(f"{len(rows)} findings in one call; at most {MAX_FINDINGS}", field="findings")
    findings = []
    for number, row in enumerate(rows, start=1):
        try:
            findings.append(FindingIn.model_validate(row))
        except ValidationError as exc:
            error = exc.errors()[0]
            name = ".".join(str(part) for part in error["loc"]) or "row"
            message = "field required" if error["type"] == "missing" else error["msg"]
            raise InvalidInput(
                f"finding row {number}: {name}: {message}", field=f"findings[{number}].{name}", row=number
            ) from None
    return findings


class FindingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    product: str
    area: str
    setting: str
    found: str
    severity: Severity
    recommendation: str
    created_at: dt.datetime


class HealthCheckOut(BaseModel):
    id: int
    label: str = Field(description="how people see its id: HC-12")
    customer_id: str
    customer: str
    timezone: str = Field(description="the customer's zone: the date is a day there")
    scheduled_on: dt.date
    engineer_id: int
    engineer: str
    certificate_year_start: dt.date
    certificate_year_end: dt.date | None
    status: Literal["booked", "confirmed", "in_progress", "findings_recorded", "report_delivered", "cancelled"]
    findings: int = Field(description="how many findings are recorded")
    booked_by: str
    booked_at: dt.datetime
    updated_at: dt.datetime
    version: int
