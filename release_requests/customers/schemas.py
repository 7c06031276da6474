"""Pydantic I/O for customers: validated once here, so bad zones or countries never reach the DB."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from release_requests.sla.calendar import BusinessCalendar, WeeklyHours, check_country, check_timezone

DEFAULT_WEEKLY_HOURS = "mon-fri 09:00-18:00"


def normalize_weekly_hours(value: str) -> str:
    """Validate hours typed by a person ('mon-fri 09:00-18:00; sat 10:00-14:00') and store them canonically."""
    return WeeklyHours.model_validate(value).to_spec()


class LicenceGrant(BaseModel):
    """A product the customer licensed; `versions` is a PEP 440 specifier set ('' = every version)."""

    model_config = ConfigDict(extra="forbid")

    product: str = Field(min_length=1, max_length=100)
    versions: str = ""

    @field_validator("versions")
    @classmethod
    def _specifier(cls, value: str) -> str:
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise ValueError(f"'{value}' is not a version specifier such as '>=11,<12'") from None
        return value


def check_certificate_period(start: date | None, end: date | None) -> None:
    """A certificate period ends after it starts (the end is inclusive); an end needs a start."""
    if end is not None and start is None:
        raise ValueError("certificate_end given without certificate_start")
    if end is not None and end <= start:
        raise ValueError(f"certificate_end {end} is not after certificate_start {start}")


class CertificatePeriod(BaseModel):
    """The customer's support certificate: its years (from the start) count one Health Check each."""

    model_config = ConfigDict(extra="forbid")

    certificate_start: date
    certificate_end: date | None = Field(default=None, description="inclusive; none: open-ended")

    @model_validator(mode="after")
    def _ordered(self) -> CertificatePeriod:
        check_certificate_period(self.certificate_start, self.certificate_end)
        return self


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")
    name: str = Field(min_length=1, max_length=200)
    tier: Literal["enterprise", "standard"]
    timezone: str
    country: str
    subdivision: str | None = None
    business_hours: str = DEFAULT_WEEKLY_HOURS
    extra_closed_dates: list[date] = Field(default_factory=list)
    slack_channel: str | None = Field(default=None, pattern=r"^[#]?[a-z0-9][a-z0-9._-]{0,79}$|^[CG][A-Z0-9]{6,}$")
    email_contacts: list[EmailStr] = Field(default_factory=list)
    licensed_products: list[LicenceGrant] = Field(default_factory=list)
    language: Literal["en", "ru"] = "en"
    certificate_start: date | None = None
    certificate_end: date | None = None

    _tz = field_validator("timezone")(classmethod(lambda cls, v: check_timezone(v)))
    _country = field_validator("country")(classmethod(lambda cls, v: check_country(v)))
    _hours = field_validator("business_hours")(classmethod(lambda cls, v: normalize_weekly_hours(v)))

    @model_validator(mode="after")
    def _subdivision_exists(self) -> CustomerCreate:
        if self.subdivision is not None:
            try:
                BusinessCalendar(timezone=self.timezone, country=self.country, subdivision=self.subdivision)
            except ValidationError as exc:
                raise PydanticCustomError("subdivision", exc.errors()[0]["msg"]) from None
        return self

    @model_validator(mode="after")
    def _certificate_ordered(self) -> CustomerCreate:
        check_certificate_period(self.certificate_start, self.certificate_end)
        return self


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    tier: str
    timezone: str
    country: str
    subdivision: str | None
    business_hours: str
    extra_closed_dates: list[date]
    slack_channel: str | None
    email_contacts: list[str]
    licensed_products: list[LicenceGrant]
    language: str
    certificate_start: date | None = None
    certificate_end: date | None = None
    created_at: datetime
