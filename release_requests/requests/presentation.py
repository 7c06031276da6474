"""Requests as people read them: lists, the work queue, the API's view of a request, and the timeline.

What a customer may not read is decided here, once: staff-only events and reasons, and the ids of other
customers' requests (masked as "another report" wherever they appear in text).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import timeline
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.customers.models import Customer, TamAssignment
from release_requests.db import get_many
from release_requests.errors import InvalidInput
from release_requests.people.models import Person
from release_requests.people.service import label, public_actor
from release_requests.requests.lifecycle import get_visible
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.requests.schemas import (
    RequestFilters,
    RequestOut,
    SampleOut,
    TimelineEntry,
)
from release_requests.requests.states import OPEN_STATES, TRANSITIONS, Status
from release_requests.sla.service import status_of_many


def list_requests(session: Session, *, actor: Person, filters: RequestFilters) -> tuple[list[ReleaseRequest], int]:
    access.authorize(actor, "request.read")
    query = select(ReleaseRequest)
    visible = access.visible_customer_ids(session, actor)
    if visible is not None:
        query = query.where(ReleaseRequest.customer_id.in_(visible))
    if filters.status:
        unknown = set(filters.status) - {s.value for s in Status}
        if unknown:
            raise InvalidInput(f"unknown status {sorted(unknown)}", field="status")
        query = query.where(ReleaseRequest.status.in_(filters.status))
    if filters.customer_id:
        query = query.where(ReleaseRequest.customer_id == filters.customer_id)
    if filters.severity:
        query = query.where(ReleaseRequest.severity == filters.severity)
    if filters.kind:
        query = query.where(ReleaseRequest.kind == filters.kind)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(
        query.order_by(ReleaseRequest.created_at.desc(), ReleaseRequest.id.desc())
        .limit(filters.limit)
        .offset(filters.offset)
    )
    return list(rows), total


# built once: every answer that shows a request asks
_SAMPLES_OF = select(Sample).where(Sample.request_id.in_(bindparam("ids", expanding=True))).order_by(Sample.id)


def present(
    session: Session, *, requests: list[ReleaseRequest], config: AppConfig, viewer: Person | None = None
) -> list[RequestOut]:
    """Requests as the API shows them, with their SLA status computed now from the audit log.

    Samples, customers and people are read once for the whole page, not once per request. The request a
    duplicate follows is named only to staff or when it is the same customer's; others see the advisory.
    """
    ids = [r.id for r in requests]
    customers = get_many(session, Customer, [r.customer_id for r in requests])
    slas = status_of_many(session, requests=requests, config=config, now=db_now(session), customers=customers)
    samples: dict[str, list[Sample]] = {i: [] for i in ids}
    for sample in session.scalars(_SAMPLES_OF, {"ids": ids}):
        samples[sample.request_id].append(sample)
    person_ids = [p for r in requests for p in (r.owner_id, r.assignee_id, r.submitted_by_id) if p is not None]
    names = {i: label(p) for i, p in get_many(session, Person, person_ids).items()}
    primaries = {r.duplicate_of_id for r in requests if r.duplicate_of_id}
    owner_of = {i: r.customer_id for i, r in get_many(session, ReleaseRequest, primaries).items()}
    staff = access.is_staff(viewer)
    return [
        RequestOut(
            **{name: getattr(r, name) for name in RequestOut.model_fields if hasattr(r, name)},
            customer_name=customers[r.customer_id].name,
            severity_label=config.severity.label(r.severity),
            allowed_transitions=sorted(TRANSITIONS[Status(r.status)]),
            owner=names.get(r.owner_id),
            assignee=names.get(r.assignee_id),
            duplicate_of=r.duplicate_of_id
            if r.duplicate_of_id and (staff or owner_of.get(r.duplicate_of_id) == r.customer_id)
            else None,
            submitted_by=names.get(r.submitted_by_id, "?"),
            samples=[SampleOut.model_validate(x) for x in samples[r.id]],
            sla=slas.get(r.id),
        )
        for r in requests
    ]


STAFF_ONLY_ACTIONS = ("sla.", "line.", "channel.", "stage.", "segment.", "build.rebase", "page.", "duty.", "mail.")


def _internal(event) -> bool:
    """Staff-only events: SLA escalations, the release line and shared channels (they name other customers'
    requests and releases), and notices addressed to staff."""
    after = event.after or {}
    return event.action.startswith(STAFF_ONLY_ACTIONS) or (
        event.entity_type == "notification" and after.get("audience") == "internal"
    )


_REQUEST_ID_RE = re.compile(r"\b[A-Z]{1,8}-\d{4}-\d{6,}\b")


def foreign_id_masker(session: Session, *, customer_id: str, texts: list[str]):
    """A function replacing, in text shown to a customer, the ids of other customers' requests.

    Shared fixes are told as "fixed together with other reports"; an id of someone else's request is
    never shown (the advisory id is the shared name of the problem).
    """
    ids = {found for text in texts for found in _REQUEST_ID_RE.findall(text)}
    foreign = set(  # only ids of requests that exist and are someone else's: advisory ids stay
        session.scalars(
            select(ReleaseRequest.id).where(ReleaseRequest.id.in_(ids), ReleaseRequest.customer_id != customer_id)
        )
    )

    def mask(value):
        if isinstance(value, str):
            return _REQUEST_ID_RE.sub(lambda m: "another report" if m.group(0) in foreign else m.group(0), value)
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v) for v in value]
        return value

    return mask


def request_timeline(session: Session, *, actor: Person, request_id: str) -> list[TimelineEntry]:
    access.authorize(actor, "request.read")
    request = get_visible(session, actor=actor, request_id=request_id)
    events = timeline(session, request_id=request.id)
    customer_view = not access.is_staff(actor)
    mask = lambda value: value  # noqa: E731
    if customer_view:
        events = [e for e in events if not _internal(e)]
        texts = [json.dumps([e.before, e.after, e.reason, e.entity_id]) for e in events]
        mask = foreign_id_masker(session, customer_id=request.customer_id, texts=texts)
    return [
        TimelineEntry(
            seq=e.seq,
            at=e.occurred_at,
            actor=public_actor(e.actor) if customer_view else e.actor,
            action=e.action,
            entity=mask(f"{e.entity_type}:{e.entity_id}"),
            before=mask(e.before),
            after=mask(e.after),
            reason=None if customer_view and e.action in STAFF_ONLY_REASONS else mask(e.reason),
        )
        for e in events
    ]


STAFF_ONLY_REASONS = frozenset({"request.routed", "request.rerouted"})  # who is off, on leave, on duty


QUEUE_STATES = tuple(s for s in OPEN_STATES if s not in (Status.released,))


def queue(session: Session, *, actor: Person, config: AppConfig) -> list[RequestOut]:
    """Open work in the order the team must take it: breached first, then severity, then Enterprise before
    standard, then the earliest due time."""
    access.authorize(actor, "queue.read")
    query = select(ReleaseRequest).where(ReleaseRequest.status.in_(QUEUE_STATES))
    visible = access.visible_customer_ids(session, actor)
    if visible is not None:
        query = query.where(ReleaseRequest.customer_id.in_(visible))
    requests = list(session.scalars(query))
    customer_ids = {r.customer_id for r in requests}
    tiers = dict(session.execute(select(Customer.id, Customer.tier).where(Customer.id.in_(customer_ids))).all())
    items = present(session, requests=requests, config=config, viewer=actor)

    def order(item: RequestOut) -> tuple:
        breached = item.sla is not None and item.sla.state == "breached"
        due = item.sla.due_at if item.sla and item.sla.due_at else datetime.max.replace(tzinfo=UTC)
        return (not breached, item.severity, tiers[item.customer_id] != "enterprise", due, item.id)

    return sorted(items, key=order)


ROUTING_ACTIONS = ("request.routed", "request.rerouted")


@dataclass(frozen=True)
class Routing:
    """Who holds a request in the queue, and why (staff only: the reason says who is off, on leave, on duty)."""

    owner_id: int | None
    owner_name: str | None
    assignee_id: int | None
    tier: str
    # the owner is one of the customer's TAMs, the manager on duty, or the fallback for a gap in the rotation
    basis: Literal["tam", "duty", "fallback"] | None
    reason: str | None  # the latest routing decision in words, from the audit log


def _routing_basis(*, owner_id: int | None, owner_is_tam: bool, reason: str | None) -> str | None:
    """From the decision's last clause (routing.service.choose_owner): 'TAM …', 'on duty: …', 'rotation gap: …'."""
    if owner_id is None:
        return None
    last = (reason or "").rpartition("; ")[2]
    if owner_is_tam or last.startswith("TAM "):
        return "tam"
    if last.startswith("rotation gap"):
        return "fallback"
    return "duty"


def routing_of(session: Session, *, actor: Person, request_ids: list[str]) -> dict[str, Routing]:
    """Owner, assignee, tier and the latest routing reason of a page of requests, read in one query.

    Requests the actor may not see are left out, like everywhere else."""
    access.authorize(actor, "queue.read")
    if not request_ids:
        return {}
    reason = (
        select(AuditEvent.reason)
        .where(AuditEvent.request_id == ReleaseRequest.id, AuditEvent.action.in_(ROUTING_ACTIONS))
        .order_by(AuditEvent.seq.desc())
        .limit(1)
        .correlate(ReleaseRequest)
        .scalar_subquery()
    )
    owner_is_tam = exists().where(
        TamAssignment.customer_id == ReleaseRequest.customer_id, TamAssignment.person_id == ReleaseRequest.owner_id
    )
    query = (
        select(
            ReleaseRequest.id,
            ReleaseRequest.owner_id,
            Person.name,
            ReleaseRequest.assignee_id,
            Customer.tier,
            owner_is_tam.label("owner_is_tam"),
            reason.label("reason"),
        )
        .join(Customer, Customer.id == ReleaseRequest.customer_id)
        .outerjoin(Person, Person.id == ReleaseRequest.owner_id)
        .where(ReleaseRequest.id.in_(request_ids))
    )
    visible = access.visible_customer_ids(session, actor)
    if visible is not None:
        query = query.where(ReleaseRequest.customer_id.in_(visible))
    return {
        row.id: Routing(
            owner_id=row.owner_id,
            owner_name=row.name,
            assignee_id=row.assignee_id,
            tier=row.tier,
            basis=_routing_basis(owner_id=row.owner_id, owner_is_tam=row.owner_is_tam, reason=row.reason),
            reason=row.reason,
        )
        for row in session.execute(query)
    }


def tam_customer_ids(session: Session, *, person: Person) -> frozenset[str]:
    """The customers this person is a TAM of (empty for everybody who is nobody's TAM)."""
    return frozenset(session.scalars(select(TamAssignment.customer_id).where(TamAssignment.person_id == person.id)))
