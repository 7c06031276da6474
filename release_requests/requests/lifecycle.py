"""The primitives every change to a request goes through: read it if visible, change fields, move state.

Every function takes the caller's session and commits nothing itself: the caller's transaction holds
the state change and its audit event together. `transition` is the one way a request changes state;
SLA, builds and releases go through it too, and `replay` proves the audit log alone rebuilds it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import Actor, record, timeline
from release_requests.clock import db_now
from release_requests.errors import NotFound, StaleVersion
from release_requests.people.models import Person
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.states import Status, check_transition

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
    "caller_name",
    "callback_number",
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


def get_visible(session: Session, *, actor: Person, request_id: str, lock: bool = False) -> ReleaseRequest:
    """The request if `actor` may see it; otherwise NotFound (never reveal other customers' ids)."""
    query = select(ReleaseRequest).where(ReleaseRequest.id == request_id)
    if lock:
        query = query.with_for_update(key_share=True)  # NO KEY UPDATE: child-row FK checks may proceed
    request = session.scalar(query)
    if request is None or not access.can_see_customer(session, actor, request.customer_id):
        raise NotFound(f"no request '{request_id}'")
    return request


def read(session: Session, *, actor: Person, request_id: str) -> ReleaseRequest:
    """A request to show (with its samples): the table's `request.read`, then visibility."""
    access.authorize(actor, "request.read")
    return get_visible(session, actor=actor, request_id=request_id)


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


def replay(session: Session, *, request_id: str) -> dict:
    """The request's tracked fields rebuilt from its audit events alone (the log is the history)."""
    state: dict = {}
    for event in timeline(session, request_id=request_id):
        if event.entity_type == "request" and event.after:
            state.update({k: v for k, v in event.after.items() if k in TRACKED_FIELDS})
    return state
