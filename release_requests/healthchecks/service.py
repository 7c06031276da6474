"""Health Checks: booking under the rules, the life cycle, findings, the report and its delivery, reminders.

Every function takes the caller's session and `now` (the API passes `clock.db_now`; tests fix it) and commits
nothing: a change, its audit event (entity type `healthcheck`) and its outbox rows commit together. Each
refusal names its rule and stores nothing; the pure rules are in `healthchecks.rules`, what needs the database
(the certificate year already taken, the engineer's leave and other bookings) is here. Two bookings racing for
the same year or engineer-day are decided by the database's unique indexes, and the loser gets the same 409 as
if it had come second. A booking reads the customer's certificate under a share lock, so a certificate change
(`change_certificate`, which re-cuts the certificate years of the bookings in hand) waits for it or it for the
change.

Who hears what: the customer's e-mail recipients (notification preferences), their TAMs and the engineer, by
e-mail — a Health Check is a date weeks ahead, a letter rather than a ping: it is never urgent, so the
customer's quiet hours hold it back as they hold back the lowest severity (`[quiet_hours] severities` in
config/notifications.toml decides whether they hold that back at all); staff get it when it is queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import Actor, record
from release_requests.config import AppConfig
from release_requests.customers import service as customers
from release_requests.customers.models import Customer
from release_requests.customers.schemas import CertificatePeriod
from release_requests.customers.service import customer_for, tams_of
from release_requests.documents import Attachment
from release_requests.errors import Conflict, InvalidInput, NotFound, StaleVersion
from release_requests.healthchecks import report, rules
from release_requests.healthchecks.models import HealthCheck, HealthCheckFinding
from release_requests.healthchecks.schemas import (
    SEVERITIES,
    BookIn,
    CancelIn,
    FindingOut,
    HealthCheckOut,
    RescheduleIn,
    parse_ref,
    validate_findings,
)
from release_requests.notifications.models import Notification
from release_requests.notifications.preferences import Effective, effective
from release_requests.notifications.service import Recipient, person_recipients, queue
from release_requests.people.models import Person
from release_requests.people.service import actor_of, find_person
from release_requests.people.service import label as person_label
from release_requests.routing.models import Leave

TRACKED = ("status", "scheduled_on", "engineer_id", "certificate_year_start", "version")
T = TypeVar("T")
REPORT_EVENT = "healthcheck.report"  # the customer's e-mail with the report and its PDF (composed here)


# --------------------------------------------------------------------------------------------------
# Reading


def _visible(session: Session, *, actor: Person, ref: str | int, lock: bool = False) -> HealthCheck:
    """The Health Check if `actor` may see its customer; another customer's is not found."""
    access.authorize(actor, "healthcheck.read")
    query = select(HealthCheck).where(HealthCheck.id == parse_ref(ref))
    healthcheck = session.scalar(query.with_for_update() if lock else query)
    if healthcheck is None or not access.can_see_customer(session, actor, healthcheck.customer_id):
        raise NotFound(f"no Health Check '{ref}'")
    return healthcheck


def get(session: Session, *, actor: Person, ref: str | int) -> HealthCheck:
    return _visible(session, actor=actor, ref=ref)


def list_healthchecks(session: Session, *, actor: Person, customer_id: str | None = None) -> list[HealthCheck]:
    """The Health Checks of the customers `actor` sees (of one of them with `customer_id`), latest date first."""
    access.authorize(actor, "healthcheck.read")
    query = select(HealthCheck).order_by(HealthCheck.scheduled_on.desc(), HealthCheck.id.desc())
    if customer_id is not None:
        query = query.where(HealthCheck.customer_id == customer_for(session, actor=actor, customer_id=customer_id).id)
    else:
        visible = access.visible_customer_ids(session, actor)
        if visible is not None:
            query = query.where(HealthCheck.customer_id.in_(visible))
    return list(session.scalars(query))


def findings(session: Session, *, actor: Person, ref: str | int) -> list[FindingOut]:
    healthcheck = _visible(session, actor=actor, ref=ref)
    return [FindingOut.model_validate(f) for f in _findings_of(session, healthcheck.id)]


def history(session: Session, *, actor: Person, ref: str | int) -> list[AuditEvent]:
    """The Health Check's life so far as its audit events tell it, oldest first (status, date, engineer and
    version before and after each change, and the reason)."""
    healthcheck = _visible(session, actor=actor, ref=ref)
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "healthcheck", AuditEvent.entity_id == str(healthcheck.id))
            .order_by(AuditEvent.seq)
        )
    )


def engineers(session: Session, *, actor: Person) -> list[Person]:
    """Whom a booking may name as the engineer: active people whose role has the `healthcheck.engineer`
    capability (their leave and other bookings are judged once the day is known)."""
    access.authorize(actor, "healthcheck.book")
    roles = access.rule("healthcheck.engineer").roles
    query = select(Person).where(Person.active.is_(True), Person.role.in_(roles)).order_by(Person.name, Person.id)
    return list(session.scalars(query))


def _findings_of(session: Session, healthcheck_id: int) -> list[HealthCheckFinding]:
    return list(
        session.scalars(
            select(HealthCheckFinding)
            .where(HealthCheckFinding.healthcheck_id == healthcheck_id)
            .order_by(HealthCheckFinding.id)
        )
    )


def _year_end(customer: Customer, healthcheck: HealthCheck) -> date | None:
    """The last day of the Health Check's certificate year, as the certificate stands now."""
    try:
        return rules.certificate_year(
            start=customer.certificate_start,
            end=customer.certificate_end,
            day=healthcheck.certificate_year_start,
            customer=customer.id,
        )[1]
    except InvalidInput:  # the certificate was changed since: its years no longer include this one
        return None


def present(session: Session, healthchecks: Iterable[HealthCheck]) -> list[HealthCheckOut]:
    healthchecks = list(healthchecks)
    ids = [hc.id for hc in healthchecks]
    counts = dict(
        session.execute(
            select(HealthCheckFinding.healthcheck_id, func.count())
            .where(HealthCheckFinding.healthcheck_id.in_(ids))
            .group_by(HealthCheckFinding.healthcheck_id)
        ).all()
    )
    out = []
    for hc in healthchecks:
        customer = session.get(Customer, hc.customer_id)
        out.append(
            HealthCheckOut(
                id=hc.id,
                label=rules.label(hc.id),
                customer_id=customer.id,
                customer=customer.name,
                timezone=customer.timezone,
                scheduled_on=hc.scheduled_on,
                engineer_id=hc.engineer_id,
                engineer=person_label(session.get(Person, hc.engineer_id)),
                certificate_year_start=hc.certificate_year_start,
                certificate_year_end=_year_end(customer, hc),
                status=hc.status,
                findings=counts.get(hc.id, 0),
                booked_by=person_label(session.get(Person, hc.booked_by_id)),
                booked_at=hc.booked_at,
                updated_at=hc.updated_at,
                version=hc.version,
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# The booking rules that need the database


def _engineer(session: Session, ref: str) -> Person:
    try:
        return find_person(session, ref=ref)
    except NotFound:
        raise InvalidInput(f"engineer: no person '{ref}' (give an e-mail or a person id)", field="engineer") from None


def _check_engineer(session: Session, *, engineer: Person, day: date) -> None:
    if not access.allows(engineer, "healthcheck.engineer"):
        roles = ", ".join(sorted(access.rule("healthcheck.engineer").roles))
        raise InvalidInput(
            f"engineer: {engineer.name} has role '{engineer.role}', who cannot be the engineer of a Health Check "
            f"(roles that can: {roles})",
            field="engineer",
        )
    if not engineer.active:
        raise InvalidInput(f"engineer: {engineer.name} is not active", field="engineer")
    leave = session.scalar(
        select(Leave).where(Leave.person_id == engineer.id, Leave.first_day <= day, Leave.last_day >= day).limit(1)
    )
    if leave is not None:
        raise InvalidInput(
            f"engineer: {engineer.name} is on leave on {day.isoformat()} "
            f"({leave.first_day.isoformat()}..{leave.last_day.isoformat()})",
            field="engineer",
        )


def _check_taken(
    session: Session,
    *,
    customer: Customer,
    year: tuple[date, date | None],
    day: date,
    engineer: Person,
    other_than: int | None,
) -> None:
    """One live Health Check per certificate year and one per engineer and day (409, naming the other one)."""
    others = select(HealthCheck).where(HealthCheck.status != "cancelled", HealthCheck.id != (other_than or 0))
    same_year = session.scalar(
        others.where(HealthCheck.customer_id == customer.id, HealthCheck.certificate_year_start == year[0])
    )
    if same_year is not None:
        raise Conflict(
            f"customer {customer.id}: a Health Check is already booked for {same_year.scheduled_on.isoformat()} "
            f"({rules.label(same_year.id)}) in the certificate year {rules.period_text(*year)}; one per "
            "certificate year (reschedule or cancel that one instead)",
            field="date",
            existing=rules.label(same_year.id),
        )
    same_day = session.scalar(others.where(HealthCheck.engineer_id == engineer.id, HealthCheck.scheduled_on == day))
    if same_day is not None:
        raise Conflict(
            f"engineer: {engineer.name} is already booked for Health Check {rules.label(same_day.id)} on "
            f"{day.isoformat()}",
            field="engineer",
            existing=rules.label(same_day.id),
        )


def _check_slot(
    session: Session,
    *,
    customer: Customer,
    day: date,
    engineer: Person,
    now: datetime,
    other_than: int | None = None,
    new_day: bool = True,
) -> tuple[date, date | None]:
    """Every booking rule for `day` with `engineer`, `other_than` this Health Check (a reschedule); the year.

    The day's own rules (14 days' notice, a business day) are for a day being agreed (`new_day`): a new
    engineer for the day already agreed may step in at short notice."""
    year = rules.certificate_year(
        start=customer.certificate_start, end=customer.certificate_end, day=day, customer=customer.id
    )
    if new_day:
        rules.check_booking_date(calendar=customer.calendar(), day=day, now=now, customer=customer.id)
    _check_engineer(session, engineer=engineer, day=day)
    _check_taken(session, customer=customer, year=year, day=day, engineer=engineer, other_than=other_than)
    return year


def _write_deciding_races(session: Session, write: Callable[[], T], recheck: Callable[[], object]) -> T:
    """Make the booking or its change (`write`) in a savepoint and flush it; if a concurrent one won a unique
    index meanwhile, refuse as the rules would now. Nothing may be pending before: `begin_nested` flushes it
    ahead of the SAVEPOINT, where a violation would abort the whole transaction."""
    try:
        with session.begin_nested():
            result = write()
            session.flush()
    except IntegrityError as exc:
        # the savepoint is rolled back and what it changed expired (a new booking is no longer in the session,
        # a rescheduled one reads its stored state again): the transaction goes on, and the rules see the winner
        recheck()  # raises its precise 409
        raise Conflict(f"the Health Check collides with another booking ({exc.orig.diag.constraint_name})") from None
    return result


# --------------------------------------------------------------------------------------------------
# Changes


def _snapshot(healthcheck: HealthCheck) -> dict:
    return {name: getattr(healthcheck, name) for name in TRACKED}


def _audit(session, *, actor: Person | Actor, healthcheck: HealthCheck, action: str, before, reason=None, details=None):
    session.flush()  # the version after the change is the one the update wrote
    record(
        session,
        actor=actor if isinstance(actor, Actor) else actor_of(actor),
        action=f"healthcheck.{action}",
        entity_type="healthcheck",
        entity_id=str(healthcheck.id),
        before=before,
        after={**_snapshot(healthcheck), **(details or {})},
        reason=reason,
    )


def _check_version(healthcheck: HealthCheck, expected: int | None) -> None:
    if expected is not None and expected != healthcheck.version:
        raise StaleVersion(
            f"{rules.label(healthcheck.id)} is at version {healthcheck.version}, you sent {expected}; reload it",
            current_version=healthcheck.version,
        )


def _not_before_the_day(healthcheck: HealthCheck, customer: Customer, now: datetime, action: str) -> None:
    today = rules.local_today(now, customer.calendar())
    if today < healthcheck.scheduled_on:
        raise Conflict(
            f"{rules.label(healthcheck.id)} is on {healthcheck.scheduled_on.isoformat()} ({customer.timezone}); it "
            f"cannot {action} before that day (today is {today.isoformat()} there)",
            field="date",
        )


def _open(
    session: Session, *, actor: Person, ref: str | int, action: str, permission: str, version: int | None
) -> tuple[HealthCheck, Customer, str]:
    """The Health Check locked for `action`, if `actor` may do it, it is still at `version` and `action` may
    follow its status; with its customer and the status `action` leads to."""
    access.authorize(actor, permission)
    healthcheck = _visible(session, actor=actor, ref=ref, lock=True)
    _check_version(healthcheck, version)
    target = rules.next_status(action, current=healthcheck.status, name=rules.label(healthcheck.id))
    return healthcheck, session.get(Customer, healthcheck.customer_id), target


def _apply(healthcheck: HealthCheck, *, now: datetime, **changes) -> dict:
    """Set the changes (the status among them); returns the state before, for the audit event."""
    before = _snapshot(healthcheck)
    for name, value in changes.items():
        setattr(healthcheck, name, value)
    healthcheck.updated_at = now
    return before


def book(session: Session, *, actor: Person, data: BookIn, now: datetime, config: AppConfig) -> HealthCheck:
    """Book a Health Check under every rule; the customer, their TAMs and the engineer are told."""
    access.authorize(actor, "healthcheck.book")
    customer = customer_for(session, actor=actor, customer_id=data.customer_id)
    # its certificate as it stands, held until commit: a certificate change waits (or has re-cut the years)
    session.refresh(customer, with_for_update={"read": True})
    engineer = _engineer(session, data.engineer)

    def check() -> tuple[date, date | None]:
        return _check_slot(session, customer=customer, day=data.date, engineer=engineer, now=now)

    year = check()
    healthcheck = HealthCheck(
        customer_id=customer.id,
        engineer_id=engineer.id,
        scheduled_on=data.date,
        certificate_year_start=year[0],
        status="booked",
        booked_by_id=actor.id,
        booked_at=now,
        updated_at=now,
    )
    _write_deciding_races(session, lambda: session.add(healthcheck), check)
    _audit(
        session, actor=actor, healthcheck=healthcheck, action="booked", before=None, details={"customer": customer.id}
    )
    _announce(
        session,
        healthcheck=healthcheck,
        customer=customer,
        event="healthcheck.booked",
        key=rules.label(healthcheck.id),
        engineers=[engineer],
        context={},
        now=now,
        config=config,
    )
    return healthcheck


def confirm(session: Session, *, actor: Person, ref: str | int, version: int | None, now: datetime) -> HealthCheck:
    """The customer agreed the date (recorded by the TAM or the duty manager)."""
    healthcheck, _, target = _open(
        session, actor=actor, ref=ref, action="confirm", permission="healthcheck.book", version=version
    )
    before = _apply(healthcheck, now=now, status=target)
    _audit(session, actor=actor, healthcheck=healthcheck, action="confirmed", before=before)
    return healthcheck


def start(session: Session, *, actor: Person, ref: str | int, version: int | None, now: datetime) -> HealthCheck:
    """The engineer begins the audit: on its day (in the customer's zone) or later, never before."""
    healthcheck, customer, target = _open(
        session, actor=actor, ref=ref, action="start", permission="healthcheck.conduct", version=version
    )
    _not_before_the_day(healthcheck, customer, now, "start")
    before = _apply(healthcheck, now=now, status=target)
    _audit(session, actor=actor, healthcheck=healthcheck, action="started", before=before)
    return healthcheck


def reschedule(
    session: Session, *, actor: Person, ref: str | int, data: RescheduleIn, now: datetime, config: AppConfig
) -> HealthCheck:
    """A new date and/or engineer under the same rules (this booking not counted against itself; a new engineer
    on the same day needs no 14 days' notice); back to booked until the customer confirms again. Everyone
    concerned is told, the previous engineer too."""
    healthcheck, customer, target = _open(
        session, actor=actor, ref=ref, action="reschedule", permission="healthcheck.book", version=data.version
    )
    previous_date, previous_engineer = healthcheck.scheduled_on, session.get(Person, healthcheck.engineer_id)
    day = data.date or previous_date
    engineer = _engineer(session, data.engineer) if data.engineer else previous_engineer

    def check() -> tuple[date, date | None]:
        return _check_slot(
            session,
            customer=customer,
            day=day,
            engineer=engineer,
            now=now,
            other_than=healthcheck.id,
            new_day=day != previous_date,
        )

    year = check()
    before = _write_deciding_races(
        session,
        lambda: _apply(
            healthcheck,
            now=now,
            status=target,
            scheduled_on=day,
            engineer_id=engineer.id,
            certificate_year_start=year[0],
        ),
        check,
    )
    _audit(session, actor=actor, healthcheck=healthcheck, action="rescheduled", before=before, reason=data.reason)
    _announce(
        session,
        healthcheck=healthcheck,
        customer=customer,
        event="healthcheck.rescheduled",
        key=f"{rules.label(healthcheck.id)}:v{healthcheck.version}",
        engineers=[engineer, previous_engineer],
        context={"reason": data.reason, "previous_date": previous_date, "previous_engineer": previous_engineer.name},
        now=now,
        config=config,
    )
    return healthcheck


def cancel(
    session: Session, *, actor: Person, ref: str | int, data: CancelIn, now: datetime, config: AppConfig
) -> HealthCheck:
    """Cancel with a reason; the certificate year (and the engineer's day) are free for another booking."""
    healthcheck, customer, target = _open(
        session, actor=actor, ref=ref, action="cancel", permission="healthcheck.book", version=data.version
    )
    before = _apply(healthcheck, now=now, status=target)
    _audit(session, actor=actor, healthcheck=healthcheck, action="cancelled", before=before, reason=data.reason)
    _announce(
        session,
        healthcheck=healthcheck,
        customer=customer,
        event="healthcheck.cancelled",
        key=rules.label(healthcheck.id),
        engineers=[session.get(Person, healthcheck.engineer_id)],
        context={"reason": data.reason},
        now=now,
        config=config,
    )
    return healthcheck


def record_findings(
    session: Session, *, actor: Person, ref: str | int, rows: object, version: int | None, now: datetime
) -> list[HealthCheckFinding]:
    """Store the findings (all rows valid, or none stored: the first bad row is named) and move the Health Check
    to findings_recorded: from in_progress, or straight from confirmed when a one-day remote audit is written up
    afterwards; while the report is not delivered, more findings may be added. An empty list records that
    nothing was found."""
    healthcheck, customer, target = _open(
        session, actor=actor, ref=ref, action="record_findings", permission="healthcheck.conduct", version=version
    )
    valid = validate_findings(rows)
    _not_before_the_day(healthcheck, customer, now, "have findings")
    before = _apply(healthcheck, now=now, status=target)
    added = [HealthCheckFinding(healthcheck_id=healthcheck.id, **f.model_dump()) for f in valid]
    session.add_all(added)
    session.flush()
    _audit(
        session,
        actor=actor,
        healthcheck=healthcheck,
        action="findings_recorded",
        before=before,
        details={
            "findings_added": len(added),
            "by_severity": {s: sum(f.severity == s for f in valid) for s in SEVERITIES},
            "finding_ids": [f.id for f in added],
        },
    )
    return added


def _report_data(session: Session, healthcheck: HealthCheck, customer: Customer, now: datetime) -> report.ReportData:
    return report.ReportData(
        healthcheck=present(session, [healthcheck])[0],
        findings=[FindingOut.model_validate(f) for f in _findings_of(session, healthcheck.id)],
        language=effective(session, customer=customer).language,
        made_at=now,
    )


def report_document(session: Session, *, actor: Person, ref: str | int, fmt: str, now: datetime) -> Attachment:
    """The report as HTML or PDF, in the customer's language, whatever the status (a draft until delivered)."""
    healthcheck = _visible(session, actor=actor, ref=ref)
    data = _report_data(session, healthcheck, session.get(Customer, healthcheck.customer_id), now)
    if fmt == "pdf":
        return report.render_pdf(data)
    if fmt == "html":
        return Attachment(
            f"{rules.label(healthcheck.id)}.html", "text/html; charset=utf-8", report.render_html(data).encode()
        )
    raise InvalidInput(f"format: '{fmt}' is not one of html, pdf", field="format")


def deliver(
    session: Session, *, actor: Person, ref: str | int, version: int | None, now: datetime, config: AppConfig
) -> HealthCheck:
    """Send the report (HTML e-mail, PDF attached) to the customer's e-mail recipients; their TAMs and the
    engineer are told it went. Refused when the customer has nobody to send it to."""
    healthcheck, customer, target = _open(
        session, actor=actor, ref=ref, action="deliver", permission="healthcheck.conduct", version=version
    )
    prefs = effective(session, customer=customer)
    if not prefs.email_recipients:
        raise Conflict(
            f"customer {customer.id} has no e-mail recipients for the report: add e-mail contacts to the customer "
            "or its notification preferences",
            field="customer",
        )
    before = _apply(healthcheck, now=now, status=target)
    session.flush()
    data = _report_data(session, healthcheck, customer, now)
    message = report.email(data)
    for address in prefs.email_recipients:
        queue(
            session,
            request_id=None,
            event=REPORT_EVENT,
            recipient=Recipient("customer", "email", address, prefs.language),
            context=message,
            at=_customer_moment(prefs, now, config),
            key=rules.label(healthcheck.id),
        )
    _audit(
        session,
        actor=actor,
        healthcheck=healthcheck,
        action="report_delivered",
        before=before,
        details={"recipients": prefs.email_recipients, "findings": len(data.findings)},
    )
    _announce(
        session,
        healthcheck=healthcheck,
        customer=customer,
        event="healthcheck.delivered",
        key=rules.label(healthcheck.id),
        engineers=[session.get(Person, healthcheck.engineer_id)],
        context={"findings": len(data.findings), "recipients": prefs.email_recipients},
        now=now,
        config=config,
        to_customer=False,
    )
    return healthcheck


# --------------------------------------------------------------------------------------------------
# The certificate


def change_certificate(
    session: Session, *, actor: Actor, customer_id: str, period: CertificatePeriod, now: datetime
) -> Customer:
    """Set or renew the customer's support certificate and, in the same transaction, re-cut the certificate year
    of each of its Health Checks in hand (not cancelled, report not delivered; each change audited), so that one
    per certificate year still holds. Refused (409 naming the bookings, nothing changed) when one of them would
    fall outside the new certificate, or two — or one and a delivered one — into one of its years: reschedule or
    cancel first. A delivered Health Check stays in the year it was made in.

    Here rather than in `customers.service` because customers sit below Health Checks."""
    customer = customers.get_customer(session, customer_id=customer_id)
    session.refresh(customer, with_for_update=True)  # bookings read it under a share lock: none comes between
    in_hand = session.scalars(
        select(HealthCheck)
        .where(HealthCheck.customer_id == customer.id, HealthCheck.status.in_(rules.IN_HAND))
        .order_by(HealthCheck.scheduled_on, HealthCheck.id)
        .with_for_update()
    ).all()
    delivered = {
        hc.certificate_year_start: hc
        for hc in session.scalars(
            select(HealthCheck).where(HealthCheck.customer_id == customer.id, HealthCheck.status == "report_delivered")
        )
    }
    new = rules.period_text(period.certificate_start, period.certificate_end)
    years: dict[tuple[date, date | None], list[HealthCheck]] = {}
    problems, involved = [], []
    for hc in in_hand:
        try:
            year = rules.certificate_year(
                start=period.certificate_start, end=period.certificate_end, day=hc.scheduled_on, customer=customer.id
            )
        except InvalidInput:
            problems.append(f"{rules.label(hc.id)} on {hc.scheduled_on.isoformat()} would be outside it")
            involved.append(hc)
            continue
        years.setdefault(year, []).append(hc)
    for year, together in years.items():
        sharing = together + ([delivered[year[0]]] if year[0] in delivered else [])
        if len(sharing) > 1:
            named = " and ".join(
                f"{rules.label(hc.id)} on {hc.scheduled_on.isoformat()}"
                + (" (report delivered)" if hc.status == "report_delivered" else "")
                for hc in sharing
            )
            problems.append(f"{named} would share its certificate year {rules.period_text(*year)}")
            involved += sharing
    if problems:
        raise Conflict(
            f"customer {customer.id}: the certificate {new} does not fit its Health Checks: {'; '.join(problems)}; "
            "one per certificate year, inside the certificate (reschedule or cancel them first)",
            field="certificate",
            bookings=[rules.label(hc.id) for hc in involved],
        )
    old = (
        rules.period_text(customer.certificate_start, customer.certificate_end)
        if customer.certificate_start
        else "none"
    )
    customers.set_certificate(session, actor=actor, customer_id=customer.id, period=period)
    for (first, _), (hc,) in years.items():
        if hc.certificate_year_start != first:
            before = _apply(hc, now=now, certificate_year_start=first)
            _audit(
                session,
                actor=actor,
                healthcheck=hc,
                action="certificate_year_changed",
                before=before,
                reason=f"the support certificate changed from {old} to {new}",
            )
    return customer


# --------------------------------------------------------------------------------------------------
# Notices and reminders


def _customer_moment(prefs: Effective, at: datetime, config: AppConfig) -> datetime:
    """When a customer notice queued at `at` may go: after their quiet hours if the policy lets quiet hours hold
    back the lowest severity — a Health Check notice is never urgent."""
    lowest = max(int(severity) for severity in config.severity.severity)
    return prefs.deliver_at(severity=lowest, at=at, held_back=config.notifications.quiet_hours.severities)


def _people(people: Iterable[Person]) -> list[Recipient]:
    """The active people among `people`, by e-mail (a Health Check's notices carry dates and documents to keep)."""
    chosen = {person.id: person for person in people if person is not None and person.active}
    return [r for person in chosen.values() for r in person_recipients(person, via="email")]


def _announce(
    session: Session,
    *,
    healthcheck: HealthCheck,
    customer: Customer,
    event: str,
    key: str,
    engineers: list[Person],
    context: dict,
    now: datetime,
    config: AppConfig,
    to_customer: bool = True,
) -> list[Notification]:
    """Queue `event` to the customer's e-mail recipients (after their quiet hours), their TAMs and the
    engineer(s), each in their language; dates are days in the customer's zone, spelled out in the reader's
    language."""
    prefs = effective(session, customer=customer)
    customer_at = _customer_moment(prefs, now, config)
    recipients = [Recipient("customer", "email", a, prefs.language) for a in prefs.email_recipients if to_customer]
    recipients += _people([*tams_of(session, customer_id=customer.id), *engineers])
    engineer = session.get(Person, healthcheck.engineer_id)
    year_end = _year_end(customer, healthcheck)
    queued = []
    for recipient in recipients:
        language = recipient.language if recipient.language in report.LANGUAGES else "en"
        values = {
            "healthcheck": rules.label(healthcheck.id),
            "customer": customer.name,
            "date": healthcheck.scheduled_on.isoformat(),
            "when": report.long_date(healthcheck.scheduled_on, language),
            "timezone": customer.timezone,
            "engineer": engineer.name,
            "certificate_year": rules.period_text(healthcheck.certificate_year_start, year_end),
            "contact": config.notifications.internal.email,
            **context,
        }
        if "previous_date" in context:
            values["previous_when"] = report.long_date(context["previous_date"], language)
        at = customer_at if recipient.audience == "customer" else now
        row = queue(session, request_id=None, event=event, recipient=recipient, context=values, at=at, key=key)
        if row is not None:
            queued.append(row)
    return queued


def queue_due_reminders(session: Session, *, now: datetime, config: AppConfig) -> list[Notification]:
    """Queue the reminders due at `now` for every booked or confirmed Health Check: 7 days and 1 day before, from
    09:00 (`rules.REMINDER_TIME`) in the customer's zone. Each goes once per recipient and date (the outbox's
    dedupe key holds the date, so a rescheduled Health Check is reminded again), whatever restarts or
    overlapping runs; one whose moment passed while nothing ran still goes (from that hour) while the Health
    Check is ahead, none on or after its day. The customer's copy waits for the end of their quiet hours."""
    utc_today = now.astimezone(UTC).date()
    candidates = session.execute(
        select(HealthCheck, Customer)
        .join(Customer, Customer.id == HealthCheck.customer_id)
        .where(
            HealthCheck.status.in_(rules.LIVE_BEFORE_THE_DAY),
            # every zone's today is within a day of UTC's: a coarse window, decided per customer below
            HealthCheck.scheduled_on >= utc_today,
            HealthCheck.scheduled_on <= utc_today + timedelta(days=max(rules.REMINDER_DAYS) + 1),
        )
        .order_by(HealthCheck.id)
    ).all()
    queued: list[Notification] = []
    for healthcheck, customer in candidates:
        local = now.astimezone(customer.calendar().zone)
        days = rules.due_reminder(scheduled_on=healthcheck.scheduled_on, local=local)
        if days is None:
            continue
        queued += _announce(
            session,
            healthcheck=healthcheck,
            customer=customer,
            event="healthcheck.reminder",
            key=f"{rules.label(healthcheck.id)}:{healthcheck.scheduled_on.isoformat()}:{days}d",
            engineers=[session.get(Person, healthcheck.engineer_id)],
            context={"days": days, "days_left": (healthcheck.scheduled_on - local.date()).days},
            now=now,
            config=config,
        )
    return queued
