"""The SLA watcher: records each threshold crossing exactly once and tells the people who must act.

Run every minute by the `sla_watch` flow. It spans domains — the SLA clock (`sla.service`), routing and
duty (`routing.service`), the request's owner (`requests.lifecycle.change`) and the outbox
(`notifications.service`) — so it lives with the other choreography, above all of them.

Safe to run twice at once or after a crash: a crossing is a row with a unique key (request, severity,
threshold), inserted with ON CONFLICT DO NOTHING in the same transaction as its audit event, its
re-routing and its outbox rows — all of them or none. Time is the database's (`clock.db_now`, read in
each request's own transaction) unless a test passes `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from release_requests.audit.service import Actor, record, timeline
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.customers.models import Customer
from release_requests.db import transaction
from release_requests.notifications.service import notify
from release_requests.people.models import Person
from release_requests.requests.lifecycle import change
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.states import Status
from release_requests.routing.service import availability, choose_owner
from release_requests.sla import calendar
from release_requests.sla.models import SlaCrossing
from release_requests.sla.service import SlaStatus, compute, facts_from_events, threshold_label

WATCHER = Actor.system("sla_watch")
CLOCK_RUNNING = (Status.submitted, Status.needs_info)


@dataclass(frozen=True)
class Crossing:
    request_id: str
    threshold: str
    crossed_at: datetime
    rerouted_to: str | None


def _crossing_time(status: SlaStatus, fraction: float, customer: Customer, facts_pauses) -> datetime:
    target = timedelta(minutes=status.target_minutes) * fraction
    return calendar.due_at(
        start=status.started_at, target=target, clock=status.clock, calendar=customer.calendar(), pauses=facts_pauses
    )


def _reroute_if_owner_away(
    session: Session, *, request: ReleaseRequest, now: datetime, config: AppConfig
) -> str | None:
    owner = session.get(Person, request.owner_id) if request.owner_id else None
    away = "no owner"
    if owner is not None:
        available, why = availability(session, person=owner, at=now)
        if available:
            return None
        away = f"owner {owner.name} {why}"
    decision = choose_owner(session, customer_id=request.customer_id, at=now)
    if decision.owner is None or decision.owner.id == request.owner_id:
        return None
    change(
        session,
        actor=WATCHER,
        request=request,
        action="request.rerouted",
        changes={"owner_id": decision.owner.id},
        reason=f"{away}; {decision.reason}",
    )
    notify(
        session,
        request=request,
        event="sla.rerouted",
        targets=["owner", "internal_channel"],
        config=config,
        at=now,
        key=str(decision.owner.id),
        context={"owner": decision.owner.name, "reason": f"{away}; {decision.reason}"},
    )
    return decision.owner.name


def _watch_request(session: Session, *, request_id: str, config: AppConfig, now: datetime) -> list[Crossing]:
    request = session.scalar(
        select(ReleaseRequest).where(ReleaseRequest.id == request_id).with_for_update(skip_locked=True)
    )
    if request is None or request.status not in CLOCK_RUNNING:
        return []
    facts = facts_from_events(timeline(session, request_id=request.id))
    if facts is None or facts.met_at is not None:
        return []
    customer = session.get(Customer, request.customer_id)
    policy = config.severity.for_request(severity=facts.severity, tier=customer.tier)
    status = compute(facts, policy=policy, cal=customer.calendar(), now=now)
    if not status.thresholds_crossed:
        return []
    crossings = []
    steps = [(threshold_label(t.at), t.at, t.notify) for t in policy.thresholds]
    steps.append(("breach", 1.0, policy.breach_notify))
    for label, fraction, targets in steps:
        if label not in status.thresholds_crossed:
            continue
        inserted = session.execute(
            insert(SlaCrossing)
            .values(
                request_id=request.id,
                severity=status.severity,
                threshold=label,
                crossed_at=_crossing_time(status, fraction, customer, facts.pauses),
            )
            .on_conflict_do_nothing(constraint="uq_sla_crossings_once")
            .returning(SlaCrossing.crossed_at)
        ).scalar_one_or_none()
        if inserted is None:
            continue
        action = "sla.breached" if label == "breach" else "sla.warning"
        record(
            session,
            actor=WATCHER,
            action=action,
            entity_type="request",
            entity_id=request.id,
            request_id=request.id,
            after={
                "threshold": label,
                "severity": status.severity,
                "crossed_at": inserted,
                "due_at": status.due_at,
                "elapsed_fraction": str(status.elapsed_fraction),
            },
        )
        rerouted = _reroute_if_owner_away(session, request=request, now=now, config=config)
        notify(
            session,
            request=request,
            event="sla.breach" if label == "breach" else "sla.warning",
            targets=targets,
            config=config,
            at=now,
            key=f"{status.severity}:{label}",
            context={
                "threshold": label,
                "due_at": status.due_at,
                "due_at_local": status.due_at_local,
                "severity": status.severity,
                "title": request.title,
                "customer": customer.name,
            },
        )
        crossings.append(Crossing(request.id, label, inserted, rerouted))
    return crossings


def watch(sessions: sessionmaker[Session], *, config: AppConfig, now: datetime | None = None) -> list[Crossing]:
    """One pass over every request whose clock runs; each request in its own transaction, at the database's
    time (`now` only for tests that pin it)."""
    with transaction(sessions) as session:
        ids = list(session.scalars(select(ReleaseRequest.id).where(ReleaseRequest.status.in_(CLOCK_RUNNING))))
    crossings: list[Crossing] = []
    for request_id in ids:
        with transaction(sessions) as session:
            at = now or db_now(session)
            crossings += _watch_request(session, request_id=request_id, config=config, now=at)
    return crossings
