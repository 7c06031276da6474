"""Pydantic I/O for customers: validated once here, so bad zones or countries never reach the DB."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from release_requests.customers.models import DEFAULT_BUSINESS_HOURS

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


@lru_cache
def _countries() -> frozenset[str]:
    import holidays

    return frozenset(holidays.list_supported_countries())


def validate_timezone(value: str) -> str:
    if value not in available_timezones():
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone '{value}' (e.g. Europe/Moscow)") from None
    return value


def validate_country(value: str) -> str:
    code = value.upper()
    if code not in _countries():
        raise ValueError(f"unknown or unsupported country code '{value}' (ISO 3166 alpha-2, e.g. RU)")
    return code


def validate_business_hours(value: dict[str, str]) -> dict[str, str]:
    for day, span in value.items():
        if day not in WEEKDAYS:
            raise ValueError(f"unknown weekday '{day}' (use {', '.join(WEEKDAYS)})")
        match = _HOURS.match(span)
        if not match:
            raise ValueError(f"{day}: '{span}' is not HH:MM-HH:MM")
        start, end = span.split("-")
        if end <= start:
            raise ValueError(f"{day}: business hours end ({end}) before they start ({start})")
    return value


class LicenceGrant(BaseModel):
    """A product the customer licensed; `versions` is a PEP 440 specifier set ('' = every version)."""

    model_config = ConfigDict(extra="forbid")

    product: str = Field(min_length=1, max_length=100)
    versions: str = ""

    @field_validator("versions")
    @classmethod
    def _specifier(cls, value: str) -> str:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise ValueError(f"'{value}' is not a version specifier such as '>=11,<12'") from None
        return value


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")
    name: str = Field(min_length=1, max_length=200)
    tier: Literal["enterprise", "standard"]
    timezone: str
    country: str
    subdivision: str | None = None
    business_hours: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_BUSINESS_HOURS))
    slack_channel: str | None = Field(default=None, pattern=r"^[#]?[a-z0-9][a-z0-9._-]{0,79}$|^[CG][A-Z0-9]{6,}$")
    email_contacts: list[EmailStr] = Field(default_factory=list)
    licensed_products: list[LicenceGrant] = Field(default_factory=list)
    language: Literal["en", "ru"] = "en"

    _tz = field_validator("timezone")(classmethod(lambda cls, v: validate_timezone(v)))
    _country = field_validator("country")(classmethod(lambda cls, v: validate_country(v)))
    _hours = field_validator("business_hours")(classmethod(lambda cls, v: validate_business_hours(v)))


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    tier: str
    timezone: str
    country: str
    subdivision: str | None
    business_hours: dict[str, str]
    slack_channel: str | None
    email_contacts: list[str]
    licensed_products: list[LicenceGrant]
    language: str
    created_at: datetime


def parse_weekly_hours(text: str) -> dict[str, str]:
    """'mon-fri 09:00-18:00; sat 10:00-14:00' → {'mon': '09:00-18:00', …} (what people type in a CLI)."""
    hours: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        try:
            days, span = part.split()
        except ValueError:
            raise ValueError(f"'{part}' is not 'DAYS HH:MM-HH:MM' (e.g. 'mon-fri 09:00-18:00')") from None
        first, _, last = days.lower().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"'{days}' is not a weekday or a range like mon-fri")
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if end < start:
            raise ValueError(f"'{days}': the range runs backwards")
        for day in WEEKDAYS[start : end + 1]:
            hours[day] = span
    return validate_business_hours(hours)
