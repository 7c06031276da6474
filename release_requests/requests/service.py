"""Release requests: intake and the decisions people take on them (triage, answers, severity, cancellation).

A decision here changes the request and tells the customer; what follows in other domains (an accepted
request starts a build, a report joins a shared build) is the workflow layer's (`release_requests.workflows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import Actor, record, record_now
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.customers.models import Customer
from release_requests.errors import InvalidInput, NotFound
from release_requests.notifications.service import notify
from release_requests.people.models import Person
from release_requests.people.service import actor_of, display_name, find_person, label
from release_requests.requests.lifecycle import change, get_visible, snapshot, transition
from release_requests.requests.models import SUBMISSION_KEY_UNIQUE, ReleaseRequest
from release_requests.requests.samples import add_sample_row
from release_requests.requests.schemas import (
    Accept,
    Answer,
    Assign,
    Cancel,
    Duplicate,
    NeedsInfo,
    Reject,
    Respond,
    SeverityChange,
    SubmitRequest,
    TriageDecision,
)
from release_requests.requests.states import OPEN_STATES, Status
from release_requests.routing.service import RoutingDecision, choose_owner
from release_requests.sla.service import status_of

ROUTER = Actor.system("routing")


_NEXT_NUMBER = text("SELECT nextval('release_request_number_seq')")


def _next_id(session: Session, *, prefix: str, year: int) -> str:
    number = session.execute(_NEXT_NUMBER).scalar_one()
    return f"{prefix}-{year}-{number:06d}"


@dataclass(frozen=True)
class Submission:
    """What a submission did: `replayed` when the same person had already filed a request with the same
    `submission_key` (that request is returned; nothing was filed, recorded or sent now). `routing` is who
    took a request filed now and why (paging reads it); None for a replay. `customer` is the request's (held
    here so that whoever presents the request next finds it in the session instead of reading it again)."""

    request: ReleaseRequest
    replayed: bool = False
    routing: RoutingDecision | None = None
    customer: Customer | None = None


def submit_request(session: Session, *, actor: Person, data: SubmitRequest, config: AppConfig) -> ReleaseRequest:
    """File a request (see `file_request`): the request filed now, or the one already filed with the key."""
    return file_request(session, actor=actor, data=data, config=config).request


def _filed_with_key(session: Session, *, actor: Person, key: str) -> ReleaseRequest | None:
    earlier = session.scalar(
        select(ReleaseRequest).where(ReleaseRequest.submitted_by_id == actor.id, ReleaseRequest.submission_key == key)
    )
    if earlier is not None and not access.can_see_customer(session, actor, earlier.customer_id):
        # filed by this person for a customer they no longer serve: neither show it nor file another under the key
        raise InvalidInput("this submission_key was used before; send a new one", field="submission_key")
    return earlier


# Built once (compiled once): insert a request unless its person already used its submission_key, and load it
_FILE = select(ReleaseRequest).from_statement(
    insert(ReleaseRequest)
    .on_conflict_do_nothing(constraint=SUBMISSION_KEY_UNIQUE)
    .returning(*ReleaseRequest.__table__.columns)
)


def _received_at_problem(received_at: datetime, *, now: datetime, config: AppConfig) -> InvalidInput | None:
    if received_at > now:
        return InvalidInput("received_at is in the future", field="received_at")
    if received_at < now - timedelta(hours=config.intake.requests.max_backdate_hours):
        return InvalidInput(
            f"received_at is more than {config.intake.requests.max_backdate_hours} h ago; check the date",
            field="received_at",
        )
    return None


def file_request(session: Session, *, actor: Person, data: SubmitRequest, config: AppConfig) -> Submission:
    """File a request, once per `submission_key`: the same person sending a key again (a double click, a retry
    after a lost answer, two at the same moment) gets the request filed with it and files nothing new."""
    access.authorize(actor, "request.file")
    customer_id = data.customer_id or actor.customer_id
    if customer_id is None:
        raise InvalidInput("customer_id is required", field="customer_id")
    customer = session.get(Customer, customer_id)
    if customer is None or not access.can_see_customer(session, actor, customer_id):
        raise InvalidInput(f"unknown customer '{customer_id}'", field="customer_id")
    key = data.submission_key
    now = db_now(session)
    received_at = data.received_at or now
    if (problem := _received_at_problem(received_at, now=now, config=config)) is not None:
        # a retry of a call logged just inside the limit, now just outside it, still gets the request filed then
        if key is not None and (earlier := _filed_with_key(session, actor=actor, key=key)) is not None:
            return Submission(earlier, replayed=True)
        raise problem
    # Routing looks at who was available when the customer reached us (a call at 02:00 on Sunday goes to the
    # manager on duty even if it is typed in later); the SLA watcher re-routes if that person is away later.
    decision = choose_owner(session, customer_id=customer.id, at=received_at)
    # One statement, and no SAVEPOINT, and no look for the key first (a replay is rare, a filing is not): a
    # submission of the same person with the same key, committed earlier or concurrently, makes this insert do
    # nothing (the unique constraint waits for a concurrent one), and we return its request. A replay costs a
    # number of the id sequence, as a rolled-back filing does.
    request = session.scalar(
        _FILE,
        {
            "owner_id": decision.owner.id if decision.owner else None,
            "id": _next_id(session, prefix=config.intake.requests.id_prefix, year=now.astimezone(UTC).year),
            "customer_id": customer.id,
            "submitted_by_id": actor.id,
            "status": Status.submitted,
            "received_at": received_at,
            "created_at": now,
            "updated_at": now,
            "version": 1,
            **data.model_dump(exclude={"customer_id", "received_at", "sample_sha256"}),
        },
    )
    if request is None:
        earlier = _filed_with_key(session, actor=actor, key=key)
        if earlier is None:  # cannot be: the conflicting row is committed, READ COMMITTED sees it
            raise RuntimeError(f"submission_key {key!r} conflicted, but no request carries it")
        return Submission(earlier, replayed=True)
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
        add_sample_row(session, actor=actor, request=request, sha256=sha256, size=None, filename=None, stored=False)
    _announce_routing(session, request=request, decision=decision, customer=customer, config=config, now=now)
    return Submission(request, routing=decision, customer=customer)


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
    access.authorize(actor, "request.respond")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    if request.status not in OPEN_STATES:
        raise InvalidInput(f"request {request.id} is {request.status}; there is nobody waiting for an answer")
    event = record_now(
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
    access.authorize(actor, "request.change_severity")
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


def announce_triage(session: Session, *, request: ReleaseRequest, decision: TriageDecision, config: AppConfig) -> None:
    """Tell the customer the decision (the question, for needs-info), once per request version."""
    if isinstance(decision, NeedsInfo):
        event, context = "request.needs_info", {"question": decision.question}
    else:
        event = "request.triaged"
        context = {
            "decision": request.status,
            "reason": getattr(decision, "reason", None),
            "note": getattr(decision, "note", None),
            "duplicate_of": request.duplicate_of_id,
            "assignee": display_name(session, request.assignee_id),
        }
    notify(
        session,
        request=request,
        event=event,
        targets=["customer"],
        context=context,
        config=config,
        at=db_now(session),
        key=str(request.version),
    )


def apply_triage(session: Session, *, actor: Person, request_id: str, decision: TriageDecision) -> ReleaseRequest:
    """Accept, reject, mark duplicate or ask for information: the state change and its audit event."""
    access.authorize(actor, "request.triage")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    common = {"session": session, "actor": actor_of(actor), "request": request, "expected_version": decision.version}
    match decision:
        case Accept():
            assignee = find_person(session, ref=decision.assignee) if decision.assignee else actor
            if not access.allows(assignee, "request.be_assignee"):
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
                reason=decision.reason or None,
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


def assign(session: Session, *, actor: Person, request_id: str, data: Assign) -> ReleaseRequest:
    """Hand an open request to another engineer after triage (triage itself assigns on accept)."""
    access.authorize(actor, "request.assign")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    if request.status not in OPEN_STATES:
        raise InvalidInput(
            f"request {request.id} is {request.status}; there is no work left to assign", field="assignee"
        )
    try:
        assignee = find_person(session, ref=data.assignee)
    except NotFound:
        raise InvalidInput(f"no person '{data.assignee}'", field="assignee") from None
    if not access.allows(assignee, "request.be_assignee"):
        raise InvalidInput(f"{assignee.name} is not vendor staff", field="assignee")
    if assignee.id == request.assignee_id:
        raise InvalidInput(f"{request.id} is already assigned to {assignee.name}", field="assignee")
    return change(
        session,
        actor=actor_of(actor),
        request=request,
        action="request.assigned",
        changes={"assignee_id": assignee.id},
        expected_version=data.version,
        details={"assignee": label(assignee)},
    )


def answer(session: Session, *, actor: Person, request_id: str, data: Answer) -> ReleaseRequest:
    """The customer (or their TAM on their behalf) answers the open question: back to triage."""
    access.authorize(actor, "request.answer")
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
    access.authorize(actor, "request.cancel")
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
