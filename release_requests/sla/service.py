"""SLA state of requests, computed from their audit events (never a stored counter that can drift).

The clock starts when the customer reached us (`received_at` of the submission). It is met by the first
*qualified response*: a triage decision (accept, reject, duplicate), an explicit response to the
customer, or the customer withdrawing the request. `needs_info` pauses it until the customer answers.
A severity change re-targets it from the same start (the new severity's target, with the reason kept
in the log).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from release_requests.audit.models import AuditEvent
from release_requests.audit.service import pending_events
from release_requests.clock import db_now
from release_requests.config import AppConfig, SeverityPolicy
from release_requests.customers.models import Customer
from release_requests.db import get_many
from release_requests.errors import InvalidInput
from release_requests.requests.models import ReleaseRequest
from release_requests.sla import calendar

QUALIFYING_ACTIONS = frozenset(
    {"request.accepted", "request.rejected", "request.duplicate", "request.responded", "request.cancelled"}
)
PAUSE_START, PAUSE_END = "request.needs_info", "request.answered"
SlaState = Literal["on_track", "at_risk", "breached", "met"]


class SlaStatus(BaseModel):
    state: SlaState
    severity: int
    clock: Literal["24x7", "business"]
    target_minutes: int
    started_at: datetime
    due_at: datetime | None  # None while paused
    due_at_local: str | None
    met_at: datetime | None
    paused: bool
    paused_seconds: int
    elapsed_seconds: int
    remaining_seconds: int | None
    overdue_seconds: int | None
    elapsed_fraction: float
    thresholds_crossed: list[str]


@dataclass
class ClockFacts:
    """What the audit log says about one request's clock."""

    started_at: datetime
    severity: int
    pauses: list[tuple[datetime, datetime | None]]
    met_at: datetime | None


SUBMITTED = "request.submitted"  # the clock starts at its `received_at`


def facts_from_events(events: Iterable[AuditEvent], *, pending_at: datetime | None = None) -> ClockFacts | None:
    """The clock's facts from a request's events in chain order; an event not chained yet (no time: recorded
    by the reading transaction itself) happened at `pending_at`, the transaction's time."""
    started_at = severity = met_at = None
    pauses: list[tuple[datetime, datetime | None]] = []
    for event in events:
        after = event.after or {}
        if event.entity_type != "request":
            continue
        at = event.occurred_at or pending_at
        if event.action == SUBMITTED:
            started_at = datetime.fromisoformat(after["received_at"])
        if "severity" in after:
            severity = after["severity"]
        if event.action == PAUSE_START and met_at is None:
            pauses.append((at, None))
        elif event.action == PAUSE_END and pauses and pauses[-1][1] is None:
            pauses[-1] = (pauses[-1][0], at)
        elif event.action in QUALIFYING_ACTIONS and met_at is None:
            met_at = at
    if started_at is None:
        return None
    return ClockFacts(started_at, severity, pauses, met_at)


def threshold_label(fraction: float) -> str:
    return f"{round(fraction * 100)}%"


def compute(facts: ClockFacts, *, policy: SeverityPolicy, cal: calendar.BusinessCalendar, now: datetime) -> SlaStatus:
    target = timedelta(minutes=policy.response_minutes)
    until = min(now, facts.met_at) if facts.met_at else now
    # a pause still open when the clock was met ends at the meeting time
    pauses = [(s, e if e is not None else (facts.met_at if facts.met_at else None)) for s, e in facts.pauses]
    due = calendar.due_at(start=facts.started_at, target=target, clock=policy.clock, calendar=cal, pauses=pauses)
    spent = calendar.elapsed(start=facts.started_at, now=until, clock=policy.clock, calendar=cal, pauses=pauses)
    paused_seconds = sum(((e or until) - s).total_seconds() for s, e in pauses if s < until)
    fraction = spent / target
    crossed = [threshold_label(t.at) for t in policy.thresholds if fraction >= t.at]
    if facts.met_at is not None:
        state: SlaState = "met" if due is None or facts.met_at <= due else "breached"
    elif due is not None and now >= due:
        state = "breached"
    else:
        state = "at_risk" if crossed else "on_track"
    if state == "breached" or (due is not None and facts.met_at is None and now >= due):
        crossed.append("breach")
    remaining = overdue = None
    if facts.met_at is None and due is not None:
        delta = (due - now).total_seconds()
        remaining, overdue = (int(delta), None) if delta > 0 else (None, int(-delta))
    return SlaStatus(
        state=state,
        severity=facts.severity,
        clock=policy.clock,
        target_minutes=policy.response_minutes,
        started_at=facts.started_at,
        due_at=due,
        due_at_local=due.astimezone(cal.zone).strftime(f"%Y-%m-%d %H:%M %Z ({cal.timezone})") if due else None,
        met_at=facts.met_at,
        paused=any(e is None for _, e in pauses),
        paused_seconds=int(paused_seconds),
        elapsed_seconds=int(spent.total_seconds()),
        remaining_seconds=remaining,
        overdue_seconds=overdue,
        elapsed_fraction=round(fraction, 4),
        thresholds_crossed=crossed,
    )


def status_of_many(
    session: Session,
    *,
    requests: list[ReleaseRequest],
    config: AppConfig,
    now: datetime,
    customers: dict[str, Customer] | None = None,
) -> dict[str, SlaStatus]:
    """SLA status of several requests with two queries (events, and customers unless the caller has them),
    for lists and queues."""
    if not requests:
        return {}
    wanted = {r.id for r in requests}
    pending = [e for e in pending_events(session) if e.request_id in wanted and e.entity_type == "request"]
    # A request whose filing is among them was filed by this transaction and nothing of it is chained yet (events
    # are chained in the order recorded): the log has nothing to add, and the hot path of filing skips the query.
    filed_now = {e.request_id for e in pending if e.action == SUBMITTED}
    events: dict[str, list[AuditEvent]] = defaultdict(list)
    if wanted - filed_now:
        for event in session.scalars(
            select(AuditEvent)
            .where(AuditEvent.request_id.in_(wanted - filed_now), AuditEvent.entity_type == "request")
            .order_by(AuditEvent.seq)
            .execution_options(audit_pending="merged")  # this transaction's own events are added below
        ):
            events[event.request_id].append(event)
    pending_at = None
    for event in pending:  # recorded by this transaction, chained at its commit
        if pending_at is None:  # they will be chained after every event read here, and not before now()
            chained = [e.occurred_at for request_events in events.values() for e in request_events]
            pending_at = max([db_now(session), *chained])
        events[event.request_id].append(event)
    customers = customers or get_many(session, Customer, [r.customer_id for r in requests])
    result = {}
    for request in requests:
        facts = facts_from_events(events[request.id], pending_at=pending_at)
        if facts is None:
            continue
        customer = customers[request.customer_id]
        policy = config.severity.for_request(severity=facts.severity, tier=customer.tier)
        result[request.id] = compute(facts, policy=policy, cal=customer.calendar(), now=now)
    return result


def status_of(session: Session, *, request: ReleaseRequest, config: AppConfig, now: datetime) -> SlaStatus | None:
    return status_of_many(session, requests=[request], config=config, now=now).get(request.id)


def due_for(*, customer: Customer, severity: int, at: datetime, config: AppConfig) -> tuple[datetime, SeverityPolicy]:
    """When a request filed at `at` would be due (what a TAM tells the customer on the phone).

    `at` is the caller's input, so a due time outside the representable years 0001–9999 (in UTC, and in
    the customer's zone where it is shown) is an InvalidInput naming `at`. Without this check the 24x7
    clock found no instant at all (and the caller failed on None) while the business-hours clock
    overflowed inside the calendar: two different failures of the same mistake.
    """
    policy = config.severity.for_request(severity=severity, tier=customer.tier)
    cal = customer.calendar()
    target = timedelta(minutes=policy.response_minutes)
    try:
        due = calendar.due_at(start=at, target=target, clock=policy.clock, calendar=cal)
        if due is not None:
            due.astimezone(cal.zone)  # shown in the customer's zone too: it must exist there
    except OverflowError:
        due = None
    if due is None:
        edge = "end" if at.year > 5000 else "start"
        raise InvalidInput(
            f"'at' {at.isoformat()} is too close to the {edge} of the calendar: the due time of a severity "
            f"{severity} request ({policy.response_minutes} min on the {policy.clock} clock, in {customer.timezone}) "
            "would fall outside the years 0001-9999",
            field="at",
        )
    return due, policy
