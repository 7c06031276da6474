"""What each customer wants to receive (its regular report and the daily digest), each person's own digest
time, and the TAM's notes for a period. Read by the scheduled sender (`reports.delivery`); every change is
audited with what it was before.

Defaults, written down: no `ReportPreferences` row is a quarterly PDF of every section to the customer's
notification e-mail recipients in its notification language, and the daily digest to the same addresses at
09:00 in the customer's zone, by e-mail only. No `DigestSubscription` row: staff in `DEFAULT_STAFF_ROLES`
receive the digest at 09:00 in their own zone, every other person does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import record
from release_requests.customers.models import Customer
from release_requests.customers.service import customer_for, save_customer_settings
from release_requests.errors import InvalidInput
from release_requests.notifications.preferences import effective
from release_requests.people.models import Person
from release_requests.people.service import actor_of
from release_requests.reports import periods
from release_requests.reports.models import DigestSubscription, ReportNote, ReportPreferences
from release_requests.reports.schemas import (
    DigestSubscriptionIn,
    DigestSubscriptionOut,
    NoteIn,
    NoteOut,
    Period,
    ReportPreferencesIn,
    ReportPreferencesOut,
)

# the people who run the service day to day hear about every critical request without asking
DEFAULT_STAFF_ROLES = frozenset({"tam", "duty_manager", "admin"})


@dataclass(frozen=True)
class EffectiveReportPrefs:
    """One customer's report preferences with the defaults filled in."""

    recipients: list[str]
    frequency: str
    sections: list[str]
    language: str
    format: str
    digest_enabled: bool
    digest_at: time
    digest_slack_channel: str | None  # the customer's channel when they want the digest there


def _stored(prefs: ReportPreferences | None) -> ReportPreferencesIn:
    return ReportPreferencesIn() if prefs is None else ReportPreferencesIn.model_validate(prefs, from_attributes=True)


def effective_report_prefs(session: Session, *, customer: Customer) -> EffectiveReportPrefs:
    stored = _stored(session.get(ReportPreferences, customer.id))
    notices = effective(session, customer=customer)
    return EffectiveReportPrefs(
        recipients=list(stored.recipients) or list(customer.email_contacts),
        frequency=stored.frequency,
        sections=list(stored.sections),
        language=stored.language or notices.language,
        format=stored.format,
        digest_enabled=stored.digest_enabled,
        digest_at=time.fromisoformat(stored.digest_at),
        digest_slack_channel=customer.slack_channel if stored.digest_slack else None,
    )


def _prefs_out(session: Session, customer: Customer) -> ReportPreferencesOut:
    prefs = session.get(ReportPreferences, customer.id)
    eff = effective_report_prefs(session, customer=customer)
    return ReportPreferencesOut(
        **_stored(prefs).model_dump(),
        customer_id=customer.id,
        effective_recipients=eff.recipients,
        effective_language=eff.language,
        timezone=customer.timezone,
        updated_at=prefs.updated_at if prefs else None,
    )


def get_report_preferences(session: Session, *, actor: Person, customer_id: str) -> ReportPreferencesOut:
    access.authorize(actor, "report.read")
    return _prefs_out(session, customer_for(session, actor=actor, customer_id=customer_id))


def set_report_preferences(
    session: Session, *, actor: Person, customer_id: str, data: ReportPreferencesIn
) -> ReportPreferencesOut:
    """The customer's own users, its TAMs and admins may change them (the table says which roles; visibility
    narrows it to this customer)."""
    access.authorize(actor, "report.preferences")
    customer = customer_for(session, actor=actor, customer_id=customer_id)
    prefs = session.get(ReportPreferences, customer.id)
    save_customer_settings(
        session,
        actor=actor,
        customer=customer,
        row=prefs,
        model=ReportPreferences,
        values=data.model_dump(mode="json"),
        before=None if prefs is None else _stored(prefs).model_dump(mode="json"),
        action="customer.report_preferences_changed",
    )
    return _prefs_out(session, customer)


# --- a person's own digest ----------------------------------------------------------------------------------


def digest_default(person: Person) -> DigestSubscriptionIn:
    return DigestSubscriptionIn(enabled=person.role in DEFAULT_STAFF_ROLES)


def digest_zone(session: Session, person: Person) -> str:
    """Staff read the digest in their own zone; a customer's users in their company's (where their requests'
    clocks run)."""
    if person.customer_id is not None:
        return session.get(Customer, person.customer_id).timezone
    return person.timezone


def _subscription_out(session: Session, person: Person) -> DigestSubscriptionOut:
    row = session.get(DigestSubscription, person.id)
    stored = digest_default(person) if row is None else DigestSubscriptionIn.model_validate(row, from_attributes=True)
    return DigestSubscriptionOut(
        **stored.model_dump(), person_id=person.id, timezone=digest_zone(session, person), default=row is None
    )


def get_digest_subscription(session: Session, *, actor: Person) -> DigestSubscriptionOut:
    access.authorize(actor, "report.read")
    return _subscription_out(session, actor)


def set_digest_subscription(session: Session, *, actor: Person, data: DigestSubscriptionIn) -> DigestSubscriptionOut:
    """Whether and when the caller receives the daily digest (their own setting only)."""
    access.authorize(actor, "digest.subscribe")
    if data.enabled and not actor.email:
        raise InvalidInput("you have no e-mail address to send the digest to", field="enabled")
    row = session.get(DigestSubscription, actor.id)
    before = None if row is None else DigestSubscriptionIn.model_validate(row, from_attributes=True).model_dump()
    if row is None:
        row = DigestSubscription(person_id=actor.id)
        session.add(row)
    row.enabled, row.send_at, row.updated_at = data.enabled, data.send_at, func.now()
    session.flush()
    record(
        session,
        actor=actor_of(actor),
        action="person.digest_changed",
        entity_type="person",
        entity_id=str(actor.id),
        before=before,
        after=data.model_dump(),
    )
    return _subscription_out(session, actor)


# --- the TAM's notes ----------------------------------------------------------------------------------------


def _note_out(note: ReportNote, author: Person) -> NoteOut:
    return NoteOut(
        id=note.id,
        customer_id=note.customer_id,
        period_start=note.period_start,
        period_end=note.period_end,
        body=note.body,
        author=author.name,
        created_at=note.created_at,
    )


def _note_period(data: NoteIn) -> Period:
    dates = (data.period_start, data.period_end)
    if data.quarter is not None:
        if dates != (None, None):
            raise InvalidInput("give either quarter or period_start and period_end, not both", field="quarter")
        return periods.quarter(data.quarter)
    if None in dates:
        missing = "period_start" if data.period_start is None else "period_end"
        raise InvalidInput(f"{missing} is missing: give a quarter, or period_start and period_end", field=missing)
    if data.period_end < data.period_start:
        raise InvalidInput(
            f"period_end {data.period_end} is before period_start {data.period_start}", field="period_end"
        )
    return Period(start=data.period_start, end=data.period_end, label=f"{data.period_start}..{data.period_end}")


def add_note(session: Session, *, actor: Person, data: NoteIn) -> NoteOut:
    """A note is added, never edited: the report of a period shows every note written for it, in order."""
    access.authorize(actor, "report.note")
    period = _note_period(data)
    customer = customer_for(session, actor=actor, customer_id=data.customer_id)
    note = ReportNote(
        customer_id=customer.id, period_start=period.start, period_end=period.end, body=data.body, author_id=actor.id
    )
    session.add(note)
    session.flush()
    session.refresh(note)
    record(
        session,
        actor=actor_of(actor),
        action="customer.report_note_added",
        entity_type="customer",
        entity_id=customer.id,
        after={"note_id": note.id, "period_start": note.period_start, "period_end": note.period_end},
    )
    return _note_out(note, actor)


def notes_for(session: Session, *, customer_id: str, period: Period) -> list[NoteOut]:
    """The notes of one customer whose period overlaps `period`, oldest first (no permission check: callers
    have made it)."""
    rows = session.execute(
        select(ReportNote, Person)
        .join(Person, Person.id == ReportNote.author_id)
        .where(
            ReportNote.customer_id == customer_id,
            ReportNote.period_start <= period.end,
            ReportNote.period_end >= period.start,
        )
        .order_by(ReportNote.created_at, ReportNote.id)
    )
    return [_note_out(note, author) for note, author in rows]


def list_notes(session: Session, *, actor: Person, customer_id: str, period: Period) -> list[NoteOut]:
    access.authorize(actor, "report.read")
    customer = customer_for(session, actor=actor, customer_id=customer_id)
    return notes_for(session, customer_id=customer.id, period=period)
