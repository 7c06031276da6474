"""Taking a release back: a person's one-step revert, telemetry's automatic halt, and resuming after one.

Every move is one transaction holding the new pointer, its `channel_history` row, its audit event and
the notices. Stopping needs no person (an emergency shutoff); continuing after a halt does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import Actor, record
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.errors import Conflict, InvalidInput, NotFound
from release_requests.notifications.service import notify
from release_requests.people.models import Person
from release_requests.people.service import actor_of
from release_requests.releases.channels import (
    halted_state,
    pointer_state,
    read_pointer,
    record_move,
)
from release_requests.releases.models import ChannelHistory, ChannelPointer, Release
from release_requests.releases.telemetry import TELEMETRY, HaltDecision
from release_requests.requests.lifecycle import transition
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.states import TRANSITIONS, Status


def _move_back(
    session: Session,
    *,
    pointer: ChannelPointer,
    target: str,
    action: str,
    actor: Actor,
    reason: str,
    request_id: str | None,
    at: datetime,
) -> ChannelHistory:
    """Serve `target` to everyone again; its own predecessor becomes the next one-step revert target."""
    replaced = pointer.version
    target_release = session.get(Release, target)
    pointer.previous_version = session.scalar(
        select(ChannelHistory.from_version)
        .where(
            ChannelHistory.channel == pointer.channel,
            ChannelHistory.to_version == target,
            ChannelHistory.action == "publish",
        )
        .order_by(ChannelHistory.id.desc())
        .limit(1)
    )
    if pointer.previous_version in (replaced, target):
        pointer.previous_version = None  # never offer the version we are leaving as the way back
    pointer.version = target
    if target_release.kind == "hotfix":
        pointer.private_to = target_release.private_to
    pointer.rollout_percent, pointer.rollout_step = 100, None
    pointer.published_at = pointer.step_started_at = pointer.updated_at = at
    pointer.pointer_version += 1
    pointer.updated_by = actor.name
    return record_move(
        session,
        pointer=pointer,
        from_version=replaced,
        action=action,
        actor=actor,
        reason=reason,
        request_id=request_id,
        at=at,
    )


def revert(
    session: Session,
    *,
    actor: Actor,
    channel: str,
    to_version: str | None,
    reason: str,
    config: AppConfig,
    request_id: str | None = None,
) -> ChannelPointer:
    """Move `channel` back in one step: to its previous version, or to `to_version` if it served it before.

    Audited and announced (`release.reverted`) to the team, and to the customer on their own channel, when
    the request is known (given, or the one whose release is being reverted).
    """
    pointer = read_pointer(session, channel, lock=True)
    if pointer is None:
        raise NotFound(f"no channel '{channel}'")
    target = to_version or pointer.previous_version
    if target is None:
        raise Conflict(f"channel {channel} served nothing before {pointer.version}; there is nothing to revert to")
    if target == pointer.version:
        raise Conflict(f"channel {channel} already serves {target}")
    served = session.scalar(
        select(ChannelHistory.id).where(ChannelHistory.channel == channel, ChannelHistory.to_version == target).limit(1)
    )
    if served is None:
        raise InvalidInput(f"channel {channel} never served '{target}'", field="to_version")
    reverted = session.get(Release, pointer.version)
    request_id = request_id or reverted.request_id
    request = session.get(ReleaseRequest, request_id) if request_id else None
    if request_id and request is None:
        raise NotFound(f"no request '{request_id}'")
    before = pointer_state(pointer)
    now = db_now(session)
    entry = _move_back(
        session,
        pointer=pointer,
        target=target,
        action="revert",
        actor=actor,
        reason=reason,
        request_id=request_id,
        at=now,
    )
    record(
        session,
        actor=actor,
        action="channel.reverted",
        entity_type="channel",
        entity_id=channel,
        request_id=request_id,
        before=before,
        after=pointer_state(pointer),
        reason=reason,
    )
    if request is not None:
        _announce(
            session,
            event="release.reverted",
            request=request,
            pointer=pointer,
            from_version=reverted.version,
            reason=reason,
            actor=actor,
            customer=pointer.private_to == request.customer_id,
            key=str(entry.id),
            config=config,
            at=now,
        )
    return pointer


def halt(session: Session, *, channel: str, decision: HaltDecision, config: AppConfig, now: datetime) -> ChannelPointer:
    """Stop a bad base at once: revert the channel, mark it halted, fail its request with the reason, tell
    the team (with the evidence) and the customer.

    The mark keeps everything off the channel until a release manager or admin resumes it (`resume`), like
    an emergency shutoff: stopping needs no person, continuing does. Idempotent: if the channel is already
    halted or no longer serves the halted version, nothing happens. The request is failed only if its state
    allows it; the channel is reverted (and the halt audited) either way.
    """
    pointer = read_pointer(session, channel, lock=True)
    if pointer is None:
        raise NotFound(f"no channel '{channel}'")
    if pointer.version != decision.version or pointer.halted_at is not None:
        return pointer
    before = pointer_state(pointer)
    if decision.revert_to is not None:
        _move_back(
            session,
            pointer=pointer,
            target=decision.revert_to,
            action="halt",
            actor=TELEMETRY,
            reason=decision.reason,
            request_id=decision.request_id,
            at=now,
        )
    pointer.halted_at, pointer.halted_reason, pointer.halted_version = now, decision.reason, decision.version
    request = None
    if decision.request_id is not None:
        request = session.get(ReleaseRequest, decision.request_id, with_for_update=True)
    failed = request is not None and Status.failed in TRANSITIONS[Status(request.status)]
    if failed:
        transition(
            session,
            actor=TELEMETRY,
            request=request,
            target=Status.failed,
            action="request.failed",
            reason=decision.reason,
            details={"channel": channel, "halted_version": decision.version},
        )
    record(
        session,
        actor=TELEMETRY,
        action="channel.halted",
        entity_type="channel",
        entity_id=channel,
        request_id=decision.request_id,
        before=before,
        after={
            **pointer_state(pointer),
            **halted_state(pointer),
            "reverted": decision.revert_to is not None,
            "request_failed": failed,
            "request_status": request.status if request else None,
            "evidence": decision.evidence,
        },
        reason=decision.reason,
    )
    if request is not None:
        _announce_halt(session, request=request, pointer=pointer, decision=decision, config=config, at=now)
    return pointer


def _announce(
    session: Session,
    *,
    event: str,
    request: ReleaseRequest,
    pointer: ChannelPointer,
    from_version: str,
    reason: str,
    actor: Actor,
    customer: bool,
    key: str,
    config: AppConfig,
    at: datetime,
) -> None:
    notify(
        session,
        request=request,
        event=event,
        targets=["internal_channel", "customer"] if customer else ["internal_channel"],
        config=config,
        at=at,
        key=key,
        context={
            "channel": pointer.channel,
            "from_version": from_version,
            "to_version": pointer.version,
            "reverted": pointer.version != from_version,
            "reason": reason,
            "actor": actor.name,
        },
    )


def revert_as(
    session: Session, *, person: Person, channel: str, to_version: str | None, reason: str, config: AppConfig
) -> ChannelPointer:
    """A person's revert (API, CLI): release managers, admins and the emergency role may do it."""
    access.authorize(person, "channel.revert")
    return revert(session, actor=actor_of(person), channel=channel, to_version=to_version, reason=reason, config=config)


def _announce_halt(
    session: Session,
    *,
    request: ReleaseRequest,
    pointer: ChannelPointer,
    decision: HaltDecision,
    config: AppConfig,
    at: datetime,
) -> None:
    """`release.halted` to the team with the evidence (clients, their organisations, files), and to the
    customer without it: the evidence names other customers' machines and files."""
    context = {
        "channel": pointer.channel,
        "from_version": decision.version,
        "to_version": pointer.version,
        "reverted": pointer.version != decision.version,
        "reason": decision.reason,
        "actor": TELEMETRY.name,
    }
    key = f"{pointer.channel}:{decision.version}"
    for targets, extra in ((["internal_channel"], {"evidence": decision.evidence}), (["customer"], {})):
        notify(
            session,
            request=request,
            event="release.halted",
            targets=targets,
            config=config,
            at=at,
            key=key,
            context=context | extra,
        )


def resume(session: Session, *, person: Person, channel: str, reason: str) -> ChannelPointer:
    """A release manager or admin lets a halted channel take publishes again, with a reason (audited).

    The channel keeps serving what the halt left on it; publishing a fixed base is the next, separate step.
    Telemetry counts afresh from now: what was reported before is what the person has just judged.
    """
    access.authorize(person, "channel.resume")
    pointer = read_pointer(session, channel, lock=True)
    if pointer is None:
        raise NotFound(f"no channel '{channel}'")
    if pointer.halted_at is None:
        raise Conflict(f"channel {channel} is not halted; there is nothing to resume")
    before = {"version": pointer.version, **halted_state(pointer)}
    halted = session.get(Release, pointer.halted_version)
    actor = actor_of(person)
    now = db_now(session)
    pointer.halted_at = pointer.halted_reason = pointer.halted_version = None
    pointer.resumed_at = pointer.updated_at = now
    pointer.updated_by = actor.name
    record(
        session,
        actor=actor,
        action="channel.resumed",
        entity_type="channel",
        entity_id=channel,
        request_id=halted.request_id,
        before=before,
        after={"version": pointer.version, **halted_state(pointer), "resumed_at": now},
        reason=reason,
    )
    return pointer
