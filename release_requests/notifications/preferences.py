"""Customer notification preferences: media on/off, recipients, language, quiet hours.

Read by `notify` when it resolves the customer target, so a change applies to the next notice queued;
notices already in the outbox keep the recipients they were queued for.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from release_requests import access
from release_requests.customers.models import Customer
from release_requests.customers.service import save_customer_settings
from release_requests.errors import NotFound
from release_requests.notifications.models import CustomerNotificationPrefs
from release_requests.notifications.schemas import PreferencesIn, PreferencesOut, parse_quiet_hours
from release_requests.people.models import Person


@dataclass(frozen=True)
class Effective:
    """The preferences that apply to one customer, defaults filled in."""

    slack_channel: str | None
    email_recipients: list[str]
    language: str
    quiet_hours: str | None
    timezone: str

    def deliver_at(self, *, severity: int, at: datetime, held_back: Collection[int]) -> datetime:
        """When a customer notice queued at `at` may go out: the end of quiet hours for the severities the
        policy lets quiet hours hold back (`[quiet_hours] severities` in config/notifications.toml)."""
        if self.quiet_hours is None or severity not in held_back:
            return at
        start, end = parse_quiet_hours(self.quiet_hours)
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        now = local.time().replace(tzinfo=None)
        if start < end:
            quiet, end_day = start <= now < end, local.date()
        else:  # wraps midnight: 22:00-08:00
            quiet = now >= start or now < end
            end_day = local.date() + timedelta(days=1) if now >= start else local.date()
        if not quiet:
            return at
        return datetime.combine(end_day, end, tzinfo=zone)


def effective(session: Session, *, customer: Customer) -> Effective:
    prefs = session.get(CustomerNotificationPrefs, customer.id) or CustomerNotificationPrefs(
        slack_enabled=True, email_enabled=True, email_recipients=[]
    )
    return Effective(
        slack_channel=customer.slack_channel if prefs.slack_enabled else None,
        email_recipients=(list(prefs.email_recipients) or list(customer.email_contacts)) if prefs.email_enabled else [],
        language=prefs.language or customer.language,
        quiet_hours=prefs.quiet_hours,
        timezone=customer.timezone,
    )


def _customer(session: Session, *, actor: Person, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None or not access.can_see_customer(session, actor, customer_id):
        raise NotFound(f"no customer '{customer_id}'")
    return customer


def _out(customer: Customer, prefs: CustomerNotificationPrefs | None, eff: Effective) -> PreferencesOut:
    stored = PreferencesIn() if prefs is None else PreferencesIn.model_validate(prefs, from_attributes=True)
    return PreferencesOut(
        **stored.model_dump(),
        customer_id=customer.id,
        effective_language=eff.language,
        effective_email_recipients=eff.email_recipients,
        slack_channel=customer.slack_channel,
        updated_at=prefs.updated_at if prefs else None,
    )


def get_preferences(session: Session, *, actor: Person, customer_id: str) -> PreferencesOut:
    """Anyone who can see the customer may read its preferences."""
    access.authorize(actor, "preferences.read")
    customer = _customer(session, actor=actor, customer_id=customer_id)
    return _out(customer, session.get(CustomerNotificationPrefs, customer.id), effective(session, customer=customer))


def set_preferences(session: Session, *, actor: Person, customer_id: str, data: PreferencesIn) -> PreferencesOut:
    """The customer's own users, their TAMs and admins may change them; the change is audited.

    The table says which roles; visibility narrows it to this customer's users and its assigned TAMs."""
    access.authorize(actor, "preferences.change")
    customer = _customer(session, actor=actor, customer_id=customer_id)
    prefs = session.get(CustomerNotificationPrefs, customer.id)
    prefs = save_customer_settings(
        session,
        actor=actor,
        customer=customer,
        row=prefs,
        model=CustomerNotificationPrefs,
        values=data.model_dump(mode="json"),
        before=None if prefs is None else PreferencesIn.model_validate(prefs, from_attributes=True).model_dump(),
        action="customer.notification_preferences_changed",
    )
    return _out(customer, prefs, effective(session, customer=customer))
