"""Update channels: what each serves now (version, canary step, halt), a channel's history and the telemetry
that could halt it, and the release manager's two buttons — Revert (immediate, like Balrog's emergency
shutoff) and Resume after an automatic halt. The same services as /api/v1/channels decide; a channel the
viewer may not read is a 404 page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, TypeVar

from fastapi import Depends, Form, Path, Request
from pydantic import BaseModel

from release_requests import access
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.config import AppConfig
from release_requests.releases import serving, stopping
from release_requests.releases.models import ChannelPointer
from release_requests.releases.naming import CHANNEL_PATTERN
from release_requests.releases.schemas import HistoryOut, ResumeIn, RevertIn
from release_requests.web.rendering import render
from release_requests.web.session import Viewer, back_to, checked, valid, viewer, web_router

router = web_router()
ChannelPath = Annotated[str, Path(pattern=CHANNEL_PATTERN)]
Text = Annotated[str, Form(max_length=4000)]
M = TypeVar("M", bound=BaseModel)

ACTIONS = {"publish": "Published", "revert": "Reverted", "halt": "Halted", "rollout_step": "Rollout step"}


@dataclass(frozen=True)
class Rollout:
    """Where a canary rollout stands: step n of N at p %, and the earliest time of the next step."""

    step: int  # 1-based
    steps: int
    percent: int
    next_at: datetime | None


def rollout_of(pointer: ChannelPointer, config: AppConfig) -> Rollout | None:
    steps = config.stages.canary.steps
    if pointer.rollout_step is None or not 0 <= pointer.rollout_step < len(steps):
        return None
    soak = timedelta(minutes=steps[pointer.rollout_step].soak_minutes)
    last = pointer.rollout_step + 1 >= len(steps)
    return Rollout(
        step=pointer.rollout_step + 1,
        steps=len(steps),
        percent=pointer.rollout_percent,
        next_at=None if last else pointer.step_started_at + soak,
    )


def revert_targets(pointer: ChannelPointer, history: list[HistoryOut]) -> list[str]:
    """Versions the channel served before, latest first (its one-step target first): where Revert may go."""
    seen = [pointer.previous_version] if pointer.previous_version else []
    for entry in reversed(history):
        if entry.to_version not in seen and entry.to_version != pointer.version:
            seen.append(entry.to_version)
    return seen


@router.get("/channels", openapi_extra=needs("channel.read"))
def channels_page(request: Request, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        pointers = serving.list_channels(session, viewer=me.person)
    return render(
        request,
        "channels.html",
        viewer=me,
        title="Channels",
        channels=[(p, rollout_of(p, ctx.config)) for p in pointers],
    )


@router.get("/channels/{channel}", openapi_extra=needs("channel.read"))
def channel_page(
    request: Request, channel: ChannelPath, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)
):
    with ctx.unit_of_work() as session:
        pointer = serving.read_channel(session, viewer=me.person, channel=channel)
        history = serving.channel_history(session, viewer=me.person, channel=channel)
        watch = serving.channel_telemetry(session, viewer=me.person, channel=channel, config=ctx.config)
    return render(
        request,
        "channel.html",
        viewer=me,
        title=channel,
        pointer=pointer,
        rollout=rollout_of(pointer, ctx.config),
        history=list(reversed(history)),  # newest first: what happened last is what people look for
        actions=ACTIONS,
        watch=watch,
        targets=revert_targets(pointer, history),
        can_revert=access.allows(me.person, "channel.revert"),
        can_resume=access.allows(me.person, "channel.resume") and pointer.halted_at is not None,
    )


@router.post("/channels/{channel}/revert", openapi_extra=needs("channel.revert"))
def revert_channel(
    channel: ChannelPath,
    reason: Text = "",
    to_version: Text = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    body = valid(RevertIn, reason=reason, to_version=to_version or None)
    with ctx.unit_of_work() as session:
        serving.read_channel(session, viewer=me.person, channel=channel)  # another customer's channel: 404
        stopping.revert_as(
            session,
            person=me.person,
            channel=channel,
            to_version=body.to_version,
            reason=body.reason,
            config=ctx.config,
        )
    return back_to(f"/channels/{channel}", "The channel was reverted.")


@router.post("/channels/{channel}/resume", openapi_extra=needs("channel.resume"))
def resume_channel(
    channel: ChannelPath, reason: Text = "", me: Viewer = Depends(checked), ctx: AppContext = Depends(context)
):
    body = valid(ResumeIn, reason=reason)
    with ctx.unit_of_work() as session:
        serving.read_channel(session, viewer=me.person, channel=channel)
        stopping.resume(session, person=me.person, channel=channel, reason=body.reason)
    return back_to(f"/channels/{channel}", "The channel takes publishes again.")
