"""/api/v1 channels, revert, telemetry and known-clean files: thin handlers over the release services."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from release_requests.api.deps import AppContext, caller, context
from release_requests.people.models import Person
from release_requests.releases import service, telemetry
from release_requests.releases.naming import CHANNEL_PATTERN
from release_requests.releases.schemas import (
    ChannelOut,
    DetectionBatch,
    DetectionsAccepted,
    HistoryOut,
    KnownCleanIn,
    KnownCleanOut,
    RevertIn,
)

router = APIRouter(prefix="/api/v1", tags=["releases"])
ChannelPath = Path(pattern=CHANNEL_PATTERN)


@router.get("/channels", response_model=list[ChannelOut])
def list_channels(me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Every channel the caller may read, with its current and fallback version and rollout."""
    with ctx.unit_of_work() as session:
        return [ChannelOut.model_validate(p) for p in service.list_channels(session, viewer=me)]


@router.get("/channels/{channel}/history", response_model=list[HistoryOut])
def channel_history(channel: str = ChannelPath, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Every move of the channel's pointer, oldest first."""
    with ctx.unit_of_work() as session:
        return [HistoryOut.model_validate(h) for h in service.channel_history(session, viewer=me, channel=channel)]


@router.post("/channels/{channel}/revert", response_model=ChannelOut)
def revert(
    body: RevertIn, channel: str = ChannelPath, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    """Move the channel back one step, or to a version it served before (release manager, admin, emergency)."""
    with ctx.unit_of_work() as session:
        pointer = service.revert_as(
            session, person=me, channel=channel, to_version=body.to_version, reason=body.reason, config=ctx.config
        )
        return ChannelOut.model_validate(pointer)


@router.post("/telemetry/detections", response_model=DetectionsAccepted, status_code=202)
def report_detections(body: DetectionBatch, ctx: AppContext = Depends(context)):
    """Update clients report what their base detected (no token: public-channel clients have none)."""
    with ctx.unit_of_work() as session:
        return DetectionsAccepted(accepted=telemetry.record_detections(session, batch=body, config=ctx.config))


@router.post("/known-clean", response_model=KnownCleanOut, status_code=201)
def add_known_clean(body: KnownCleanIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Mark a file clean (admin): any base detecting it counts towards an automatic halt."""
    with ctx.unit_of_work() as session:
        return KnownCleanOut.model_validate(service.add_known_clean(session, actor=me, data=body))
