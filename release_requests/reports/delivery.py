"""The scheduled sender: the daily digest at each recipient's own local time, each customer's regular report
once its period is over, and the Health Check reminders — each exactly once, across restarts and overlapping
runs.

How "exactly once" holds: a delivery is a `report_deliveries` row with a unique key (kind, recipient, first
and last day of the period: a monthly and a quarterly report can start on the same day), inserted ON CONFLICT
DO NOTHING in the same transaction as its outbox rows. The run that inserts it queues the messages; any other
run (a restart, a second worker) finds the key taken and does nothing. The outbox then sends each message
once in effect (`notifications.delivery`). A crash before the commit leaves neither the row nor the
messages, so the next run sends it.

Decisions, written down:
* A digest is due once the recipient's local time of day has reached their digest time; a server that was
  down at 09:00 sends it when it comes back, the same local day.
* A person with a digest of their own (staff by default, anyone who subscribed) gets that one, at their time,
  covering the customers they may see; their address in a customer's recipient list adds nothing. Any other
  address gets each customer's digest that lists it (keyed by address and customer), at the customer's time;
  a customer's Slack channel gets its customer's digest if the customer asked for it.
* An empty digest (no severity 1–2 request open or changed in 24 h) is recorded and not sent: a daily
  "nothing happened" teaches people to ignore the mail.
* A regular report is due from its period's first following day at the customer's digest time, and only
  within `REPORT_GRACE` of the period's end: after a long outage, or on a first start, old periods are not
  mailed out in a burst (they can be fetched on demand, `relreq report customer`).
* Time is the database's (`clock.db_now`) unless a test passes `now`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from release_requests import access
from release_requests.audit.service import Actor
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.crashpoints import crash_point
from release_requests.customers.models import Customer
from release_requests.db import transaction
from release_requests.documents import Attachment
from release_requests.healthchecks.service import queue_due_reminders
from release_requests.notifications.render import composed
from release_requests.notifications.service import Recipient, queue
from release_requests.people.models import Person
from release_requests.reports import rendering
from release_requests.reports.models import DigestSubscription, ReportDelivery
from release_requests.reports.preferences import (
    EffectiveReportPrefs,
    digest_default,
    digest_zone,
    effective_report_prefs,
)
from release_requests.reports.schemas import Period
from release_requests.reports.service import build_customer_report, build_daily_digest

log = logging.getLogger(__name__)
SENDER = Actor.system("reports")
REPORT_GRACE = timedelta(days=7)
DIGEST_EVENT, REPORT_EVENT = "report.digest", "report.customer"


@dataclass(frozen=True)
class DigestDue:
    recipient: str  # the delivery key: `email:<address>` or `slack:<customer id>`
    medium: Recipient
    customer_ids: frozenset[str] | None  # whose requests it covers; None: every customer
    zone: str
    day: date  # the recipient's local day


@dataclass(frozen=True)
class ReportDue:
    customer_id: str
    period: Period
    prefs: EffectiveReportPrefs


@dataclass(frozen=True)
class Sent:
    kind: str
    recipient: str
    period_start: date
    items: int
    messages: int


def _local(now: datetime, zone: str) -> datetime:
    return now.astimezone(ZoneInfo(zone))


def _reached(now: datetime, zone: str, at: time) -> date | None:
    """The recipient's local day if their time of day `at` has come today, else None."""
    local = _local(now, zone)
    return local.date() if local.time() >= at else None


# --- what is due ---------------------------------------------------------------------------------------------


CustomerPrefs = dict[str, tuple[Customer, EffectiveReportPrefs]]


def customer_prefs(session: Session) -> CustomerPrefs:
    """Every customer with its report preferences, read once per pass for the digests and the reports."""
    return {c.id: (c, effective_report_prefs(session, customer=c)) for c in session.scalars(select(Customer))}


def _people_digests(session: Session, now: datetime, customers: CustomerPrefs) -> tuple[list[DigestDue], set[str]]:
    """The people whose own digest is due, and every address that has a digest of its own (due now or not)."""
    subscriptions = {row.person_id: row for row in session.scalars(select(DigestSubscription))}
    due, own = [], set()
    for person in session.scalars(select(Person).where(Person.active.is_(True), Person.email.is_not(None))):
        row = subscriptions.get(person.id)
        enabled, at = (row.enabled, row.send_at) if row else (digest_default(person).enabled, "09:00")
        if not enabled:
            continue
        own.add(person.email.lower())
        zone = digest_zone(session, person)
        if (day := _reached(now, zone, time.fromisoformat(at))) is None:
            continue
        language = person.language or (customers[person.customer_id][1].language if person.customer_id else "en")
        audience = "customer" if person.customer_id else "internal"
        due.append(
            DigestDue(
                recipient=f"email:{person.email.lower()}",
                medium=Recipient(audience, "email", person.email, language, person.id),
                customer_ids=access.visible_customer_ids(session, person),
                zone=zone,
                day=day,
            )
        )
    return due, own


def _customer_digests(now: datetime, customers: CustomerPrefs, *, own: set[str]) -> list[DigestDue]:
    """Each customer's digest to its report recipients, keyed per customer (a contact of two customers gets
    both); an address with a digest of its own (`own`) is left to that one."""
    due = []
    for customer, prefs in customers.values():
        if not prefs.digest_enabled or (day := _reached(now, customer.timezone, prefs.digest_at)) is None:
            continue
        scope = frozenset({customer.id})
        for address in prefs.recipients:
            if address.lower() in own:
                continue
            medium = Recipient("customer", "email", address, prefs.language)
            due.append(DigestDue(f"email:{address.lower()}:{customer.id}", medium, scope, customer.timezone, day))
        if prefs.digest_slack_channel:
            medium = Recipient("customer", "slack", prefs.digest_slack_channel, prefs.language)
            due.append(DigestDue(f"slack:{customer.id}", medium, scope, customer.timezone, day))
    return due


def due_digests(session: Session, *, now: datetime, customers: CustomerPrefs) -> list[DigestDue]:
    """Every digest whose time has come and that was not yet delivered that day."""
    people, own = _people_digests(session, now, customers)
    candidates = people + _customer_digests(now, customers, own=own)
    days = {d.day for d in candidates}
    taken = set(
        session.execute(
            select(ReportDelivery.recipient, ReportDelivery.period_start).where(
                ReportDelivery.kind == "digest", ReportDelivery.period_start.in_(days)
            )
        ).all()
    )
    return [d for d in candidates if (d.recipient, d.day) not in taken]


def last_complete_period(frequency: str, today: date) -> Period:
    """The most recent whole week (Monday–Sunday), month or quarter that ended before `today`."""
    if frequency == "weekly":
        start = today - timedelta(days=today.weekday() + 7)
        end = start + timedelta(days=6)
        iso = start.isocalendar()
        return Period(start=start, end=end, label=f"{iso.year}-W{iso.week:02d}")
    if frequency == "monthly":
        end = today.replace(day=1) - timedelta(days=1)
        return Period(start=end.replace(day=1), end=end, label=f"{end:%Y-%m}")
    if frequency == "quarterly":
        first_month = 3 * ((today.month - 1) // 3) + 1
        end = today.replace(month=first_month, day=1) - timedelta(days=1)
        start = end.replace(month=end.month - 2, day=1)
        return Period(start=start, end=end, label=f"{end.year}Q{(end.month - 1) // 3 + 1}")
    raise ValueError(f"no period for frequency '{frequency}'")


def due_reports(session: Session, *, now: datetime, customers: CustomerPrefs) -> list[ReportDue]:
    due = []
    for customer, prefs in customers.values():
        if prefs.frequency == "none" or not prefs.recipients:
            continue
        local = _local(now, customer.timezone)
        period = last_complete_period(prefs.frequency, local.date())
        first_day = period.end + timedelta(days=1)
        sending_from = datetime.combine(first_day, prefs.digest_at, tzinfo=ZoneInfo(customer.timezone))
        if not (sending_from <= now < sending_from + REPORT_GRACE):
            continue
        if _local(customer.created_at, customer.timezone).date() > period.end:
            continue  # a customer that did not exist yet has no report for the period
        due.append(ReportDue(customer.id, period, prefs))
    taken = set(
        session.execute(
            select(ReportDelivery.customer_id, ReportDelivery.period_start, ReportDelivery.period_end).where(
                ReportDelivery.kind == "customer_report",
                ReportDelivery.period_start.in_({d.period.start for d in due}),
            )
        ).all()
    )
    return [d for d in due if (d.customer_id, d.period.start, d.period.end) not in taken]


# --- delivering one ------------------------------------------------------------------------------------------


def _claim(
    session: Session, *, kind: str, recipient: str, customer_id: str | None, start: date, end: date, now
) -> int | None:
    return session.execute(
        insert(ReportDelivery)
        .values(
            kind=kind,
            recipient=recipient,
            customer_id=customer_id,
            period_start=start,
            period_end=end,
            as_of=now,
            items=0,
        )
        .on_conflict_do_nothing(constraint="uq_report_deliveries_once")
        .returning(ReportDelivery.id)
    ).scalar_one_or_none()


def deliver_digest(session: Session, *, due: DigestDue, now: datetime, config: AppConfig) -> Sent | None:
    """Claim the day's digest for one recipient and queue it (None: another run had claimed it)."""
    claimed = _claim(
        session, kind="digest", recipient=due.recipient, customer_id=None, start=due.day, end=due.day, now=now
    )
    if claimed is None:
        return None
    digest = build_daily_digest(session, customer_ids=due.customer_ids, as_of=now, config=config)
    session.get(ReportDelivery, claimed).items = len(digest.rows)
    if not digest.rows:
        return Sent("digest", due.recipient, due.day, 0, 0)
    language, zone = due.medium.language, due.zone
    context = composed(
        subject=rendering.digest_subject(digest, language=language, zone=zone),
        text=rendering.digest_text(digest, language=language, zone=zone),
        html=rendering.digest_html(digest, language=language, zone=zone),
        slack_blocks=rendering.digest_slack_blocks(digest, language=language, zone=zone),
    )
    row = queue(
        session,
        request_id=None,
        event=DIGEST_EVENT,
        recipient=due.medium,
        context=context,
        at=db_now(session),  # send at once (`now` is the logical time the report is as of)
        key=due.day.isoformat(),
        actor=SENDER,
    )
    crash_point("reports:after_queue")  # queued, not committed: a crash here must leave neither claim nor message
    return Sent("digest", due.recipient, due.day, len(digest.rows), int(row is not None))


def _report_attachments(report, prefs: EffectiveReportPrefs) -> tuple[Attachment, ...]:
    name = f"report-{report.customer_id}-{report.period.label}"
    if prefs.format == "pdf":
        pdf = rendering.report_pdf(report, language=prefs.language, sections=prefs.sections)
        return (Attachment(f"{name}.pdf", "application/pdf", pdf),)
    if prefs.format == "csv":
        return (Attachment(f"{name}.csv", "text/csv", rendering.report_csv(report).encode()),)
    return ()


def deliver_report(session: Session, *, due: ReportDue, now: datetime, config: AppConfig) -> Sent | None:
    """Claim one customer's report of one period and queue it to each of its recipients."""
    period, prefs = due.period, due.prefs
    recipient = f"customer:{due.customer_id}"
    claimed = _claim(
        session,
        kind="customer_report",
        recipient=recipient,
        customer_id=due.customer_id,
        start=period.start,
        end=period.end,
        now=now,
    )
    if claimed is None:
        return None
    report = build_customer_report(session, customer_id=due.customer_id, period=period, config=config, as_of=now)
    session.get(ReportDelivery, claimed).items = report.requests_total
    html = rendering.report_html(report, language=prefs.language, sections=prefs.sections)
    context = composed(
        subject=rendering.report_subject(report, language=prefs.language),
        text=rendering.report_text(report, language=prefs.language, sections=prefs.sections),
        html=html,
        slack_blocks=[],
        attachments=_report_attachments(report, prefs),
    )
    queued = 0
    for address in prefs.recipients:
        row = queue(
            session,
            request_id=None,
            event=REPORT_EVENT,
            recipient=Recipient("customer", "email", address, prefs.language),
            context=context,
            at=db_now(session),  # send at once (`now` is the logical time the report is as of)
            key=f"{due.customer_id}:{period.start.isoformat()}:{period.end.isoformat()}",
            actor=SENDER,
        )
        queued += row is not None
    return Sent("customer_report", recipient, period.start, report.requests_total, queued)


def send_due(sessions: sessionmaker, *, config: AppConfig, now: datetime | None = None) -> list[Sent]:
    """One pass: every due digest and report, each in its own transaction (one failure does not hold back the
    others; it is logged and retried by the next pass), then the Health Check reminders."""
    with transaction(sessions) as session:
        now = now or db_now(session)
        customers = customer_prefs(session)
        digests = due_digests(session, now=now, customers=customers)
        reports = due_reports(session, now=now, customers=customers)
    sent: list[Sent] = []
    work = [(deliver_digest, d) for d in digests] + [(deliver_report, r) for r in reports]
    for deliver, due in work:
        try:
            with transaction(sessions) as session:
                if (done := deliver(session, due=due, now=now, config=config)) is not None:
                    sent.append(done)
        except Exception:  # one recipient's failure must not stop the others; the next pass retries
            log.exception("could not deliver %s", due)
    with transaction(sessions) as session:
        reminders = queue_due_reminders(session, now=now, config=config)
    sent += [Sent(r.event, r.recipient, now.date(), 1, 1) for r in reminders]
    return sent
