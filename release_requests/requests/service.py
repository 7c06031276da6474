"""Release requests: intake, triage, answers, cancellation, evidence, and the timeline.

Every function takes the caller's session and commits nothing itself: the caller's transaction holds
the state change, its audit event (and, later, its outbox rows) together. `transition` is the one
way a request changes state; later features (SLA, builds, releases) go through it too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import BinaryIO

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import record, timeline
from release_requests.config import AppConfig
from release_requests.customers.models import Customer
from release_requests.errors import InvalidInput, NotFound, StaleVersion
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
    SampleOut,
    SubmitRequest,
    TimelineEntry,
    TriageDecision,
)
from release_requests.requests.states import TRANSITIONS, Status, check_transition
from release_requests.samples.store import store_sample

# Fields whose history the audit log carries; replaying their `after` values rebuilds the request.
TRACKED_FIELDS = (
    "customer_id", "kind", "severity", "channel", "title", "description", "product", "product_version",
    "detection_name", "status", "owner_id", "assignee_id", "duplicate_of_id", "received_at", "version",
)  # fmt: skip


def snapshot(request: ReleaseRequest, fields: tuple[str, ...] = TRACKED_FIELDS) -> dict:
    return {name: getattr(request, name) for name in fields}


def _now(session: Session) -> datetime:
    return session.execute(text("SELECT now()")).scalar_one()


def get_visible(session: Session, *, actor: Person, request_id: str, lock: bool = False) -> ReleaseRequest:
    """The request if `actor` may see it; otherwise NotFound (never reveal other customers' ids)."""
    query = select(ReleaseRequest).where(ReleaseRequest.id == request_id)
    if lock:
        query = query.with_for_update()
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
    now = _now(session)
    received_at = data.received_at or now
    if received_at > now:
        raise InvalidInput("received_at is in the future", field="received_at")
    request = ReleaseRequest(
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
    return request


def transition(
    session: Session,
    *,
    actor: Person,
    request: ReleaseRequest,
    target: Status,
    action: str,
    expected_version: int | None = None,
    reason: str | None = None,
    changes: dict | None = None,
    details: dict | None = None,
) -> ReleaseRequest:
    """Move `request` to `target` (with field `changes`), audited; 409 if illegal or stale."""
    if expected_version is not None and expected_version != request.version:
        raise StaleVersion(
            f"request {request.id} is at version {request.version}, you sent {expected_version}; reload it",
            current_version=request.version,
        )
    check_transition(request.status, target)
    changes = dict(changes or {})
    changed = ("status", "version", "updated_at", *changes)
    before = snapshot(request, changed)
    now = _now(session)  # before any attribute changes: the query would autoflush them as a separate version
    for name, value in changes.items():
        setattr(request, name, value)
    request.status = target
    request.updated_at = now
    session.flush()  # bumps `version`; a concurrent writer makes this raise StaleDataError (→ 409)
    record(
        session,
        actor=actor_of(actor),
        action=action,
        entity_type="request",
        entity_id=request.id,
        request_id=request.id,
        before=before,
        after={**snapshot(request, changed), **(details or {})},
        reason=reason,
    )
    return request


def triage(session: Session, *, actor: Person, request_id: str, decision: TriageDecision) -> ReleaseRequest:
    access.require_role(actor, access.TRIAGES, to="triage requests")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    common = {"session": session, "actor": actor, "request": request, "expected_version": decision.version}
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
        actor=actor,
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
        actor=actor,
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
    session: Session, *, actor: Person, request: ReleaseRequest, sha256: str, size: int | None,
    filename: str | None, stored: bool,
) -> Sample:  # fmt: skip
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
    session: Session, *, actor: Person, request_id: str, config: AppConfig, samples_dir,
    stream: BinaryIO | None, filename: str | None, declared_sha256: str | None,
) -> Sample:  # fmt: skip
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
        return _add_sample_row(
            session, actor=actor, request=request, sha256=declared_sha256.lower(), size=None, filename=None,
            stored=False,
        )  # fmt: skip
    sha256, size = store_sample(
        samples_dir, stream, max_bytes=config.intake.samples.max_bytes, declared_sha256=declared_sha256
    )
    safe_name = (filename or "").replace("/", "_").replace("\\", "_")[:255] or None
    return _add_sample_row(
        session, actor=actor, request=request, sha256=sha256, size=size, filename=safe_name, stored=True
    )


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


def to_out(session: Session, request: ReleaseRequest) -> RequestOut:
    samples = session.scalars(select(Sample).where(Sample.request_id == request.id).order_by(Sample.id))
    customer = session.get(Customer, request.customer_id)
    return RequestOut(
        **{name: getattr(request, name) for name in RequestOut.model_fields if hasattr(request, name)},
        customer_name=customer.name,
        allowed_transitions=sorted(TRANSITIONS[Status(request.status)]),
        owner=_name(session, request.owner_id),
        assignee=_name(session, request.assignee_id),
        duplicate_of=request.duplicate_of_id,
        submitted_by=_name(session, request.submitted_by_id) or "?",
        samples=[SampleOut.model_validate(s) for s in samples],
    )


def request_timeline(session: Session, *, actor: Person, request_id: str) -> list[TimelineEntry]:
    request = get_visible(session, actor=actor, request_id=request_id)
    return [
        TimelineEntry(
            seq=e.seq,
            at=e.occurred_at,
            actor=e.actor,
            action=e.action,
            entity=f"{e.entity_type}:{e.entity_id}",
            before=e.before,
            after=e.after,
            reason=e.reason,
        )  # fmt: skip
        for e in timeline(session, request_id=request.id)
    ]


def replay(session: Session, *, request_id: str) -> dict:
    """The request's tracked fields rebuilt from its audit events alone (the log is the history)."""
    state: dict = {}
    for event in timeline(session, request_id=request_id):
        if event.entity_type == "request" and event.after:
            state.update({k: v for k, v in event.after.items() if k in TRACKED_FIELDS})
    return state
