"""Same-cause requests share one build.

A false positive (or false negative) that names the same sample (sha256) as a request whose build is
open joins that build at once: it becomes a duplicate of it, the problem gets one advisory id
(`ADV-YYYY-NNNNNN`, the only shared name a customer ever sees — never another customer's request id),
every step is told to every customer through the primary's notices, and the join itself is the
qualified response that meets the joining request's own SLA clock ("we know this problem; a fix is
being made"). Requests that arrive before the first one is accepted join when it is. A duty manager can
split a request out again (`pipeline.service.split`); it then gets its own build.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from release_requests.audit.service import Actor
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.notifications.service import notify
from release_requests.requests.lifecycle import change, transition
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.requests.states import Status

SHARING = Actor.system("intake")
SHAREABLE = ("false_positive", "false_negative")
BUILD_OPEN = (Status.accepted, Status.building, Status.verifying, Status.awaiting_approval, Status.releasing)


def advisory_for(session: Session, *, primary: ReleaseRequest) -> str:
    """The problem's advisory id, opened on the primary request the first time another report joins it."""
    if primary.advisory_id is None:
        number = session.execute(text("SELECT nextval('advisory_number_seq')")).scalar_one()
        advisory = f"ADV-{db_now(session).year}-{number:06d}"
        change(
            session,
            actor=SHARING,
            request=primary,
            action="request.advisory_opened",
            changes={"advisory_id": advisory},
            reason="another report names the same sample",
        )
    return primary.advisory_id


def _digests(session: Session, request_id: str) -> list[str]:
    return list(session.scalars(select(Sample.sha256).where(Sample.request_id == request_id)))


def open_build_for(session: Session, *, request: ReleaseRequest) -> ReleaseRequest | None:
    """The oldest request of the same kind with an open build that names one of this request's samples."""
    digests = _digests(session, request.id)
    if not digests:
        return None
    return session.scalar(
        select(ReleaseRequest)
        .join(Sample, Sample.request_id == ReleaseRequest.id)
        .where(
            Sample.sha256.in_(digests),
            ReleaseRequest.kind == request.kind,
            ReleaseRequest.status.in_(BUILD_OPEN),
            ReleaseRequest.duplicate_of_id.is_(None),
            ReleaseRequest.id != request.id,
        )
        .order_by(ReleaseRequest.id)
        .limit(1)
        # held until this transaction ends: the primary cannot be cancelled or closed under the joining report
        .with_for_update(of=ReleaseRequest, key_share=True)
    )


def join_open_build(session: Session, *, request: ReleaseRequest, config: AppConfig) -> bool:
    """Join the open build for the same sample, if there is one (called on submit and on each sample)."""
    if request.kind not in SHAREABLE or request.status != Status.submitted:
        return False
    primary = open_build_for(session, request=request)
    if primary is None:
        return False
    _join(session, request=request, primary=primary, config=config)
    return True


def sweep_on_accept(session: Session, *, primary: ReleaseRequest, config: AppConfig) -> list[str]:
    """Reports of the same sample filed before the primary was accepted join its build now."""
    digests = _digests(session, primary.id)
    if primary.kind not in SHAREABLE or not digests:
        return []
    waiting = session.scalars(
        select(ReleaseRequest)
        .join(Sample, Sample.request_id == ReleaseRequest.id)
        .where(
            Sample.sha256.in_(digests),
            ReleaseRequest.kind == primary.kind,
            ReleaseRequest.status == Status.submitted,
            ReleaseRequest.id != primary.id,
        )
        .order_by(ReleaseRequest.id)
        .with_for_update(of=ReleaseRequest, key_share=True)
    ).unique()
    joined = []
    for request in waiting:
        _join(session, request=request, primary=primary, config=config)
        joined.append(request.id)
    return joined


def sweep_unjoined(session: Session, *, config: AppConfig) -> list[str]:
    """Reports filed while their build's primary was being accepted (neither saw the other): join them now."""
    open_samples = (
        select(Sample.sha256)
        .join(ReleaseRequest, ReleaseRequest.id == Sample.request_id)
        .where(ReleaseRequest.status.in_(BUILD_OPEN), ReleaseRequest.duplicate_of_id.is_(None))
    )
    waiting = session.scalars(
        select(ReleaseRequest)
        .join(Sample, Sample.request_id == ReleaseRequest.id)
        .where(
            ReleaseRequest.status == Status.submitted,
            ReleaseRequest.kind.in_(SHAREABLE),
            Sample.sha256.in_(open_samples),
        )
        .order_by(ReleaseRequest.id)
        .with_for_update(of=ReleaseRequest, key_share=True, skip_locked=True)
    ).unique()
    return [r.id for r in waiting if join_open_build(session, request=r, config=config)]


def _join(session: Session, *, request: ReleaseRequest, primary: ReleaseRequest, config: AppConfig) -> None:
    advisory = advisory_for(session, primary=primary)
    transition(
        session,
        actor=SHARING,
        request=request,
        target=Status.duplicate,
        action="request.duplicate",
        changes={"duplicate_of_id": primary.id, "advisory_id": advisory},
        reason=f"same sample as the open build of advisory {advisory}",
    )
    notify(
        session,
        request=request,
        event="request.triaged",
        targets=["customer"],
        config=config,
        at=db_now(session),
        key=f"joined:{advisory}",
        context={
            "decision": "duplicate",
            "advisory": advisory,
            "duplicate_of": primary.id if primary.customer_id == request.customer_id else None,
        },
    )
