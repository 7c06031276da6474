"""Watching rollouts: canary steps, telemetry halts, and taking a halted fix off the release line.

Run on every `reconcile` (every minute). Three domains take part, in this order, for each channel whose
newest base is still soaking (`pipeline.triggers.channels_to_watch`):

0. a halted channel is skipped: it waits for a person (`releases.stopping.resume`), and must not roll a
   condemned base further (a halt with nothing to fall back to leaves the base and its canary step);
1. `releases.telemetry.evaluate_halt` — does enrolled clients' telemetry condemn what the channel serves?
2. if so, `releases.stopping.halt` (revert the channel, mark it halted, fail the request, tell people);
   otherwise `releases.publishing.advance_rollout` (the next canary step once its soak has elapsed);
3. after a halt has committed, `pipeline.line.take_off_line_if_any`, so the next base no longer carries
   the condemned fix.

Each channel is its own transaction (what was done to one is committed before the next is looked at), and
the halt commits before the release line is touched: a git failure never undoes a halt (the reconciler's
line housekeeping takes the fixes of failed requests off the line later either way). Time is the
database's (`clock.db_now`) unless a test passes `now`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.db import transaction
from release_requests.pipeline.line import take_off_line_if_any
from release_requests.pipeline.queue import PIPELINE
from release_requests.pipeline.triggers import channels_to_watch
from release_requests.releases import publishing, stopping
from release_requests.releases.models import ChannelPointer
from release_requests.releases.telemetry import TELEMETRY, evaluate_halt
from release_requests.requests.models import ReleaseRequest
from release_requests.settings import Settings


@dataclass
class RolloutWatch:
    """What one pass did: canary steps taken (`"canary:25%"`) and channels halted."""

    rollouts_advanced: list[str] = field(default_factory=list)
    halted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"rollouts_advanced": self.rollouts_advanced, "halted": self.halted}


def watch_rollouts(
    sessions: sessionmaker[Session], *, config: AppConfig, settings: Settings, now: datetime | None = None
) -> RolloutWatch:
    """One pass over every soaking channel: halt what telemetry condemns, advance the rest."""
    done = RolloutWatch()
    with transaction(sessions) as session:
        channels = channels_to_watch(session)
    for channel in channels:
        decision = None
        with transaction(sessions) as session:
            if session.get(ChannelPointer, channel).halted_at is not None:
                continue  # stopped: neither judged again nor rolled further until a person resumes it
            at = now or db_now(session)
            decision = evaluate_halt(session, channel=channel, config=config, now=at)
            if decision is not None:
                stopping.halt(session, channel=channel, decision=decision, config=config, now=at)
                done.halted.append(channel)
            else:
                before = session.get(ChannelPointer, channel).rollout_percent
                after = publishing.advance_rollout(session, actor=PIPELINE, channel=channel, now=at, config=config)
                if after != before:
                    done.rollouts_advanced.append(f"{channel}:{after}%")
        if decision is not None and decision.request_id:  # the halt is committed; now its fix leaves the line
            with transaction(sessions) as session:
                take_off_line_if_any(
                    session,
                    request=session.get(ReleaseRequest, decision.request_id),
                    actor=TELEMETRY,
                    reason=f"halted on {channel}: {decision.reason}",
                    repo_path=settings.signature_repo,
                    config=config,
                )
    return done
