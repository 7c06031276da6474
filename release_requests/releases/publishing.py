"""Moving a channel forward: publish by compare-and-swap, and roll the canary out step by step.

Publishing never touches other channels: a base that reaches `global` stays on `internal`, `canary` and the
customer's channel until something replaces it. A halted channel and a release that would drop a fix the
channel serves are refused before anything moves.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import git
from sqlalchemy import case, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from artifacts import releaseline
from artifacts.gitops import open_repo
from release_requests import access
from release_requests.audit.service import Actor, record
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.errors import ChannelHalted, LineBroken, NotFound, StaleVersion
from release_requests.releases.channels import (
    audience_of,
    is_canary,
    is_staff_channel,
    pointer_state,
    read_pointer,
    record_move,
)
from release_requests.releases.models import ChannelPointer, Release


def check_keeps_fixes(session: Session, *, channel: str, release: Release, repo_path: Path) -> None:
    """Refuse (LineBroken) a release that lacks a fix the channel serves now.

    Bases: the new base's commit must descend from the served base's commit (git ancestry on the release
    line; a reverted fix is gone by a revert commit, which still descends). Private hotfixes of the same
    customer, product and version: every fix the served hotfix cherry-picked must be in the new one.
    """
    pointer = read_pointer(session, channel)
    served = session.get(Release, pointer.version) if pointer else None
    if served is None or served.version == release.version or served.kind != release.kind:
        return
    if release.kind == "hotfix":
        old, new = served.manifest, release.manifest
        if (served.private_to, old.get("product"), old.get("product_version")) != (
            release.private_to,
            new.get("product"),
            new.get("product_version"),
        ):
            return  # another line (a new product version): nothing of the old one is promised
        missing = [c[:12] for c in old.get("cherry_picked", []) if c not in new.get("cherry_picked", [])]
        if missing:
            raise LineBroken(
                f"hotfix {release.version} lacks fixes {', '.join(missing)} that {channel} serves in {served.version}",
                channel=channel,
                served=served.version,
            )
        return
    repo = open_repo(repo_path)
    old, new = served.manifest["commit"], release.manifest["commit"]
    try:
        kept = releaseline.contains(repo, ancestor=old, descendant=new)
    except (ValueError, git.GitCommandError):
        kept = False
    if not kept:
        try:
            dropped = releaseline.requests_between(repo, since=new, until=old)
        except (ValueError, git.GitCommandError):
            dropped = []
        raise LineBroken(
            f"base {release.version} (commit {new[:12]}) does not contain {served.version} (commit {old[:12]}), "
            f"which {channel} serves: it would drop "
            + (f"the fixes of {', '.join(dropped)}" if dropped else "fixes shipped there")
            + "; rebuild on the release line",
            channel=channel,
            served=served.version,
        )


def publish(
    session: Session,
    *,
    actor: Actor,
    channel: str,
    version: str,
    expected_current: str | None,
    request_id: str | None,
    config: AppConfig,
    repo_path: Path,
    reason: str | None = None,
) -> ChannelPointer:
    """Point `channel` at `version` if it still points at `expected_current` (None: the channel is new).

    Two publishers cannot both win: the UPDATE's WHERE (or the INSERT's unique key) lets exactly one through
    and the other gets StaleVersion (409) naming the current version. Publishing what is already current is a
    no-op, so a pipeline step retried after a crash succeeds. On the canary channel the new version starts at
    the first `[canary].steps` percentage; clients outside the cohort keep the last fully rolled-out version.
    A halted channel refuses every publish (Conflict) until a release manager or admin resumes it, and a
    release that would take away a fix the channel serves is refused (LineBroken, see `check_keeps_fixes`).
    """
    refuse_if_halted(session, channel)
    release = session.get(Release, version)
    if release is None:
        raise NotFound(f"no release '{version}'")
    audience = audience_of(session, config=config, release=release, channel=channel)
    current = read_pointer(session, channel)
    if current is not None and current.version == version:
        return current
    if (current.version if current else None) == expected_current:  # a stale caller hears StaleVersion below
        check_keeps_fixes(session, channel=channel, release=release, repo_path=repo_path)
    first = config.stages.canary.steps[0]
    percent, step = (first.percent, 0) if is_canary(config, channel) else (100, None)
    now = db_now(session)
    values = {
        "version": version,
        "private_to": audience,
        "staff_only": is_staff_channel(config, channel),
        "rollout_percent": percent,
        "rollout_step": step,
        "published_at": now,
        "step_started_at": now,
        "updated_by": actor.name,
        "updated_at": now,
    }
    if expected_current is None:
        statement = (
            insert(ChannelPointer)
            .values(channel=channel, previous_version=None, pointer_version=1, **values)
            .on_conflict_do_nothing(index_elements=["channel"])
        )
    else:
        P = ChannelPointer
        statement = (
            update(P)
            .where(P.channel == channel, P.version == expected_current)
            .values(
                # a version still rolling out never becomes the fallback: the last complete one stays
                previous_version=case((P.rollout_percent == 100, P.version), else_=P.previous_version),
                pointer_version=P.pointer_version + 1,
                **values,
            )
            .execution_options(synchronize_session=False)
        )
    won = session.execute(statement.returning(ChannelPointer.channel)).scalar_one_or_none()
    pointer = read_pointer(session, channel)
    if won is None:
        if pointer is not None and pointer.version == version:
            return pointer  # a concurrent publisher of the same version won: same outcome
        actual = pointer.version if pointer else None
        raise StaleVersion(
            f"channel {channel} is at {actual or 'nothing'}, not {expected_current or 'nothing'}; reload and retry",
            current_version=actual,
        )
    request_id = request_id or release.request_id
    record_move(
        session,
        pointer=pointer,
        from_version=expected_current,
        action="publish",
        actor=actor,
        reason=reason,
        request_id=request_id,
        at=now,
    )
    record(
        session,
        actor=actor,
        action="channel.published",
        entity_type="channel",
        entity_id=channel,
        request_id=request_id,
        before={"version": expected_current},
        after=pointer_state(pointer),
        reason=reason,
    )
    return pointer


def advance_rollout(session: Session, *, actor: Actor, channel: str, now: datetime, config: AppConfig) -> int:
    """Raise the canary percentage to the next step once the current step's soak has elapsed; return it.

    Idempotent: before the soak ends, at the last step, or off the canary it changes nothing. The caller
    (the rollout flow) evaluates the halt first; this function does not look at telemetry.
    """
    pointer = read_pointer(session, channel, lock=True)
    if pointer is None:
        raise NotFound(f"no channel '{channel}'")
    steps = config.stages.canary.steps
    if pointer.rollout_step is None or pointer.rollout_step + 1 >= len(steps):
        return pointer.rollout_percent
    if now < pointer.step_started_at + timedelta(minutes=steps[pointer.rollout_step].soak_minutes):
        return pointer.rollout_percent
    before = pointer_state(pointer)
    pointer.rollout_step += 1
    pointer.rollout_percent = steps[pointer.rollout_step].percent
    pointer.step_started_at = pointer.updated_at = now
    pointer.pointer_version += 1
    pointer.updated_by = actor.name
    release = session.get(Release, pointer.version)
    record_move(
        session,
        pointer=pointer,
        from_version=pointer.version,
        action="rollout_step",
        actor=actor,
        reason=None,
        request_id=release.request_id,
        at=now,
    )
    record(
        session,
        actor=actor,
        action="channel.rollout_advanced",
        entity_type="channel",
        entity_id=channel,
        request_id=release.request_id,
        before=before,
        after=pointer_state(pointer),
    )
    return pointer.rollout_percent


def refuse_if_halted(session: Session, channel: str) -> None:
    """Nothing is published to a halted channel. The pointer row stays locked until the publish commits,
    so a halt committed meanwhile is seen here rather than overtaken."""
    pointer = read_pointer(session, channel, lock=True)
    if pointer is not None and pointer.halted_at is not None:
        resumers = " or ".join(sorted(access.rule("channel.resume").roles))
        raise ChannelHalted(
            f"channel {channel} was halted automatically at {pointer.halted_at.isoformat()} "
            f"({pointer.halted_reason}); nothing is published to it until a {resumers} "
            f"resumes it (relreq channels resume {channel} --reason ...)",
            channel=channel,
            halted_version=pointer.halted_version,
        )
