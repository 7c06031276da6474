"""Human decisions of the pipeline: fix inputs, sign-offs (granted, rejected, revoked, overridden) and
closing — each recorded with its audit event, its outbox rows and, when it unblocks automated work, a
segment trigger, all in one transaction. Flows never wait for a person: a decision triggers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import git
from sqlalchemy import select
from sqlalchemy.orm import Session

from artifacts import releaseline
from artifacts.errors import ArtifactError
from artifacts.gitops import open_repo
from release_requests import access
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import record, record_now
from release_requests.clock import db_now
from release_requests.config import HOTFIX_KINDS, AppConfig
from release_requests.customers.service import tams_of
from release_requests.errors import Conflict, Forbidden, InvalidInput
from release_requests.notifications.service import notify
from release_requests.people.models import Person
from release_requests.people.service import actor_of
from release_requests.pipeline.line import take_off_line_if_any
from release_requests.pipeline.models import Build, SignoffEvent, StageRun
from release_requests.pipeline.policy import Evaluation, SignoffFact, active_approvals, evaluate
from release_requests.pipeline.queue import PIPELINE, enqueue, latest_build
from release_requests.pipeline.schemas import (
    BuildOut,
    CloseIn,
    FixInput,
    PipelineOut,
    SignoffIn,
    SignoffOut,
    StageOut,
)
from release_requests.pipeline.sharing import sweep_on_accept
from release_requests.releases.channels import channel_customer, channel_for
from release_requests.releases.models import ChannelPointer, Release
from release_requests.releases.serving import list_channels
from release_requests.requests.lifecycle import get_visible, transition
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.requests.states import Status

# --------------------------------------------------------------------------------------------------
# Who is affected, and telling them


def affected(session: Session, *, primary: ReleaseRequest) -> list[ReleaseRequest]:
    """The request and every request triaged as its duplicate: they share the build and the releases."""
    duplicates = session.scalars(
        select(ReleaseRequest).where(ReleaseRequest.duplicate_of_id == primary.id).order_by(ReleaseRequest.id)
    )
    return [primary, *duplicates]


def tell(
    session: Session,
    *,
    primary: ReleaseRequest,
    event: str,
    targets: list[str],
    context: dict,
    config: AppConfig,
    at: datetime,
    key: str = "",
) -> None:
    """Notify about the primary request; each duplicate's customer hears the customer-facing part too."""
    notify(session, request=primary, event=event, targets=targets, context=context, config=config, at=at, key=key)
    if "customer" in targets:
        for duplicate in affected(session, primary=primary)[1:]:
            notify(
                session,
                request=duplicate,
                event=event,
                targets=["customer"],
                config=config,
                at=at,
                key=key,
                context={**context, "title": duplicate.title, "advisory": duplicate.advisory_id},
            )


# --------------------------------------------------------------------------------------------------
# Builds


def pipeline_of(request: ReleaseRequest, config: AppConfig):
    return config.stages.pipeline_for(request.kind)


def stored_samples(session: Session, *, request_id: str) -> list[str]:
    return list(session.scalars(select(Sample.sha256).where(Sample.request_id == request_id, Sample.stored.is_(True))))


def on_accepted(session: Session, *, request: ReleaseRequest, decision_id: str, config: AppConfig) -> Build:
    """Triage accepted: open the first build. A false positive with its sample builds at once (the fix is
    an allowlist entry); everything else waits for an engineer's fix input. Reports of the same sample
    still waiting for triage join this build (pipeline.sharing)."""
    kind = pipeline_of(request, config)[1].builds
    automatic = request.kind == "false_positive" and stored_samples(session, request_id=request.id)
    build = Build(
        request_id=request.id,
        attempt=1,
        kind=kind,
        status="pending" if automatic else "waiting_input",
        fix={"type": "allowlist"} if automatic else {},
        builder="pipeline",
    )
    session.add(build)
    session.flush()
    record(
        session,
        actor=PIPELINE,
        action="build.opened",
        entity_type="build",
        entity_id=str(build.id),
        request_id=request.id,
        after={"attempt": 1, "kind": kind, "status": build.status, "fix": build.fix},
    )
    if automatic:
        enqueue(session, request_id=request.id, step="build:1", decision_id=decision_id)
    sweep_on_accept(session, primary=request, config=config)
    return build


def split(session: Session, *, actor: Person, request_id: str, reason: str, config: AppConfig) -> ReleaseRequest:
    """A duty manager takes a request out of a shared build: it is accepted on its own and gets its own build."""
    access.authorize(actor, "request.split")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    if request.status != Status.duplicate:
        raise Conflict(f"request {request.id} is {request.status}; only a request sharing another's build splits")
    transition(
        session,
        actor=actor_of(actor),
        request=request,
        target=Status.accepted,
        action="request.split",
        changes={"duplicate_of_id": None, "advisory_id": None},
        reason=reason,
    )
    on_accepted(session, request=request, decision_id=f"split-v{request.version}", config=config)
    return request


def provide_fix(session: Session, *, actor: Person, request_id: str, data: FixInput) -> Build:
    """An engineer supplies the fix (rule, ref, commits) or asks for a rebuild after a failure."""
    access.authorize(actor, "fix.provide")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    if request.status not in (Status.accepted, Status.failed):
        raise Conflict(f"request {request.id} is {request.status}; fixes are taken when accepted or after a failure")
    if (data.type == "commits") != (request.kind in HOTFIX_KINDS):
        raise InvalidInput("private hotfixes take commits; antivirus bases take allowlist, rule or ref", field="type")
    if data.type == "allowlist" and not stored_samples(session, request_id=request.id):
        raise InvalidInput("an allowlist fix needs a stored sample on the request", field="type")
    build = latest_build(session, request_id=request.id)
    if build is not None and build.status in ("pending", "building", "verifying"):
        raise Conflict(f"build attempt {build.attempt} of {request.id} is {build.status}")
    if build is None or build.status in ("failed", "verified"):
        attempt = build.attempt + 1 if build else 1
        build = Build(request_id=request.id, attempt=attempt, kind="hotfix" if data.type == "commits" else "base")
        session.add(build)
    build.status, build.fix = "pending", data.model_dump(exclude_none=True)
    build.builder, build.builder_person_id = actor.name, actor.id
    session.flush()
    event = record_now(
        session,
        actor=actor_of(actor),
        action="build.fix_provided",
        entity_type="build",
        entity_id=str(build.id),
        request_id=request.id,
        after={"attempt": build.attempt, "fix": build.fix},
    )
    enqueue(session, request_id=request.id, step=f"build:{build.attempt}", decision_id=str(event.seq))
    return build


# --------------------------------------------------------------------------------------------------
# Stages and sign-offs


def stage_channels(
    session: Session, *, request: ReleaseRequest, build: Build, stage: str, config: AppConfig
) -> list[str]:
    """The channels a stage publishes to; the customer stage serves every customer who shares the fix."""
    customers = (
        dict.fromkeys(r.customer_id for r in affected(session, primary=request))
        if stage == "customer"
        else {request.customer_id: None}
    )
    return list(
        dict.fromkeys(
            channel_for(config=config, kind=request.kind, stage=stage, customer_id=c, product=request.product)
            for c in customers
        )
    )


def served_versions(session: Session, channels: list[str]) -> dict[str, str | None]:
    """What each channel serves now: the expectation a stage's publish compares-and-swaps against."""
    served = dict(
        session.execute(
            select(ChannelPointer.channel, ChannelPointer.version).where(ChannelPointer.channel.in_(channels))
        ).all()
    )
    return {channel: served.get(channel) for channel in channels}


def open_stage(session: Session, *, request: ReleaseRequest, build: Build, stage: str, config: AppConfig) -> StageRun:
    """Put `stage` up for sign-off (idempotent), note what its channels serve now, ask the people who sign it."""
    run = session.scalar(select(StageRun).where(StageRun.build_id == build.id, StageRun.stage == stage))
    if run is not None:
        return run
    channels = stage_channels(session, request=request, build=build, stage=stage, config=config)
    run = StageRun(
        request_id=request.id,
        build_id=build.id,
        stage=stage,
        status="awaiting",
        opened_at=db_now(session),
        channels=channels,
        expected=served_versions(session, channels),
    )
    session.add(run)
    session.flush()
    roles = [f"{r.count} × {r.role}" for r in config.stages.stage[stage].signoff]
    tell(
        session,
        primary=request,
        event="approval.requested",
        targets=["internal_channel"],
        config=config,
        at=run.opened_at,
        key=f"{build.id}:{stage}",
        context={
            "request_id": request.id,
            "stage": stage,
            "title": request.title,
            "version": build.version,
            "signoff": roles,
        },
    )
    return run


def awaiting_stage(session: Session, *, build: Build) -> StageRun | None:
    return session.scalar(
        select(StageRun).where(StageRun.build_id == build.id, StageRun.status.in_(("awaiting", "publishing")))
    )


def barred_people(session: Session, *, request: ReleaseRequest, build: Build, config: AppConfig) -> dict[int, str]:
    """Who may not sign this request's stages, and why (separation of duties from stages.toml)."""
    rules = set(config.stages.separation_of_duties.forbidden)
    barred: dict[int, str] = {}
    if "requester" in rules:
        barred[request.submitted_by_id] = "the requester"
    if "tam" in rules:
        barred.update({p.id: "the customer's TAM" for p in tams_of(session, customer_id=request.customer_id)})
    if "builder" in rules and build.builder_person_id is not None:
        barred[build.builder_person_id] = "who built it"
    return barred


def signoff_builds(session: Session, *, build: Build) -> list[int]:
    """The build and the bases it was rebuilt from while its change stayed the same: their sign-offs hold.

    A rebuild on a moved release line changes the base but not what the engineers reviewed (the fix's own
    change, fingerprinted by its change id); a changed fix needs fresh sign-offs.
    """
    ids, current = [build.id], build
    while current.rebased_from_id is not None:
        previous = session.get(Build, current.rebased_from_id)
        if previous is None or previous.change_id is None or previous.change_id != build.change_id:
            break
        ids.append(previous.id)
        current = previous
    return ids


def signoff_events(session: Session, *, build: Build, stage: str) -> list[SignoffEvent]:
    builds = signoff_builds(session, build=build)
    return list(
        session.scalars(
            select(SignoffEvent)
            .where(SignoffEvent.build_id.in_(builds), SignoffEvent.stage == stage)
            .order_by(SignoffEvent.id)
        )
    )


def _facts(session: Session, *, build: Build, stage: str) -> list[SignoffFact]:
    return [
        SignoffFact(e.person_id, e.role, e.action, e.reason) for e in signoff_events(session, build=build, stage=stage)
    ]


@dataclass(frozen=True)
class Readiness:
    evaluation: Evaluation
    soak_until: datetime | None
    verification_ok: bool

    def ready(self, now: datetime) -> bool:
        soaked = self.soak_until is None or now >= self.soak_until
        return self.evaluation.satisfied and soaked and self.verification_ok


def readiness(
    session: Session, *, request: ReleaseRequest, build: Build, run: StageRun, config: AppConfig
) -> Readiness:
    """Sign-off rule, soak in the previous stage (shortened by severity), verification."""
    _, pipeline = pipeline_of(request, config)
    policy = config.stages.stage[run.stage]
    evaluation = evaluate(
        policy.signoff,
        _facts(session, build=build, stage=run.stage),
        barred=set(barred_people(session, request=request, build=build, config=config)),
    )
    soak_until = None
    index = pipeline.stages.index(run.stage)
    if index > 0:
        previous = session.scalar(
            select(StageRun).where(StageRun.build_id == build.id, StageRun.stage == pipeline.stages[index - 1])
        )
        if previous is not None and previous.published_at is not None:
            soak_until = previous.published_at + timedelta(
                minutes=config.stages.soak(stage=run.stage, severity=request.severity)
            )
    verification_ok = bool(build.passed) or not policy.requires_verification
    return Readiness(evaluation, soak_until, verification_ok)


def start_publish_if_ready(
    session: Session, *, request: ReleaseRequest, build: Build, run: StageRun, config: AppConfig, decision_id: str
) -> bool:
    if run.status != "awaiting":
        return False
    if not readiness(session, request=request, build=build, run=run, config=config).ready(db_now(session)):
        return False
    enqueue(session, request_id=request.id, step=f"publish:{run.stage}:{build.id}", decision_id=decision_id)
    return True


def sign(
    session: Session,
    *,
    actor: Person,
    request_id: str,
    data: SignoffIn,
    config: AppConfig,
    repo_path: Path,
    via: str = "api",
) -> Evaluation:
    """Grant, reject, revoke or override a stage sign-off under the policy in stages.toml (a rejection takes
    the fix off the release line of the signature repository at `repo_path`).

    `data.commit`, when given, is the build commit the signer looked at: if the waiting build is another one
    now (a rebuild, or a rebase on a moved release line), the decision is refused before anything is recorded."""
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    access.authorize(actor, "stage.override" if data.decision == "override" else "stage.sign")
    build, run = _awaiting(session, request=request, stage=data.stage, config=config)
    _check_seen(session, build=build, seen=data.commit)
    _check_signer(session, actor=actor, request=request, build=build, data=data, config=config)
    event, audit = _record_signoff(session, actor=actor, request=request, build=build, data=data, via=via)
    if data.decision == "reject":
        _fail_rejected(
            session,
            actor=actor,
            request=request,
            build=build,
            data=data,
            config=config,
            repo_path=repo_path,
            at=audit.occurred_at,
        )
    if data.decision == "override":
        _announce_override(
            session, actor=actor, request=request, build=build, event=event, config=config, at=audit.occurred_at
        )
    start_publish_if_ready(session, request=request, build=build, run=run, config=config, decision_id=str(audit.seq))
    evaluation = readiness(session, request=request, build=build, run=run, config=config).evaluation
    if data.decision in ("approve", "revoke") and not evaluation.satisfied:
        _ask_again(
            session,
            request=request,
            build=build,
            event=event,
            evaluation=evaluation,
            config=config,
            at=audit.occurred_at,
        )
    return evaluation


def _check_seen(session: Session, *, build: Build, seen: str | None) -> None:
    """Refuse a decision taken on another build than the one waiting (the page was loaded before a rebuild or a
    rebase on a moved release line): the signer approves only what they saw."""
    if seen is None:
        return  # Slack and the CLI decide on whatever build is waiting, as they always did
    seen = seen.lower()
    if build.commit and build.commit.lower().startswith(seen):
        return
    looked_at = session.scalar(
        select(Build.attempt)
        .where(Build.request_id == build.request_id, Build.commit.is_not(None), Build.commit.startswith(seen))
        .order_by(Build.attempt.desc())
        .limit(1)
    )
    now = build.commit[:12] if build.commit else "not built yet"
    raise Conflict(
        f"build {looked_at or build.attempt} changed since you looked: it is now commit {now} "
        f"(build {build.attempt}); reload and check the diff again"
    )


def _awaiting(session: Session, *, request: ReleaseRequest, stage: str, config: AppConfig) -> tuple[Build, StageRun]:
    """The build and its run of `stage`, if that stage is the one waiting for sign-off; else why not."""
    _, pipeline = pipeline_of(request, config)
    if stage not in pipeline.stages:
        stages = ", ".join(pipeline.stages)
        raise InvalidInput(f"stage '{stage}' is not part of a {request.kind} release ({stages})", field="stage")
    if request.status != Status.awaiting_approval:
        raise Conflict(f"request {request.id} is {request.status}; no stage is waiting for sign-off")
    build = latest_build(session, request_id=request.id)
    run = awaiting_stage(session, build=build) if build else None
    if run is None or run.stage != stage or run.status != "awaiting":
        waiting = run.stage if run and run.status == "awaiting" else "none"
        raise Conflict(f"stage '{stage}' is not waiting for sign-off (waiting: {waiting})")
    return build, run


def _record_signoff(
    session: Session, *, actor: Person, request: ReleaseRequest, build: Build, data: SignoffIn, via: str
) -> tuple[SignoffEvent, AuditEvent]:
    """The append-only sign-off event (what the policy counts) and its audit event (what proves it)."""
    event = SignoffEvent(
        request_id=request.id,
        build_id=build.id,
        stage=data.stage,
        person_id=actor.id,
        role=actor.role,
        action=data.decision,
        reason=data.reason,
        via=via,
    )
    session.add(event)
    session.flush()
    audit = record_now(
        session,
        actor=actor_of(actor),
        action=f"signoff.{data.decision}",
        entity_type="stage",
        entity_id=f"{build.id}:{data.stage}",
        request_id=request.id,
        after={"stage": data.stage, "decision": data.decision, "via": via, "version": build.version},
        reason=data.reason,
    )
    return event, audit


def _fail_rejected(
    session: Session,
    *,
    actor: Person,
    request: ReleaseRequest,
    build: Build,
    data: SignoffIn,
    config: AppConfig,
    repo_path: Path,
    at: datetime,
) -> None:
    """A rejected stage fails the request, tells the customer and the team, and takes its fix off the line."""
    reason = f"stage {data.stage} rejected: {data.reason}"
    transition(
        session, actor=actor_of(actor), request=request, target=Status.failed, action="request.failed", reason=reason
    )
    tell(
        session,
        primary=request,
        event="release.rejected",
        targets=["customer", "internal_channel"],
        config=config,
        at=at,
        key=f"{build.id}:{data.stage}",
        context={"stage": data.stage, "reason": data.reason, "by": actor.name, "title": request.title},
    )
    take_off_line_if_any(
        session,
        request=request,
        actor=actor_of(actor),
        reason=reason,
        repo_path=repo_path,
        config=config,
    )


def _announce_override(
    session: Session,
    *,
    actor: Person,
    request: ReleaseRequest,
    build: Build,
    event: SignoffEvent,
    config: AppConfig,
    at: datetime,
) -> None:
    """An override tells the team which sign-offs it stood in for (what was missing before it)."""
    policy = config.stages.stage[event.stage]
    barred = set(barred_people(session, request=request, build=build, config=config))
    missing = evaluate(policy.signoff, _facts(session, build=build, stage=event.stage)[:-1], barred=barred).missing
    notify(
        session,
        request=request,
        event="signoff.override",
        targets=["internal_channel"],
        config=config,
        at=at,
        key=str(event.id),
        context={"stage": event.stage, "by": actor.name, "reason": event.reason, "missing": missing},
    )


def _ask_again(
    session: Session,
    *,
    request: ReleaseRequest,
    build: Build,
    event: SignoffEvent,
    evaluation: Evaluation,
    config: AppConfig,
    at: datetime,
) -> None:
    """Each Slack message carries one decision: after one, ask again, saying who is still needed."""
    tell(
        session,
        primary=request,
        event="approval.requested",
        targets=["internal_channel"],
        config=config,
        at=at,
        key=f"{build.id}:{event.stage}:{event.id}",
        context={
            "request_id": request.id,
            "stage": event.stage,
            "title": request.title,
            "version": build.version,
            "signoff": evaluation.missing,
        },
    )


@dataclass(frozen=True)
class SignoffRefusal:
    """Why a person may not take a sign-off decision now: what `sign` refuses, said before they try.

    `kind`: `table` (their role signs no stage), `not_waiting` (the stage is not up for sign-off),
    `override_role`, `stage_role` (the stage's rule does not name their role), `barred` (separation of
    duties; `barred_as` says as whom: the requester, the customer's TAM, who built it), `already_approved`,
    `no_approval` (nothing of theirs to revoke)."""

    kind: str
    message: str
    action: str = "stage.sign"
    source: str | None = None  # the policy rule behind a Forbidden; None for a Conflict
    barred_as: str | None = None

    def error(self) -> Forbidden | Conflict:
        if self.source is None:
            return Conflict(self.message)
        return access.refuse(self.action, self.message, source=self.source)


def signoff_refusal(
    session: Session,
    *,
    actor: Person,
    request: ReleaseRequest,
    build: Build,
    stage: str,
    decision: str,
    config: AppConfig,
) -> SignoffRefusal | None:
    """The finer rules, after the table allowed `stage.sign` / `stage.override` (`sign`): the stage's sign-off
    roles and the override roles from config/stages.toml, and separation of duties. None: nothing refuses."""
    policy = config.stages.stage[stage]
    if decision == "override":
        allowed = set(config.stages.separation_of_duties.override_roles)
        if actor.role not in allowed:
            return SignoffRefusal(
                "override_role",
                f"role '{actor.role}' may not override sign-offs (allowed: {', '.join(sorted(allowed))})",
                action="stage.override",
                source="config/stages.toml: separation_of_duties.override_roles",
            )
        return None
    roles = {rule.role for rule in policy.signoff}
    if actor.role not in roles:
        return SignoffRefusal(
            "stage_role",
            f"role '{actor.role}' does not sign stage '{stage}' (policy: "
            + ", ".join(f"{r.count} × {r.role}" for r in policy.signoff)
            + ")",
            source=f"config/stages.toml: stage.{stage}.signoff",
        )
    barred = barred_people(session, request=request, build=build, config=config)
    if actor.id in barred and decision in ("approve", "reject"):
        return SignoffRefusal(
            "barred",
            f"{actor.name} is {barred[actor.id]} of {request.id} and may not sign it",
            source="config/stages.toml: separation_of_duties.forbidden",
            barred_as=barred[actor.id],
        )
    mine = [f for f in _facts(session, build=build, stage=stage) if f.person_id == actor.id]
    active = bool(mine) and mine[-1].action == "approve"
    if decision == "approve" and active:
        return SignoffRefusal("already_approved", f"{actor.name} already approved stage '{stage}'")
    if decision == "revoke" and not active:
        return SignoffRefusal("no_approval", f"{actor.name} has no approval of stage '{stage}' to revoke")
    return None


def _check_signer(
    session: Session, *, actor: Person, request: ReleaseRequest, build: Build, data: SignoffIn, config: AppConfig
) -> None:
    refusal = signoff_refusal(
        session, actor=actor, request=request, build=build, stage=data.stage, decision=data.decision, config=config
    )
    if refusal is not None:
        raise refusal.error()


def why_not_sign(
    session: Session, *, actor: Person, request_id: str, stage: str, decision: str = "approve", config: AppConfig
) -> SignoffRefusal | None:
    """What `sign` would refuse `actor` for this decision now, in the order it checks, without writing anything
    (the console shows a disabled button with this reason). A request the actor may not see is NotFound."""
    request = get_visible(session, actor=actor, request_id=request_id)
    action = "stage.override" if decision == "override" else "stage.sign"
    try:
        access.authorize(actor, action)
    except Forbidden as exc:
        return SignoffRefusal("table", exc.message, action=action, source="release_requests.access.RULES")
    try:
        build, _ = _awaiting(session, request=request, stage=stage, config=config)
    except (Conflict, InvalidInput) as exc:
        return SignoffRefusal("not_waiting", exc.message)
    return signoff_refusal(
        session, actor=actor, request=request, build=build, stage=stage, decision=decision, config=config
    )


def eligible_signers(
    session: Session, *, actor: Person, request_id: str, stage: str, config: AppConfig
) -> list[Person]:
    """Who may still sign `stage` of the request's current build: active people of a role the stage still
    misses, not barred by separation of duties, without an approval of their own already counted."""
    request = get_visible(session, actor=actor, request_id=request_id)
    build = latest_build(session, request_id=request.id)
    if build is None:
        return []
    barred = barred_people(session, request=request, build=build, config=config)
    approvals = active_approvals(_facts(session, build=build, stage=stage))
    counted = [f for pid, f in approvals.items() if pid not in barred]
    short = [
        rule.role
        for rule in config.stages.stage[stage].signoff
        if sum(1 for f in counted if f.role == rule.role) < rule.count
    ]
    if not short:
        return []
    people = session.scalars(
        select(Person).where(Person.role.in_(short), Person.active.is_(True)).order_by(Person.name, Person.id)
    )
    return [p for p in people if p.id not in barred and p.id not in approvals]


def close(session: Session, *, actor: Person, request_id: str, data: CloseIn, config: AppConfig) -> ReleaseRequest:
    """The customer has the fix: close the request (and tell everybody who shared it)."""
    access.authorize(actor, "request.close")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    transition(
        session,
        actor=actor_of(actor),
        request=request,
        target=Status.closed,
        action="request.closed",
        reason=data.reason,
    )
    now = db_now(session)
    notify(
        session,
        request=request,
        event="request.closed",
        targets=["customer", "internal_channel"],
        config=config,
        at=now,
        context={"title": request.title, "reason": data.reason, "by": actor.name},
    )
    for sharer in affected(session, primary=request)[1:]:  # reports sharing the fix close with it, in their words
        if sharer.status != Status.duplicate:
            continue
        transition(
            session,
            actor=actor_of(actor),
            request=sharer,
            target=Status.closed,
            action="request.closed",
            reason=f"closed with the shared fix of advisory {sharer.advisory_id or request.advisory_id}",
        )
        notify(
            session,
            request=sharer,
            event="request.closed",
            targets=["customer"],
            config=config,
            at=now,
            context={"title": sharer.title, "reason": None, "by": actor.name, "advisory": sharer.advisory_id},
        )
    return request


# --------------------------------------------------------------------------------------------------
# Status view


def status(session: Session, *, actor: Person, request_id: str, config: AppConfig) -> PipelineOut:
    access.authorize(actor, "request.read")
    request = get_visible(session, actor=actor, request_id=request_id)
    name, pipeline = pipeline_of(request, config)
    build = latest_build(session, request_id=request.id)
    runs = []
    staff = access.is_staff(actor)  # a shared stage names other customers' channels: customers see their own

    def mine(stage: str) -> str:
        return channel_for(
            config=config, kind=request.kind, stage=stage, customer_id=request.customer_id, product=request.product
        )

    if build is not None:
        people = {}
        for run in session.scalars(select(StageRun).where(StageRun.build_id == build.id).order_by(StageRun.id)):
            ready = readiness(session, request=request, build=build, run=run, config=config)
            signoffs = []
            for e in signoff_events(session, build=build, stage=run.stage):
                people.setdefault(e.person_id, session.get(Person, e.person_id))
                signoffs.append(
                    SignoffOut(
                        person=people[e.person_id].name,
                        role=e.role,
                        action=e.action,
                        reason=e.reason,
                        via=e.via,
                        at=e.created_at,
                    )
                )
            runs.append(
                StageOut(
                    stage=run.stage,
                    status=run.status,
                    channels=[
                        c for c in run.channels if staff or c == mine(run.stage) or not channel_customer(config, c)
                    ],
                    opened_at=run.opened_at,
                    published_at=run.published_at,
                    signed=ready.evaluation.satisfied,
                    missing=ready.evaluation.missing,
                    soak_until=ready.soak_until,
                    signoffs=signoffs,
                )
            )
    return PipelineOut(
        request_id=request.id,
        status=request.status,
        pipeline=name,
        stages=pipeline.stages,
        build=BuildOut.model_validate(build, from_attributes=True) if build else None,
        stage_runs=runs,
        duplicates=[  # another customer's report sharing the build is theirs to know, not this viewer's
            r.id for r in affected(session, primary=request)[1:] if staff or r.customer_id == request.customer_id
        ],
    )


# --------------------------------------------------------------------------------------------------
# The release that fixes it (what the customer's portal shows)


@dataclass(frozen=True)
class ReleasedFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class FixingRelease:
    """The release that fixes a request, on one channel its reader may read, and when it got there."""

    stage: str
    channel: str
    version: str
    kind: str  # base | hotfix
    reached_at: datetime | None
    current: bool  # the channel serves this very release now
    # what the channel serves now carries the fix (`carries_fix`): True when current, or replaced by a release
    # that keeps it; False when withdrawn (a channel revert to a version without it, the fix taken off the
    # release line); None when the signature repository cannot tell now
    kept: bool | None
    rollout_percent: int | None  # of the channel's clients getting it, while a canary rollout is under way
    files: list[ReleasedFile]  # a private hotfix's files, for its own customer to download; empty for a base


def carries_fix(*, fixed: Release | None, request_id: str, served: Release | None, repo_path: Path) -> bool | None:
    """Whether `served` (what a channel serves now) still carries the fix that `fixed` shipped for `request_id`,
    by the release line's own facts — the rule a publish keeps (releases.publishing.check_keeps_fixes):

    - a base carries it when its commit descends from the fixing base's commit on the release line, and no
      revert commit between the two took the request's fix off the line (`line.take_off_line`: a rejection, a
      halt, `relreq revert-fix`; the revert still descends, so ancestry alone would say kept);
    - a private hotfix carries it when it is of the same customer, product and version and cherry-picked every
      fix the fixing hotfix did.

    None: the signature repository cannot be read now (the caller claims nothing then)."""
    if fixed is None or served is None:
        return False
    if served.version == fixed.version:
        return True
    if served.kind != fixed.kind:
        return False
    old, new = fixed.manifest or {}, served.manifest or {}
    if fixed.kind == "hotfix":
        if (fixed.private_to, old.get("product"), old.get("product_version")) != (
            served.private_to,
            new.get("product"),
            new.get("product_version"),
        ):
            return False
        return set(old.get("cherry_picked", [])) <= set(new.get("cherry_picked", []))
    ancestor, descendant = old.get("commit"), new.get("commit")
    if not ancestor or not descendant:
        return False
    try:
        repo = open_repo(repo_path)
        if not releaseline.contains(repo, ancestor=ancestor, descendant=descendant):
            return False
        for commit in repo.iter_commits(f"{ancestor}..{descendant}"):
            said = releaseline.trailers(commit.message)
            if ancestor in said.get("Reverts-Commit", []) or request_id in said.get("Reverts-Request", []):
                return False
    except (ArtifactError, ValueError, git.GitCommandError):
        return None
    return True


def fixing_releases(
    session: Session, *, actor: Person, request_id: str, config: AppConfig, repo_path: Path
) -> list[FixingRelease]:
    """Where the request's fix was published, on the channels `actor` may read (the rule update clients meet:
    staff-only and other customers' channels are left out), oldest first, each saying whether what the channel
    serves now still carries the fix (`carries_fix`, against the signature repository at `repo_path`). A report
    sharing another request's build (triaged as its duplicate) is fixed by that build; its reader still sees
    only their own channels."""
    access.authorize(actor, "request.read")
    request = get_visible(session, actor=actor, request_id=request_id)
    primary = session.get(ReleaseRequest, request.duplicate_of_id) if request.duplicate_of_id else request
    build = latest_build(session, request_id=primary.id) if primary is not None else None
    if build is None or build.version is None:
        return []
    release = session.get(Release, build.version)
    readable = {pointer.channel: pointer for pointer in list_channels(session, viewer=actor)}
    runs = session.scalars(
        select(StageRun)
        .where(StageRun.build_id == build.id, StageRun.status == "published")
        .order_by(StageRun.published_at, StageRun.id)
    )
    kept_by: dict[str, bool | None] = {}  # served version -> carries the fix (one look at the line each)
    found = []
    for run in runs:
        for channel in run.channels:
            pointer = readable.get(channel)
            if pointer is None:
                continue
            serves = build.version in (pointer.version, pointer.previous_version)
            private = release is not None and release.kind == "hotfix" and release.private_to is not None
            files = (
                [
                    ReleasedFile(name=name, sha256=entry["sha256"], size=entry["size"])
                    for name, entry in sorted((release.manifest or {}).get("files", {}).items())
                ]
                if private and serves and access.can_see_customer(session, actor, release.private_to)
                else []
            )
            if pointer.version not in kept_by:
                kept_by[pointer.version] = carries_fix(
                    fixed=release,
                    request_id=primary.id,
                    served=session.get(Release, pointer.version),
                    repo_path=repo_path,
                )
            rolling = pointer.version == build.version and pointer.previous_version is not None
            found.append(
                FixingRelease(
                    stage=run.stage,
                    channel=channel,
                    version=build.version,
                    kind=build.kind,
                    reached_at=run.published_at,
                    current=pointer.version == build.version,
                    kept=True if pointer.version == build.version else kept_by[pointer.version],
                    rollout_percent=pointer.rollout_percent if rolling and pointer.rollout_percent < 100 else None,
                    files=files,
                )
            )
    return found
