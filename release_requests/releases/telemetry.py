"""Detection telemetry from update clients, and the automatic halt decision it feeds.

Telemetry is data, not a state change: rows are not audited one by one (a halt they cause is). Input is
validated by the schema, checked against known bases, and rate-limited per client id with a counter over
the last minute kept in Postgres, so every API process enforces the same limit.

A channel's current base is halted when, since it became current there:
- more than `max_clean_file_detections` distinct (client, file) detections hit files that are known to be
  clean (the base's own allowlist, or `known_clean_files`), or
- a rule is detected by at least `spike_min_clients` distinct clients and by more than `spike_factor` times
  as many clients as detected it with any other base in an equally long window just before.
Counts are absolute, so during a small canary step the spike test errs on the side of not halting;
the known-clean test does not depend on the cohort size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import distinct, false, func, insert, or_, select, text
from sqlalchemy.orm import Session

from release_requests.audit.service import Actor
from release_requests.config import AppConfig
from release_requests.errors import InvalidInput, RateLimited
from release_requests.releases.models import ChannelPointer, KnownCleanFile, Release, TelemetryDetection
from release_requests.releases.schemas import DETECTING, DetectionBatch

TELEMETRY = Actor.system("telemetry")
RATE_WINDOW = timedelta(minutes=1)
_RATE_LOCK_KEY = 0x52525445  # "RRTE": per-client advisory lock (second key: hash of the client id)
TD = TelemetryDetection


def record_detections(session: Session, *, batch: DetectionBatch, config: AppConfig) -> int:
    """Store a client's batch of detections; 429 past the per-minute limit, 422 for unknown bases."""
    limit = config.stages.telemetry.rate_limit_per_client_per_minute
    if len(batch.detections) > limit:
        raise InvalidInput(
            f"at most {limit} detections per client per minute; send smaller batches", field="detections"
        )
    # Serialize one client's concurrent batches so that two of them cannot both squeeze under the limit.
    session.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(:c))"), {"k": _RATE_LOCK_KEY, "c": batch.client_id})
    now = session.scalar(select(func.now()))
    recent, oldest = session.execute(
        select(func.count(), func.min(TD.received_at)).where(
            TD.client_id == batch.client_id, TD.received_at > now - RATE_WINDOW
        )
    ).one()
    if recent + len(batch.detections) > limit:
        retry_after = max(1, math.ceil((oldest + RATE_WINDOW - now).total_seconds()))
        raise RateLimited(
            f"client {batch.client_id} sent {recent} detections in the last minute (limit {limit}); "
            f"retry in {retry_after} s",
            retry_after=retry_after,
        )
    versions = {d.base_version for d in batch.detections}
    known = set(session.scalars(select(Release.version).where(Release.version.in_(versions), Release.kind == "base")))
    if unknown := sorted(versions - known):
        raise InvalidInput(f"unknown base version(s): {', '.join(unknown)}", field="detections.base_version")
    session.execute(insert(TD), [{"client_id": batch.client_id, **d.model_dump(mode="json")} for d in batch.detections])
    return len(batch.detections)


@dataclass(frozen=True)
class HaltDecision:
    """Why a channel's current base must stop: what to go back to, whose request fails, the evidence."""

    channel: str
    version: str
    revert_to: str | None
    request_id: str | None
    reason: str
    evidence: dict = field(default_factory=dict)


def evaluate_halt(session: Session, *, channel: str, config: AppConfig, now: datetime) -> HaltDecision | None:
    """A halt decision if the telemetry since the channel's base became current passes a threshold."""
    pointer = session.get(ChannelPointer, channel)
    if pointer is None:
        return None
    release = session.get(Release, pointer.version)
    if release.kind != "base":
        return None  # telemetry reports detections by antivirus bases; hotfixes are not scanners
    policy = config.stages.telemetry
    since = pointer.published_at
    detecting = (
        TD.base_version == release.version,
        TD.received_at >= since,
        TD.received_at <= now,
        TD.verdict.in_([v.value for v in DETECTING]),
    )
    allowlisted = select(func.jsonb_array_elements_text(Release.allowlist)).where(Release.version == release.version)
    known_clean = or_(
        TD.file_sha256.in_(allowlisted) if release.allowlist else false(),
        TD.file_sha256.in_(select(KnownCleanFile.sha256)),
    )
    clean_hits = session.scalar(
        select(func.count()).select_from(
            select(TD.client_id, TD.file_sha256).where(*detecting, known_clean).distinct().subquery()
        )
    )
    reasons = []
    if clean_hits > policy.max_clean_file_detections:
        reasons.append(
            f"{clean_hits} detections by {release.version} on known-clean or allowlisted files "
            f"(more than {policy.max_clean_file_detections})"
        )
    spikes = _spikes(
        session, detecting=detecting, version=release.version, since=since, window=now - since, config=config
    )
    if spikes:
        reasons.append(
            "sharp rise of "
            + ", ".join(f"{s['rule']} ({s['clients']} clients, {s['clients_before']} before)" for s in spikes)
        )
    if not reasons:
        return None
    return HaltDecision(
        channel=channel,
        version=release.version,
        revert_to=pointer.previous_version,
        request_id=release.request_id,
        reason="; ".join(reasons),
        evidence={"clean_file_detections": clean_hits, "spikes": spikes, "since": since},
    )


def _spikes(
    session: Session, *, detecting: tuple, version: str, since: datetime, window: timedelta, config: AppConfig
) -> list[dict]:
    policy = config.stages.telemetry
    clients = func.count(distinct(TD.client_id))
    candidates = session.execute(
        select(TD.rule, clients).where(*detecting).group_by(TD.rule).having(clients >= policy.spike_min_clients)
    ).all()
    spikes = []
    for rule, count in candidates:
        before = session.scalar(
            select(clients).where(
                TD.rule == rule,
                TD.base_version != version,
                TD.received_at >= since - window,
                TD.received_at < since,
                TD.verdict.in_([v.value for v in DETECTING]),
            )
        )
        if count > policy.spike_factor * max(before, 1):
            spikes.append({"rule": rule, "clients": count, "clients_before": before})
    return sorted(spikes, key=lambda s: (-s["clients"], s["rule"]))
