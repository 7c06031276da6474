"""Release requests: intake, triage, answers, cancellation, evidence, and the timeline.

Every function takes the caller's session and commits nothing itself: the caller's transaction holds
the state change, its audit event (and, later, its outbox rows) together. `transition` is the one
way a request changes state; later features (SLA, builds, releases) go through it too.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import Actor, record, timeline
from release_requests.config import AppConfig, get_config
from release_requests.customers.models import Customer
from release_requests.errors import InvalidInput, NotFound, StaleVersion
from release_requests.notifications.service import notify
from release_requests.people.models import Person
from release_requests.people.service import actor_of, find_person
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.requests.schemas import (
    Accept,
    Answer,
    Cancel,
    Duplicate,
    NeedsInfo,
    Reject,
    RequestFilters,
    RequestOut,
    Respond,
    SampleOut,
    SeverityChange,
    SubmitRequest,
    TimelineEntry,
    TriageDecision,
)
from release_requests.requests.states import OPEN_STATES, TRANSITIONS, Status, check_transition
from release_requests.routing.service import RoutingDecision, choose_owner
from release_requests.samples.names import safe_filename
from release_requests.samples.store import store_sample
from release_requests.sla.service import status_of, status_of_many

ROUTER = Actor.system("routing")

# Fields whose history the audit log carries; replaying their `after` values rebuilds the request.
TRACKED_FIELDS = (
    "customer_id",
    "kind",
    "severity",
    "channel",
    "title",
    "description",
    "product",
    "product_version",
    "detection_name",
    "status",
    "owner_id",
    "assignee_id",
    "duplicate_of_id",
    "advisory_id",
    "received_at",
    "version",
)


def snapshot(request: ReleaseRequest, fields: tuple[str, ...] = TRACKED_FIELDS) -> dict:
    return {name: getattr(request, name) for name in fields}


def db_now(session: Session) -> datetime:
    """The database clock: one time source for every process."""
    return session.execute(text("SELECT now()")).scalar_one()


def get_visible(session: Session, *, actor: Person, request_id: str, lock: bool = False) -> ReleaseRequest:
    """The request if `actor` may see it; otherwise NotFound (never reveal other customers' ids)."""
    query = select(ReleaseRequest).where(ReleaseRequest.id == request_id)
    if lock:
        query = query.with_for_update(key_share=True)  # NO KEY UPDATE: child-row FK checks may proceed
    request = session.scalar(query)
    if request is None or not access.can_see_customer(session, actor, request.customer_id):
        raise NotFound(f"no request '{request_id}'")
    return request


def _next_id(session: Session, *, prefix: str, year: int) -> str:
    number = session.execute(text("SELECT nextval('release_request_number_seq')")).scalar_one()
    return f"{prefix}-{year}-{number:06d}"


def submit_request(session: Session, *, actor: Person, data: SubmitRequest, config: AppConfig) -> ReleaseRequest:
    access.require_role(actor, access.FILES_REQUESTS, to="file requests")
    customer_id = data.customer_id or actor.customer_id
    if customer_id is None:
        raise InvalidInput("customer_id is required", field="customer_id")
    customer = session.get(Customer, customer_id)
    if customer is None or not access.can_see_customer(session, actor, customer_id):
        raise InvalidInput(f"unknown customer '{customer_id}'", field="customer_id")
    now = db_now(session)
    received_at = data.received_at or now
    if received_at > now:
        raise InvalidInput("received_at is in the future", field="received_at")
    oldest = now - timedelta(hours=config.intake.requests.max_backdate_hours)
    if received_at < oldest:
        raise InvalidInput(
            f"received_at is more than {config.intake.requests.max_backdate_hours} h ago; check the date",
            field="received_at",
        )
    # Routing looks at who was available when the customer reached us (a call at 02:00 on Sunday goes to the
    # manager on duty even if it is typed in later); the SLA watcher re-routes if that person is away later.
    decision = choose_owner(session, customer_id=customer.id, at=received_at)
    request = ReleaseRequest(
        owner_id=decision.owner.id if decision.owner else None,
        id=_next_id(session, prefix=config.intake.requests.id_prefix, year=now.astimezone(UTC).year),
        customer_id=customer.id,
        submitted_by_id=actor.id,
        status=Status.submitted,
        received_at=received_at,
        created_at=now,
        updated_at=now,
        **data.model_dump(exclude={"customer_id", "received_at", "sample_sha256"}),
    )
    session.add(request)
    session.flush()
    record(
        session,
        actor=actor_of(actor),
        action="request.submitted",
        entity_type="request",
        entity_id=request.id,
        request_id=request.id,
        after=snapshot(request),
    )
    for sha256 in dict.fromkeys(data.sample_sha256):
        _add_sample_row(session, actor=actor, request=request, sha256=sha256, size=None, filename=None, stored=False)
    _announce_routing(session, request=request, decision=decision, customer=customer, config=config, now=now)
    _join_shared_build(session, request=request, config=config)
    return request


def _join_shared_build(session: Session, *, request: ReleaseRequest, config: AppConfig) -> None:
    """A report naming a sample whose build is open joins that build (pipeline.sharing)."""
    from release_requests.pipeline.sharing import join_open_build  # the pipeline builds on requests, not back

    join_open_build(session, request=request, config=config)


def _announce_routing(
    session: Session,
    *,
    request: ReleaseRequest,
    decision: RoutingDecision,
    customer: Customer,
    config: AppConfig,
    now: datetime,
) -> None:
    """Record why this owner was chosen, and tell the customer, the owner and the team that it arrived."""
    owner = decision.owner
    record(
        session,
        actor=ROUTER,
        action="request.routed",
        entity_type="request",
        entity_id=request.id,
        request_id=request.id,
        after={"owner_id": request.owner_id, "owner": owner.name if owner else None},
        reason=decision.reason,
    )
    sla = status_of(session, request=request, config=config, now=now)
    context = {
        "title": request.title,
        "severity": request.severity,
        "kind": request.kind,
        "customer": customer.name,
        "owner": owner.name if owner else None,
        "due_at": sla.due_at if sla else None,
        "due_at_local": sla.due_at_local if sla else None,
        "routing_reason": decision.reason,
    }
    notify(
        session,
        request=request,
        event="request.received",
        targets=["customer", "owner", "internal_channel"],
        context=context,
        config=config,
        at=now,
    )


def respond(session: Session, *, actor: Person, request_id: str, data: Respond, config: AppConfig) -> ReleaseRequest:
    """A qualified answer to the customer: it meets the SLA clock and is sent to the customer."""
    access.require_role(actor, access.RESPONDS, to="respond to customers")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    if request.status not in OPEN_STATES:
        raise InvalidInput(f"request {request.id} is {request.status}; there is nobody waiting for an answer")
    event = record(
        session,
        actor=actor_of(actor),
        action="request.responded",
        entity_type="request",
        entity_id=request.id,
        request_id=request.id,
        after={"message": data.message},
    )
    notify(
        session,
        request=request,
        event="request.response",
        targets=["customer"],
        config=config,
        at=event.occurred_at,
        key=str(event.seq),
        context={"message": data.message, "from": actor.name},
    )
    return request


def change_severity(session: Session, *, actor: Person, request_id: str, data: SeverityChange) -> ReleaseRequest:
    """Re-target the SLA clock (from the same start) with a reason kept in the log."""
    access.require_role(actor, access.TRIAGES | {"tam"}, to="change severity")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    if request.status not in OPEN_STATES:
        raise InvalidInput(f"request {request.id} is {request.status}; its severity is final", field="severity")
    if data.severity == request.severity:
        raise InvalidInput(f"request {request.id} already has severity {data.severity}", field="severity")
    return change(
        session,
        actor=actor_of(actor),
        request=request,
        action="request.severity_changed",
        changes={"severity": data.severity},
        reason=data.reason,
        expected_version=data.version,
    )


def _check_version(request: ReleaseRequest, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != request.version:
        raise StaleVersion(
            f"request {request.id} is at version {request.version}, you sent {expected_version}; reload it",
            current_version=request.version,
        )


def change(
    session: Session,
    *,
    actor: Actor,
    request: ReleaseRequest,
    action: str,
    changes: dict,
    expected_version: int | None = None,
    reason: str | None = None,
    details: dict | None = None,
) -> ReleaseRequest:
    """Apply field `changes` to `request` with one audit event holding before/after of those fields."""
    _check_version(request, expected_version)
    changed = ("version", "updated_at", *changes)
    before = snapshot(request, changed)
    now = db_now(session)  # before any attribute changes: the query would autoflush them as a separate version
    for name, value in changes.items():
        setattr(request, name, value)
    request.updated_at = now
    session.flush()  # bumps `version`; a concurrent writer makes this raise StaleDataError (→ 409)
    record(
        session,
        actor=actor,
        action=action,
        entity_type="request",
        entity_id=request.id,
        request_id=request.id,
        before=before,
        after={**snapshot(request, changed), **(details or {})},
        reason=reason,
    )
    return request


def transition(
    session: Session,
    *,
    actor: Actor,
    request: ReleaseRequest,
    target: Status,
    action: str,
    expected_version: int | None = None,
    reason: str | None = None,
    changes: dict | None = None,
    details: dict | None = None,
) -> ReleaseRequest:
    """Move `request` to `target` (with field `changes`), audited; 409 if illegal or stale."""
    _check_version(request, expected_version)
    check_transition(request.status, target)
    return change(
        session,
        actor=actor,
        request=request,
        action=action,
        changes={**(changes or {}), "status": target},
        reason=reason,
        details=details,
    )


def triage(
    session: Session, *, actor: Person, request_id: str, decision: TriageDecision, config: AppConfig | None = None
) -> ReleaseRequest:
    """Apply a triage decision and tell the customer (the question, for needs-info)."""
    request = _apply_triage(session, actor=actor, request_id=request_id, decision=decision)
    if request.status == Status.accepted:
        from release_requests.pipeline.service import on_accepted  # the pipeline builds on requests, not back

        on_accepted(session, request=request, decision_id=f"v{request.version}", config=config)
    if isinstance(decision, NeedsInfo):
        event, context = "request.needs_info", {"question": decision.question}
    else:
        event = "request.triaged"
        context = {
            "decision": request.status,
            "reason": getattr(decision, "reason", None),
            "note": getattr(decision, "note", None),
            "duplicate_of": request.duplicate_of_id,
            "assignee": _name(session, request.assignee_id),
        }
    notify(
        session,
        request=request,
        event=event,
        targets=["customer"],
        context=context,
        config=config or get_config(),
        at=db_now(session),
        key=str(request.version),
    )
    return request


def _apply_triage(session: Session, *, actor: Person, request_id: str, decision: TriageDecision) -> ReleaseRequest:
    access.require_role(actor, access.TRIAGES, to="triage requests")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    common = {"session": session, "actor": actor_of(actor), "request": request, "expected_version": decision.version}
    match decision:
        case Accept():
            assignee = find_person(session, ref=decision.assignee) if decision.assignee else actor
            if assignee.role not in access.STAFF:
                raise InvalidInput(f"{assignee.name} is not vendor staff", field="assignee")
            changes = {"assignee_id": assignee.id}
            if decision.severity is not None and decision.severity != request.severity:
                changes["severity"] = decision.severity
            return transition(
                target=Status.accepted,
                action="request.accepted",
                changes=changes,
                reason=decision.note,
                **common,
            )
        case Reject():
            return transition(target=Status.rejected, action="request.rejected", reason=decision.reason, **common)
        case Duplicate():
            if decision.duplicate_of == request.id:
                raise InvalidInput("a request cannot duplicate itself", field="duplicate_of")
            primary = session.get(ReleaseRequest, decision.duplicate_of)
            if primary is None:
                raise InvalidInput(f"no request '{decision.duplicate_of}'", field="duplicate_of")
            if primary.status in (Status.duplicate, Status.rejected, Status.cancelled):
                raise InvalidInput(
                    f"{primary.id} is {primary.status}; point at the request that carries the fix",
                    field="duplicate_of",
                )
            return transition(
                target=Status.duplicate,
                action="request.duplicate",
                changes={"duplicate_of_id": primary.id},
                **common,
            )
        case NeedsInfo():
            return transition(
                target=Status.needs_info,
                action="request.needs_info",
                details={"question": decision.question},
                **common,
            )
    raise AssertionError(f"unhandled decision {decision!r}")


def answer(session: Session, *, actor: Person, request_id: str, data: Answer) -> ReleaseRequest:
    """The customer (or their TAM on their behalf) answers the open question: back to triage."""
    access.require_role(actor, {"customer", "tam", "duty_manager", "admin"}, to="answer questions")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    return transition(
        session,
        actor=actor_of(actor),
        request=request,
        target=Status.submitted,
        action="request.answered",
        expected_version=data.version,
        details={"answer": data.message},
    )


def cancel(session: Session, *, actor: Person, request_id: str, data: Cancel) -> ReleaseRequest:
    access.require_role(actor, {"customer", "tam", "duty_manager", "admin"}, to="cancel requests")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    return transition(
        session,
        actor=actor_of(actor),
        request=request,
        target=Status.cancelled,
        action="request.cancelled",
        expected_version=data.version,
        reason=data.reason,
    )


def list_requests(session: Session, *, actor: Person, filters: RequestFilters) -> tuple[list[ReleaseRequest], int]:
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


def _add_sample_row(
    session: Session,
    *,
    actor: Person,
    request: ReleaseRequest,
    sha256: str,
    size: int | None,
    filename: str | None,
    stored: bool,
) -> Sample:
    sample = session.scalar(select(Sample).where(Sample.request_id == request.id, Sample.sha256 == sha256))
    if sample is not None and (sample.stored or not stored):
        return sample  # the same evidence again: nothing new to record
    if sample is None:
        sample = Sample(request_id=request.id, sha256=sha256, submitted_by_id=actor.id)
        session.add(sample)
    sample.size, sample.filename, sample.stored = size, filename, stored
    session.flush()
    record(
        session,
        actor=actor_of(actor),
        action="sample.added",
        entity_type="sample",
        entity_id=sha256,
        request_id=request.id,
        after={"sha256": sha256, "size": size, "filename": filename, "stored": stored},
    )
    return sample


def add_sample(
    session: Session,
    *,
    actor: Person,
    request_id: str,
    config: AppConfig,
    samples_dir,
    stream: BinaryIO | None,
    filename: str | None,
    declared_sha256: str | None,
) -> Sample:
    """Attach evidence: an uploaded file (hash checked) or, with no file, a hash alone."""
    access.require_role(actor, access.FILES_REQUESTS | {"build_engineer"}, to="add samples")
    request = get_visible(session, actor=actor, request_id=request_id)
    count = session.scalar(select(func.count()).where(Sample.request_id == request.id))
    if count >= config.intake.samples.max_per_request:
        raise InvalidInput(
            f"request already has {count} samples (limit {config.intake.samples.max_per_request})",
            field="file",
        )
    if stream is None:
        if not declared_sha256:
            raise InvalidInput("send a file, a sha256, or both", field="file")
        sample = _add_sample_row(
            session,
            actor=actor,
            request=request,
            sha256=declared_sha256.lower(),
            size=None,
            filename=None,
            stored=False,
        )
    else:
        sha256, size = store_sample(
            samples_dir, stream, max_bytes=config.intake.samples.max_bytes, declared_sha256=declared_sha256
        )
        safe_name = safe_filename(filename)  # every caller, not only the API, stores a name safe to show
        sample = _add_sample_row(
            session, actor=actor, request=request, sha256=sha256, size=size, filename=safe_name, stored=True
        )
    _join_shared_build(session, request=request, config=config)
    return sample


def find_sample(session: Session, *, actor: Person, request_id: str, sha256: str) -> Sample:
    access.require_role(actor, access.STAFF | {"customer"}, to="fetch samples")
    request = get_visible(session, actor=actor, request_id=request_id)
    sample = session.scalar(select(Sample).where(Sample.request_id == request.id, Sample.sha256 == sha256.lower()))
    if sample is None:
        raise NotFound(f"request {request_id} has no sample {sha256}")
    if not sample.stored:
        raise NotFound(f"sample {sha256} was reported by hash only; there are no bytes to fetch")
    return sample


def _name(session: Session, person_id: int | None) -> str | None:
    if person_id is None:
        return None
    person = session.get(Person, person_id)
    return f"{person.name} ({person.role})" if person else None


def present(
    session: Session, *, requests: list[ReleaseRequest], config: AppConfig, viewer: Person | None = None
) -> list[RequestOut]:
    """Requests as the API shows them, with their SLA status computed now from the audit log.

    Samples, customers and people are read once for the whole page, not once per request. The request a
    duplicate follows is named only to staff or when it is the same customer's; others see the advisory.
    """
    ids = [r.id for r in requests]
    slas = status_of_many(session, requests=requests, config=config, now=db_now(session))
    samples: dict[str, list[Sample]] = {i: [] for i in ids}
    for sample in session.scalars(select(Sample).where(Sample.request_id.in_(ids)).order_by(Sample.id)):
        samples[sample.request_id].append(sample)
    customers = {
        c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_({r.customer_id for r in requests})))
    }
    person_ids = {p for r in requests for p in (r.owner_id, r.assignee_id, r.submitted_by_id) if p is not None}
    names = {p.id: f"{p.name} ({p.role})" for p in session.scalars(select(Person).where(Person.id.in_(person_ids)))}
    primaries = {r.duplicate_of_id for r in requests if r.duplicate_of_id}
    owner_of = dict(
        session.execute(
            select(ReleaseRequest.id, ReleaseRequest.customer_id).where(ReleaseRequest.id.in_(primaries))
        ).all()
    )
    staff = viewer is not None and viewer.role in access.STAFF
    return [
        RequestOut(
            **{name: getattr(r, name) for name in RequestOut.model_fields if hasattr(r, name)},
            customer_name=customers[r.customer_id].name,
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


STAFF_ONLY_ACTIONS = ("sla.", "line.", "channel.", "stage.", "segment.", "build.rebase")


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
    request = get_visible(session, actor=actor, request_id=request_id)
    events = timeline(session, request_id=request.id)
    customer_view = actor.role == "customer"
    mask = lambda value: value  # noqa: E731
    if customer_view:
        events = [e for e in events if not _internal(e)]
        texts = [json.dumps([e.before, e.after, e.reason, e.entity_id]) for e in events]
        mask = foreign_id_masker(session, customer_id=request.customer_id, texts=texts)
    return [
        TimelineEntry(
            seq=e.seq,
            at=e.occurred_at,
            actor=_public_actor(e.actor) if customer_view else e.actor,
            action=e.action,
            entity=mask(f"{e.entity_type}:{e.entity_id}"),
            before=mask(e.before),
            after=mask(e.after),
            reason=None if customer_view and e.action in STAFF_ONLY_REASONS else mask(e.reason),
        )
        for e in events
    ]


STAFF_ONLY_REASONS = frozenset({"request.routed", "request.rerouted"})  # who is off, on leave, on duty


def _public_actor(actor: str) -> str:
    """'Tanya Smirnova <tanya@vendor.example> (tam)' → 'Tanya Smirnova (tam)': customers see names, not mailboxes."""
    return re.sub(r" <[^>]*>", "", actor)


def replay(session: Session, *, request_id: str) -> dict:
    """The request's tracked fields rebuilt from its audit events alone (the log is the history)."""
    state: dict = {}
    for event in timeline(session, request_id=request_id):
        if event.entity_type == "request" and event.after:
            state.update({k: v for k, v in event.after.items() if k in TRACKED_FIELDS})
    return state


QUEUE_STATES = tuple(s for s in OPEN_STATES if s not in (Status.released,))


def queue(session: Session, *, actor: Person, config: AppConfig) -> list[RequestOut]:
    """Open work in the order the team must take it: breached first, then severity, then Enterprise before
    standard, then the earliest due time."""
    access.require_role(actor, access.STAFF, to="read the work queue")
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
