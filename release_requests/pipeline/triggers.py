"""Segment triggers as seen by the dispatcher and the reconciler (no Prefect here: flows/ does that)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.installation import deployment_name
from release_requests.installation import idempotency_key as scoped_key
from release_requests.pipeline.models import Build, SegmentTrigger, StageRun
from release_requests.pipeline.service import enqueue, readiness
from release_requests.releases.channels import halted_channels
from release_requests.releases.models import ChannelPointer, Release
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.states import Status


@dataclass(frozen=True)
class SegmentCall:
    """What to run for a trigger: a deployment name and its parameters."""

    trigger_id: int
    key: str
    deployment: str
    parameters: dict
    idempotency_key: str


def segment_call(trigger: SegmentTrigger, *, installation: str) -> SegmentCall:
    """The run for a trigger, on this installation's own deployments (`installation.installation_name`)."""
    kind, _, rest = trigger.step.partition(":")
    # every (re)dispatch has its own idempotency key: the same key would return the lost run again; and the
    # installation's name in it, or another installation's run for the same request id would be returned
    idempotency_key = scoped_key(installation, f"{trigger.key}#{trigger.dispatches + 1}")
    segment = deployment_name("segment", installation)
    if kind == "build":
        params = {"request_id": trigger.request_id, "attempt": int(rest), "trigger_key": trigger.key}
        return SegmentCall(trigger.id, trigger.key, f"build_and_verify/{segment}", params, idempotency_key)
    if kind == "publish":
        stage, _, build_id = rest.partition(":")
        params = {
            "request_id": trigger.request_id,
            "stage": stage,
            "build_id": int(build_id),
            "trigger_key": trigger.key,
        }
        return SegmentCall(trigger.id, trigger.key, f"publish_stage/{segment}", params, idempotency_key)
    raise ValueError(f"unknown segment step {trigger.step!r}")


def pending(session: Session, *, limit: int = 50) -> list[SegmentTrigger]:
    """Triggers nobody has dispatched yet, locked so two dispatchers do not both take one."""
    query = (
        select(SegmentTrigger)
        .where(SegmentTrigger.status == "pending")
        .order_by(SegmentTrigger.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def mark_dispatched(session: Session, *, trigger: SegmentTrigger, flow_run_id: str) -> None:
    trigger.status, trigger.flow_run_id = "dispatched", flow_run_id
    trigger.dispatches += 1
    trigger.dispatched_at = db_now(session)


def dispatched_before(session: Session, *, cutoff: datetime) -> list[SegmentTrigger]:
    query = (
        select(SegmentTrigger)
        .where(SegmentTrigger.status == "dispatched", SegmentTrigger.dispatched_at < cutoff)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def redispatch(session: Session, *, trigger: SegmentTrigger) -> None:
    """The run behind this trigger was lost (crashed, cancelled, vanished): hand it back to the dispatcher."""
    trigger.status = "pending"


def stages_ready_by_time(session: Session, *, config: AppConfig) -> list[str]:
    """Stages fully signed whose soak has now elapsed: the decision was made earlier, time completes it."""
    started = []
    rows = session.execute(
        select(ReleaseRequest, Build, StageRun)
        .join(Build, Build.request_id == ReleaseRequest.id)
        .join(StageRun, StageRun.build_id == Build.id)
        .where(ReleaseRequest.status == Status.awaiting_approval, StageRun.status == "awaiting")
    ).all()
    now = db_now(session)
    for request, build, run in rows:
        step = f"publish:{run.stage}:{build.id}"
        in_flight = session.scalar(
            select(SegmentTrigger.id).where(
                SegmentTrigger.request_id == request.id,
                SegmentTrigger.step == step,
                SegmentTrigger.status.in_(("pending", "dispatched")),
            )
        )
        if in_flight is not None or halted_channels(session, run.channels):
            continue  # running already, or waiting for a person to resume a halted channel
        if readiness(session, request=request, build=build, run=run, config=config).ready(now):
            # numbered: a stage that waited out a halt is asked again once the channel is resumed
            earlier = session.scalar(
                select(func.count()).where(SegmentTrigger.request_id == request.id, SegmentTrigger.step == step)
            )
            if enqueue(session, request_id=request.id, step=step, decision_id=f"ready-{earlier + 1}"):
                started.append(f"{request.id}:{run.stage}")
    return started


STALE_DISPATCH = timedelta(minutes=2)


def channels_to_watch(session: Session) -> list[str]:
    """Channels whose newest base is still soaking: rolling out, or serving a request not yet closed."""
    rows = session.execute(
        select(ChannelPointer.channel)
        .join(Release, Release.version == ChannelPointer.version)
        .outerjoin(ReleaseRequest, ReleaseRequest.id == Release.request_id)
        .where(
            (ChannelPointer.rollout_percent < 100)
            | ReleaseRequest.status.in_((Status.awaiting_approval, Status.releasing, Status.released))
        )
    )
    return list(rows.scalars())
