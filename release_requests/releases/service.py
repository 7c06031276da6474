"""Releases and update channels: register a signed bundle, publish by compare-and-swap, roll the canary
forward, revert in one step, halt on bad telemetry, and serve what a channel currently holds.

Every pointer move is one transaction holding the new pointer, its `channel_history` row and its audit
event (and, for reverts and halts, the notices). Publishing never touches other channels: a base that
reaches `global` stays on `internal`, `canary` and the customer's channel until something replaces it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import git
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import bindparam, case, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from artifacts import releaseline
from artifacts.allowlist import parse_allowlist
from artifacts.base import ALLOWLIST_FILE
from artifacts.bundle import MANIFEST, SIGNATURE, BaseManifest, HotfixManifest, read_verified
from artifacts.digest import sha256_bytes
from artifacts.errors import ArtifactError
from artifacts.gitops import open_repo
from artifacts.signing import public_key_pem, signing_key, verify
from artifacts.store import ArtifactStore, LocalStore
from release_requests import access
from release_requests.audit.service import Actor, record
from release_requests.config import AppConfig, get_config
from release_requests.customers.models import Customer
from release_requests.errors import ChannelHalted, Conflict, InvalidInput, LineBroken, NotFound, StaleVersion
from release_requests.notifications.service import notify
from release_requests.people.models import Person
from release_requests.people.service import actor_of
from release_requests.releases.cohorts import in_cohort
from release_requests.releases.models import ChannelHistory, ChannelPointer, KnownCleanFile, Release
from release_requests.releases.naming import release_key
from release_requests.releases.schemas import HistoryOut, KnownCleanIn
from release_requests.releases.telemetry import TELEMETRY, HaltDecision
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.service import db_now, foreign_id_masker, transition
from release_requests.requests.states import TRANSITIONS, Status
from release_requests.settings import get_settings

REVERTS = frozenset({"release_manager", "admin", "emergency"})
_PLACEHOLDERS = {"customer": r"(?P<customer>[a-z0-9][a-z0-9-]{1,39})", "product": r"(?P<product>[a-z0-9._-]+)"}


@lru_cache
def server_public_key(data_dir: Path) -> Ed25519PublicKey:
    """The public half of `<data dir>/keys/signing.key`: what releases must be signed with."""
    return signing_key(data_dir=data_dir).public_key()


@lru_cache
def server_public_key_pem(data_dir: Path) -> str:
    """The same key as PEM, as update clients receive it."""
    return public_key_pem(signing_key(data_dir=data_dir)).decode()


# ---------------------------------------------------------------------------------------------- releases


def register_release(
    session: Session,
    *,
    actor: Actor,
    bundle_dir: Path,
    store: ArtifactStore,
    request_id: str | None,
    private_to: str | None = None,
    product: str | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> Release:
    """Record a signed bundle as a release after checking its signature and every file; put files in the store.

    Idempotent for the same manifest (the pipeline may retry); a different manifest under a known release key
    is a Conflict. `public_key` defaults to the server's signing key (`RR_DATA_DIR/keys/signing.key`).
    """
    key = public_key or server_public_key(get_settings().data_dir)
    manifest = _verified_manifest(bundle_dir, key)
    data = (bundle_dir / MANIFEST).read_bytes()
    signature = (bundle_dir / SIGNATURE).read_bytes()
    try:  # what we store must be the very bytes that verified, not a file swapped in meanwhile
        verify(key, data, signature, origin=str(bundle_dir / SIGNATURE))
    except ArtifactError as exc:
        raise InvalidInput(str(exc), field="bundle_dir") from exc
    if isinstance(manifest, HotfixManifest):
        for name, given, signed in (
            ("private_to", private_to, manifest.private_to),
            ("product", product, manifest.product),
        ):
            if given is not None and given != signed:
                raise InvalidInput(
                    f"hotfix {manifest.version} is signed with {name} '{signed}', not '{given}'", field=name
                )
        private_to, product = manifest.private_to, manifest.product
    elif private_to is not None:
        raise InvalidInput(
            f"base {manifest.version} is public; it cannot be private to '{private_to}'", field="private_to"
        )
    if private_to is not None and session.get(Customer, private_to) is None:
        raise InvalidInput(f"unknown customer '{private_to}'", field="private_to")
    if request_id is not None and session.get(ReleaseRequest, request_id) is None:
        raise NotFound(f"no request '{request_id}'")
    parsed = json.loads(data)
    version = release_key(parsed)
    if len(version) > 80:
        raise InvalidInput(f"release key '{version}' is longer than 80 characters", field="bundle_dir")
    digest = sha256_bytes(data)
    for name in manifest.files:
        store.put(bundle_dir / name)
    inserted = session.execute(
        insert(Release)
        .values(
            version=version,
            kind=manifest.kind,
            request_id=request_id,
            private_to=private_to,
            product=product,
            manifest=parsed,
            manifest_json=data.decode(),
            manifest_sha256=digest,
            signature=signature.decode().strip(),
            signing_key_id=manifest.signing_key_id,
            files={e.sha256: {"name": name, "size": e.size} for name, e in manifest.files.items()},
            allowlist=_allowlisted(bundle_dir, manifest),
            registered_by=actor.name,
        )
        .on_conflict_do_nothing(index_elements=["version"])
        .returning(Release.version)
    ).scalar_one_or_none()
    release = session.get(Release, version, populate_existing=True)
    if inserted is None:
        if release.manifest_sha256 != digest:
            raise Conflict(
                f"release {version} is already registered with another manifest (sha256 {release.manifest_sha256})",
                version=version,
            )
        return release
    record(
        session,
        actor=actor,
        action="release.registered",
        entity_type="release",
        entity_id=version,
        request_id=request_id,
        after={
            "kind": release.kind,
            "manifest_sha256": digest,
            "signing_key_id": release.signing_key_id,
            "files": len(release.files),
            "private_to": private_to,
            "product": product,
        },
    )
    return release


def _verified_manifest(bundle_dir: Path, key: Ed25519PublicKey) -> BaseManifest | HotfixManifest:
    try:
        kind = json.loads((bundle_dir / MANIFEST).read_bytes()).get("kind")
    except (OSError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{bundle_dir / MANIFEST}: not a readable manifest ({exc})", field="bundle_dir") from exc
    model = HotfixManifest if kind == "hotfix" else BaseManifest
    try:
        return read_verified(bundle_dir, public_key=key, model=model)
    except ArtifactError as exc:
        raise InvalidInput(str(exc), field="bundle_dir") from exc


def _allowlisted(bundle_dir: Path, manifest: BaseManifest | HotfixManifest) -> list[str]:
    """The sha256 of every file the base's allowlist says is clean (detections on them count towards a halt)."""
    if manifest.kind != "base" or ALLOWLIST_FILE not in manifest.files:
        return []
    path = bundle_dir / ALLOWLIST_FILE
    return sorted(parse_allowlist(path.read_text(encoding="utf-8"), origin=str(path)))


# ---------------------------------------------------------------------------------------------- channels


def channel_for(*, config: AppConfig, kind: str, stage: str, customer_id: str, product: str | None) -> str:
    """The channel a request of `kind` ships to at `stage` (`[pipelines.*.channels]` in stages.toml)."""
    try:
        name, pipeline = config.stages.pipeline_for(kind)
    except StopIteration:
        raise InvalidInput(f"no release pipeline handles requests of kind '{kind}'", field="kind") from None
    if stage not in pipeline.stages:
        raise InvalidInput(f"pipeline {name} has no stage '{stage}' ({', '.join(pipeline.stages)})", field="stage")
    template = pipeline.channels[stage]
    if "{product}" in template and not product:
        raise InvalidInput(f"channel '{template}' needs a product", field="product")
    return template.format(customer=customer_id, product=product)


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"\{(customer|product)\}", template)
    return re.compile("".join(_PLACEHOLDERS[p] if i % 2 else re.escape(p) for i, p in enumerate(parts)))


def _audience(session: Session, *, config: AppConfig, release: Release, channel: str) -> str | None:
    """Who may read `channel` once it serves `release` (a customer id, None = public); refuses wrong channels.

    A hotfix goes only to its own customer's hotfix channels (rendered from the templates with its signed
    customer and product, so ids containing dashes are never mis-parsed); a base only to base channels.
    """
    pipelines = config.stages.pipelines
    if release.kind == "hotfix":
        pipeline = pipelines.get("private_hotfix")
        allowed = sorted(
            t.format(customer=release.private_to, product=release.product)
            for t in (pipeline.channels.values() if pipeline else ())
        )
        if channel not in allowed:
            raise InvalidInput(
                f"hotfix {release.version} is private to {release.private_to}: it may go only to "
                f"{', '.join(allowed) or 'no channel'}, not '{channel}'",
                field="channel",
            )
        return release.private_to
    templates = pipelines["antivirus_base"].channels.values() if "antivirus_base" in pipelines else ()
    for template in templates:
        match = _template_regex(template).fullmatch(channel)
        if match is None:
            continue
        customer = match.groupdict().get("customer")
        if customer is not None and session.get(Customer, customer) is None:
            raise InvalidInput(f"channel '{channel}': no customer '{customer}'", field="channel")
        return customer
    raise InvalidInput(
        f"base {release.version} may go only to base channels ({', '.join(templates)}), not '{channel}'",
        field="channel",
    )


def channel_customer(config: AppConfig, channel: str) -> str | None:
    """The customer a customer-specific channel belongs to (`customer-<id>`, `hotfix-<id>-<product>`), else None.

    For display filtering only (what a customer may see named); access decisions use the pointer's own
    `private_to`, never a parsed name.
    """
    for pipeline in config.stages.pipelines.values():
        for template in pipeline.channels.values():
            if "{customer}" in template and (match := _template_regex(template).fullmatch(channel)):
                return match["customer"]
    return None


def is_staff_channel(config: AppConfig, channel: str) -> bool:
    """The `internal` stage's channels serve the vendor's own machines: staff tokens only, in every view."""
    return any(
        "internal" in p.channels and _template_regex(p.channels["internal"]).fullmatch(channel)
        for p in config.stages.pipelines.values()
    )


def check_keeps_fixes(session: Session, *, channel: str, release: Release, repo_path: Path | None) -> None:
    """Refuse (LineBroken) a release that lacks a fix the channel serves now.

    Bases: the new base's commit must descend from the served base's commit (git ancestry on the release
    line; a reverted fix is gone by a revert commit, which still descends). Private hotfixes of the same
    customer, product and version: every fix the served hotfix cherry-picked must be in the new one.
    """
    pointer = _pointer(session, channel)
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
    repo = open_repo(repo_path or get_settings().signature_repo)
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


def _is_canary(config: AppConfig, channel: str) -> bool:
    return any(p.channels.get("canary") == channel for p in config.stages.pipelines.values())


def _pointer(session: Session, channel: str, *, lock: bool = False) -> ChannelPointer | None:
    return session.get(ChannelPointer, channel, populate_existing=True, with_for_update=lock or None)


def _state(pointer: ChannelPointer) -> dict:
    return {
        "version": pointer.version,
        "previous_version": pointer.previous_version,
        "rollout_percent": pointer.rollout_percent,
        "rollout_step": pointer.rollout_step,
        "pointer_version": pointer.pointer_version,
        "private_to": pointer.private_to,
    }


def _history(
    session: Session,
    *,
    pointer: ChannelPointer,
    from_version: str | None,
    action: str,
    actor: Actor,
    reason: str | None,
    request_id: str | None,
    at: datetime,
) -> ChannelHistory:
    entry = ChannelHistory(
        channel=pointer.channel,
        from_version=from_version,
        to_version=pointer.version,
        action=action,
        rollout_percent=pointer.rollout_percent,
        actor=actor.name,
        actor_id=actor.id,
        reason=reason,
        request_id=request_id,
        at=at,
    )
    session.add(entry)
    session.flush()
    return entry


def publish(
    session: Session,
    *,
    actor: Actor,
    channel: str,
    version: str,
    expected_current: str | None,
    request_id: str | None,
    reason: str | None = None,
    config: AppConfig | None = None,
    repo_path: Path | None = None,
) -> ChannelPointer:
    """Point `channel` at `version` if it still points at `expected_current` (None: the channel is new).

    Two publishers cannot both win: the UPDATE's WHERE (or the INSERT's unique key) lets exactly one through
    and the other gets StaleVersion (409) naming the current version. Publishing what is already current is a
    no-op, so a pipeline step retried after a crash succeeds. On the canary channel the new version starts at
    the first `[canary].steps` percentage; clients outside the cohort keep the last fully rolled-out version.
    A halted channel refuses every publish (Conflict) until a release manager or admin resumes it, and a
    release that would take away a fix the channel serves is refused (LineBroken, see `check_keeps_fixes`).
    """
    config = config or get_config()
    _refuse_if_halted(session, channel)
    release = session.get(Release, version)
    if release is None:
        raise NotFound(f"no release '{version}'")
    audience = _audience(session, config=config, release=release, channel=channel)
    current = _pointer(session, channel)
    if current is not None and current.version == version:
        return current
    if (current.version if current else None) == expected_current:  # a stale caller hears StaleVersion below
        check_keeps_fixes(session, channel=channel, release=release, repo_path=repo_path)
    first = config.stages.canary.steps[0]
    percent, step = (first.percent, 0) if _is_canary(config, channel) else (100, None)
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
    pointer = _pointer(session, channel)
    if won is None:
        if pointer is not None and pointer.version == version:
            return pointer  # a concurrent publisher of the same version won: same outcome
        actual = pointer.version if pointer else None
        raise StaleVersion(
            f"channel {channel} is at {actual or 'nothing'}, not {expected_current or 'nothing'}; reload and retry",
            current_version=actual,
        )
    request_id = request_id or release.request_id
    _history(
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
        after=_state(pointer),
        reason=reason,
    )
    return pointer


def advance_rollout(session: Session, *, actor: Actor, channel: str, now: datetime, config: AppConfig) -> int:
    """Raise the canary percentage to the next step once the current step's soak has elapsed; return it.

    Idempotent: before the soak ends, at the last step, or off the canary it changes nothing. The caller
    (the rollout flow) evaluates the halt first; this function does not look at telemetry.
    """
    pointer = _pointer(session, channel, lock=True)
    if pointer is None:
        raise NotFound(f"no channel '{channel}'")
    steps = config.stages.canary.steps
    if pointer.rollout_step is None or pointer.rollout_step + 1 >= len(steps):
        return pointer.rollout_percent
    if now < pointer.step_started_at + timedelta(minutes=steps[pointer.rollout_step].soak_minutes):
        return pointer.rollout_percent
    before = _state(pointer)
    pointer.rollout_step += 1
    pointer.rollout_percent = steps[pointer.rollout_step].percent
    pointer.step_started_at = pointer.updated_at = now
    pointer.pointer_version += 1
    pointer.updated_by = actor.name
    release = session.get(Release, pointer.version)
    _history(
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
        after=_state(pointer),
    )
    return pointer.rollout_percent


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
    return _history(
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
    request_id: str | None = None,
    config: AppConfig | None = None,
) -> ChannelPointer:
    """Move `channel` back in one step: to its previous version, or to `to_version` if it served it before.

    Audited and announced (`release.reverted`) to the team, and to the customer on their own channel, when
    the request is known (given, or the one whose release is being reverted).
    """
    config = config or get_config()
    pointer = _pointer(session, channel, lock=True)
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
    before = _state(pointer)
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
        after=_state(pointer),
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
    pointer = _pointer(session, channel, lock=True)
    if pointer is None:
        raise NotFound(f"no channel '{channel}'")
    if pointer.version != decision.version or pointer.halted_at is not None:
        return pointer
    before = _state(pointer)
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
            **_state(pointer),
            **_halted_state(pointer),
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


# ------------------------------------------------------------------------------------------------ serving


def _readable(session: Session, viewer: Person | None, customer_id: str | None) -> bool:
    """Public, or the viewer may see that customer (their own users, their TAMs, vendor staff)."""
    if customer_id is None:
        return True
    return viewer is not None and access.can_see_customer(session, viewer, customer_id)


def _channel_readable(session: Session, viewer: Person | None, pointer: ChannelPointer) -> bool:
    """Staff-only channels (the vendor's own machines) need a staff token; others follow their customer."""
    if pointer.staff_only:
        return viewer is not None and viewer.role in access.STAFF
    return _readable(session, viewer, pointer.private_to)


def _visible_pointer(session: Session, *, channel: str, viewer: Person | None) -> ChannelPointer:
    """The channel if `viewer` may read it; otherwise NotFound, so a private channel's existence is not revealed."""
    pointer = session.get(ChannelPointer, channel)
    if pointer is None or not _channel_readable(session, viewer, pointer):
        raise NotFound(f"no channel '{channel}'")
    return pointer


@dataclass(frozen=True)
class Served:
    """What one client gets from a channel: the pointer as read, and which release of it (the row is loaded
    only when the caller has not rendered it already: releases never change)."""

    pointer: ChannelPointer
    version: str
    private: bool


_current, _previous = aliased(Release), aliased(Release)
_SERVED = (  # built once: constructing aliased joins costs more than running the query
    select(ChannelPointer, _current.private_to, _previous.private_to)
    .join(_current, _current.version == ChannelPointer.version)
    .outerjoin(_previous, _previous.version == ChannelPointer.previous_version)
    .where(ChannelPointer.channel == bindparam("channel"))
)


def served_release(session: Session, *, channel: str, client_id: str | None, viewer: Person | None) -> Served:
    """The release this client gets from `channel`: the new one inside the canary cohort, else the fallback.

    One query reads the pointer and who may read both of its releases: this is the hottest path there is.
    """
    row = session.execute(_SERVED, {"channel": channel}).first()
    if row is None or not _channel_readable(session, viewer, row[0]):
        raise NotFound(f"no channel '{channel}'")
    pointer, private_to = row[0], row[1]
    version = pointer.version
    if pointer.previous_version is not None and not in_cohort(
        channel=channel, client_id=client_id, percent=pointer.rollout_percent
    ):
        version, private_to = pointer.previous_version, row[2]
    if not _readable(session, viewer, private_to):
        raise NotFound(f"no channel '{channel}'")
    return Served(pointer=pointer, version=version, private=pointer.private_to is not None or private_to is not None)


def served_file(session: Session, *, channel: str, sha256: str, viewer: Person | None) -> tuple[str, bool]:
    """(file name, is private) of a file of the channel's current or fallback release.

    The fallback's files stay downloadable so that a client that read the manifest just before the pointer
    moved still completes its download.
    """
    pointer = _visible_pointer(session, channel=channel, viewer=viewer)
    versions = [v for v in (pointer.version, pointer.previous_version) if v]
    for release in session.scalars(select(Release).where(Release.version.in_(versions), Release.files.has_key(sha256))):
        if _readable(session, viewer, release.private_to):
            return release.files[sha256]["name"], pointer.private_to is not None or release.private_to is not None
    raise NotFound(f"channel {channel} serves no file {sha256}")


_verified_objects: dict[str, tuple[Path, tuple[int, int, int]]] = {}


def verified_object_path(store: LocalStore, sha256: str) -> Path:
    """Path of a store object whose content was checked against its sha256 (once per inode/size/mtime).

    The store re-hashes on every open, which would cost a full read per download; the check is repeated
    whenever the file changes on disk, and the client verifies every byte it installs anyway.
    """
    cached = _verified_objects.get(sha256)
    if cached is not None:
        path, signature = cached
        try:
            stat = path.stat()
        except FileNotFoundError:
            stat = None
        if stat is not None and (stat.st_ino, stat.st_size, stat.st_mtime_ns) == signature:
            return path
    with store.open(sha256) as f:  # raises IntegrityError for a rotten object: never shipped
        path = Path(f.name)
        stat = os.fstat(f.fileno())
    _verified_objects[sha256] = (path, (stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return path


def list_channels(session: Session, *, viewer: Person) -> list[ChannelPointer]:
    pointers = session.scalars(select(ChannelPointer).order_by(ChannelPointer.channel))
    return [p for p in pointers if _channel_readable(session, viewer, p)]


def channel_history(session: Session, *, viewer: Person, channel: str) -> list[HistoryOut]:
    """Every move of the channel. A public channel serves every customer's fixes: a customer reading its history
    sees their own request ids only (others' become "another report"), never whose fix moved it."""
    _visible_pointer(session, channel=channel, viewer=viewer)
    rows = [
        HistoryOut.model_validate(h)
        for h in session.scalars(
            select(ChannelHistory).where(ChannelHistory.channel == channel).order_by(ChannelHistory.id)
        )
    ]
    if viewer.role in access.STAFF:
        return rows
    texts = [f"{h.request_id} {h.reason}" for h in rows]
    mask = foreign_id_masker(session, customer_id=viewer.customer_id, texts=texts)
    return [
        h.model_copy(
            update={
                "request_id": h.request_id if mask(h.request_id) == h.request_id else None,
                "reason": mask(h.reason),
            }
        )
        for h in rows
    ]


def revert_as(
    session: Session, *, person: Person, channel: str, to_version: str | None, reason: str, config: AppConfig
) -> ChannelPointer:
    """A person's revert (API, CLI): release managers, admins and the emergency role may do it."""
    access.require_role(person, REVERTS, to="revert update channels")
    return revert(session, actor=actor_of(person), channel=channel, to_version=to_version, reason=reason, config=config)


def add_known_clean(session: Session, *, actor: Person, data: KnownCleanIn) -> KnownCleanFile:
    """An admin marks a file clean: a base detecting it counts towards a halt. Adding it twice keeps the first."""
    access.require_role(actor, access.ADMINISTERS, to="mark files known-clean")
    inserted = session.execute(
        insert(KnownCleanFile)
        .values(sha256=data.sha256, reason=data.reason, added_by=actor_of(actor).name)
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(KnownCleanFile.sha256)
    ).scalar_one_or_none()
    row = session.get(KnownCleanFile, data.sha256, populate_existing=True)
    if inserted is not None:
        record(
            session,
            actor=actor_of(actor),
            action="known_clean.added",
            entity_type="file",
            entity_id=data.sha256,
            after={"sha256": data.sha256},
            reason=data.reason,
        )
    return row


# -------------------------------------------------------------------------------------- halted channels

RESUMES = frozenset({"release_manager", "admin"})


def _halted_state(pointer: ChannelPointer) -> dict:
    return {
        "halted_at": pointer.halted_at,
        "halted_reason": pointer.halted_reason,
        "halted_version": pointer.halted_version,
    }


def halted_channels(session: Session, channels: list[str]) -> list[str]:
    """Which of these channels an automatic halt stopped (they take nothing until resumed)."""
    if not channels:
        return []
    return list(
        session.scalars(
            select(ChannelPointer.channel).where(
                ChannelPointer.channel.in_(channels), ChannelPointer.halted_at.is_not(None)
            )
        )
    )


def _refuse_if_halted(session: Session, channel: str) -> None:
    """Nothing is published to a halted channel. The pointer row stays locked until the publish commits,
    so a halt committed meanwhile is seen here rather than overtaken."""
    pointer = _pointer(session, channel, lock=True)
    if pointer is not None and pointer.halted_at is not None:
        raise ChannelHalted(
            f"channel {channel} was halted automatically at {pointer.halted_at.isoformat()} "
            f"({pointer.halted_reason}); nothing is published to it until a {' or '.join(sorted(RESUMES))} "
            f"resumes it (relreq channels resume {channel} --reason ...)",
            channel=channel,
            halted_version=pointer.halted_version,
        )


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
    access.require_role(person, RESUMES, to="resume halted channels")
    pointer = _pointer(session, channel, lock=True)
    if pointer is None:
        raise NotFound(f"no channel '{channel}'")
    if pointer.halted_at is None:
        raise Conflict(f"channel {channel} is not halted; there is nothing to resume")
    before = {"version": pointer.version, **_halted_state(pointer)}
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
        after={"version": pointer.version, **_halted_state(pointer), "resumed_at": now},
        reason=reason,
    )
    return pointer
