"""Detection telemetry from enrolled update clients, and the automatic halt decision it feeds.

Telemetry is data, not a state change: rows are not audited one by one (a halt they cause is). Only an
enrolled, non-revoked client may report (its credential names it; the body cannot); each batch carries a
fresh `batch_id` (seen before → 409, so a replayed or retried batch counts once) and its `sent_at`
(more than 5 minutes off the server's clock → 422, so an old captured batch cannot be replayed later).
Input is validated by the schema, checked against known bases, and rate-limited per client with a counter
over the last minute kept in Postgres, so every API process enforces the same limit.

A channel's current base is halted when, since it became current there (or since a person resumed the
channel, if later), counting only clients that are enrolled and not revoked:
- more than `max_clean_file_detections` distinct (client, file) detections hit files that are known to be
  clean (the base's own allowlist, or `known_clean_files`), or
- a rule is detected by at least `spike_min_clients` distinct clients and by more than `spike_factor` times
  as many clients as detected it with any other base in an equally long window just before;
and the detections behind that test come from at least `halt_min_clients` distinct clients of at least
`halt_min_organisations` organisations (at most 1 on a channel only one organisation reads), so that no
single customer, however many machines it has or fakes, can stop a channel that others rely on.
Counts are absolute, so during a small canary step the spike test errs on the side of not halting;
the known-clean test does not depend on the cohort size. A halted channel is not evaluated again until a
person resumes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, distinct, false, func, insert, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from release_requests.audit.service import Actor
from release_requests.config import AppConfig
from release_requests.errors import Conflict, InvalidInput, RateLimited
from release_requests.releases.models import (
    VENDOR,
    ChannelPointer,
    EnrolledClient,
    KnownCleanFile,
    Release,
    TelemetryBatch,
    TelemetryDetection,
)
from release_requests.releases.schemas import DETECTING, DetectionBatch

TELEMETRY = Actor.system("telemetry")
RATE_WINDOW = timedelta(minutes=1)
SENT_AT_TOLERANCE = timedelta(minutes=5)  # like Slack's signed requests: enough for skewed clocks and retries
EVIDENCE_LIMIT = 50  # clients and files named in a halt's evidence (the totals are always given)
_RATE_LOCK_KEY = 0x52525445  # "RRTE": per-client advisory lock (second key: hash of the client id)
TD = TelemetryDetection
EC = EnrolledClient


def record_detections(session: Session, *, client: EnrolledClient, batch: DetectionBatch, config: AppConfig) -> int:
    """Store an enrolled client's batch: 422 for a forged client id, a stale `sent_at`, an oversized batch
    or unknown bases; 409 for a batch id seen before; 429 past the per-minute limit. Nothing is kept then."""
    if batch.client_id is not None and batch.client_id != client.id:
        raise InvalidInput(
            f"client_id '{batch.client_id}' is not the client this credential belongs to ({client.id}); "
            "leave it out, the server takes it from the credential",
            field="client_id",
        )
    now = session.scalar(select(func.now()))
    skew = batch.sent_at - now
    if abs(skew) > SENT_AT_TOLERANCE:
        raise InvalidInput(
            f"sent_at {batch.sent_at.isoformat()} is {abs(skew.total_seconds()):.0f} s "
            f"{'ahead of' if skew > timedelta(0) else 'behind'} the server's clock ({now.isoformat()}); "
            f"at most {SENT_AT_TOLERANCE.total_seconds():.0f} s are allowed: check the client's clock",
            field="sent_at",
        )
    limit = config.stages.telemetry.rate_limit_per_client_per_minute
    if len(batch.detections) > limit:
        raise InvalidInput(
            f"at most {limit} detections per client per minute; send smaller batches", field="detections"
        )
    # Serialize one client's concurrent batches so that two of them cannot both squeeze under the limit.
    session.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(:c))"), {"k": _RATE_LOCK_KEY, "c": client.id})
    first_time = session.execute(
        pg_insert(TelemetryBatch)
        .values(client_id=client.id, batch_id=batch.batch_id, sent_at=batch.sent_at, detections=len(batch.detections))
        .on_conflict_do_nothing(index_elements=["client_id", "batch_id"])
        .returning(TelemetryBatch.batch_id)
    ).scalar_one_or_none()
    if first_time is None:
        raise Conflict(
            f"batch {batch.batch_id} of client {client.id} was received before: replayed, not counted again",
            field="batch_id",
        )
    recent, oldest = session.execute(
        select(func.count(), func.min(TD.received_at)).where(
            TD.client_id == client.id, TD.received_at > now - RATE_WINDOW
        )
    ).one()
    if recent + len(batch.detections) > limit:
        retry_after = max(1, math.ceil((oldest + RATE_WINDOW - now).total_seconds()))
        raise RateLimited(
            f"client {client.id} sent {recent} detections in the last minute (limit {limit}); retry in {retry_after} s",
            retry_after=retry_after,
        )
    versions = {d.base_version for d in batch.detections}
    known = set(session.scalars(select(Release.version).where(Release.version.in_(versions), Release.kind == "base")))
    if unknown := sorted(versions - known):
        raise InvalidInput(f"unknown base version(s): {', '.join(unknown)}", field="detections.base_version")
    session.execute(insert(TD), [{"client_id": client.id, **d.model_dump(mode="json")} for d in batch.detections])
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
    """A halt decision if enrolled clients' telemetry since the channel's base became current (or since the
    channel was resumed) passes a threshold, with enough clients of enough organisations behind it."""
    pointer = session.get(ChannelPointer, channel)
    if pointer is None or pointer.halted_at is not None:
        return None  # a halted channel waits for a person, who also decides what it serves next
    release = session.get(Release, pointer.version)
    if release.kind != "base":
        return None  # telemetry reports detections by antivirus bases; hotfixes are not scanners
    policy = config.stages.telemetry
    since, detecting, known_clean, min_organisations = _counted(pointer, release, config, now)
    clean = _reporters(session, *detecting, known_clean)
    reasons, culprits = [], []
    if len(clean) > policy.max_clean_file_detections and _corroborated(
        clean, policy.halt_min_clients, min_organisations
    ):
        reasons.append(
            f"{len(clean)} detections by {release.version} on known-clean or allowlisted files "
            f"(more than {policy.max_clean_file_detections}) from {_who(clean)}"
        )
        culprits.extend(clean)
    spikes = []
    for spike, rows in _spikes(
        session, detecting=detecting, version=release.version, since=since, window=now - since, config=config
    ):
        if _corroborated(rows, policy.halt_min_clients, min_organisations):
            spikes.append(spike)
            culprits.extend(rows)
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
        evidence={
            "since": since,
            "clean_file_detections": len(clean),
            "spikes": spikes,
            **_culprits(culprits),
            "thresholds": {"min_clients": policy.halt_min_clients, "min_organisations": min_organisations},
        },
    )


def _counted(pointer: ChannelPointer, release: Release, config: AppConfig, now: datetime) -> tuple:
    """What the halt rule counts on this channel: (since, the detecting conditions, the known-clean condition,
    the organisations required). One place, so that what people are shown is what the rule decides on."""
    since = max(pointer.published_at, pointer.resumed_at or pointer.published_at)
    detecting = (
        TD.base_version == release.version,
        TD.received_at >= since,
        TD.received_at <= now,
        TD.verdict.in_([v.value for v in DETECTING]),
    )
    policy = config.stages.telemetry
    min_organisations = 1 if _one_organisation(pointer, config) else policy.halt_min_organisations
    allowlisted = select(func.jsonb_array_elements_text(Release.allowlist)).where(Release.version == release.version)
    known_clean = or_(
        TD.file_sha256.in_(allowlisted) if release.allowlist else false(),
        TD.file_sha256.in_(select(KnownCleanFile.sha256)),
    )
    return since, detecting, known_clean, min_organisations


@dataclass(frozen=True)
class _Reporter:
    """One enrolled client's detection of one file, with the organisation it counts for."""

    client_id: str
    organisation: str | None  # the customer id; None for the vendor (never mistaken for a customer id)
    file_sha256: str


def _reporters(session: Session, *conditions) -> list[_Reporter]:
    """Distinct (client, file) detections matching `conditions`, by enrolled, non-revoked clients only."""
    rows = session.execute(
        select(TD.client_id, EC.customer_id, TD.file_sha256)
        .join(EC, EC.id == TD.client_id)
        .where(EC.revoked_at.is_(None), *conditions)
        .distinct()
    )
    return [_Reporter(*row) for row in rows]


def _corroborated(rows: list[_Reporter], min_clients: int, min_organisations: int) -> bool:
    """Enough distinct clients of enough distinct organisations stand behind these detections."""
    return len({r.client_id for r in rows}) >= min_clients and len({r.organisation for r in rows}) >= min_organisations


def _who(rows: list[_Reporter]) -> str:
    return f"{len({r.client_id for r in rows})} clients of {len({r.organisation for r in rows})} organisations"


def _culprits(rows: list[_Reporter]) -> dict:
    """The clients (with their organisations) and files behind a halt: the evidence people check."""
    clients = sorted({(r.client_id, r.organisation or VENDOR) for r in rows})
    files = sorted({r.file_sha256 for r in rows})
    return {
        "clients": [{"client_id": c, "organisation": o} for c, o in clients[:EVIDENCE_LIMIT]],
        "clients_total": len(clients),
        "organisations": sorted({o for _, o in clients}),
        "files": files[:EVIDENCE_LIMIT],
        "files_total": len(files),
    }


def _one_organisation(pointer: ChannelPointer, config: AppConfig) -> bool:
    """Only one organisation reads this channel: a customer's own (or hotfix) channel, or a pipeline's
    `internal` channel (the vendor's machines)."""
    internal = {p.channels.get("internal") for p in config.stages.pipelines.values()}
    return pointer.private_to is not None or pointer.channel in internal


def _spikes(
    session: Session, *, detecting: tuple, version: str, since: datetime, window: timedelta, config: AppConfig
) -> list[tuple[dict, list[_Reporter]]]:
    """Rules whose enrolled clients rose sharply, each with the detections behind it."""
    policy = config.stages.telemetry
    clients = func.count(distinct(TD.client_id))
    candidates = session.execute(
        select(TD.rule, clients)
        .join(EC, EC.id == TD.client_id)
        .where(EC.revoked_at.is_(None), *detecting)
        .group_by(TD.rule)
        .having(clients >= policy.spike_min_clients)
    ).all()
    spikes = []
    for rule, count in candidates:
        before = _clients_before(session, rule=rule, version=version, since=since, window=window)
        if count > policy.spike_factor * max(before, 1):
            spike = {"rule": rule, "clients": count, "clients_before": before}
            spikes.append((spike, _reporters(session, *detecting, TD.rule == rule)))
    return sorted(spikes, key=lambda s: (-s[0]["clients"], s[0]["rule"]))


def _clients_before(session: Session, *, rule: str, version: str, since: datetime, window: timedelta) -> int:
    """Enrolled clients that detected `rule` with any other base in the window of the same length before."""
    return session.scalar(
        select(func.count(distinct(TD.client_id)))
        .join(EC, EC.id == TD.client_id)
        .where(
            EC.revoked_at.is_(None),
            TD.rule == rule,
            TD.base_version != version,
            TD.received_at >= since - window,
            TD.received_at < since,
            TD.verdict.in_([v.value for v in DETECTING]),
        )
    )


# --------------------------------------------------------------------------------------------------
# What the halt rule sees on a channel now (the console's channel page): counted as `evaluate_halt` counts


@dataclass(frozen=True)
class RuleCount:
    """One rule's detections by the channel's base: distinct enrolled clients and their organisations, and
    the clients that detected it with other bases in as long a window before (the spike test's baseline)."""

    rule: str
    clients: int
    organisations: int
    clients_before: int
    would_halt: bool


@dataclass(frozen=True)
class RecentDetection:
    received_at: datetime
    rule: str
    file_sha256: str
    verdict: str
    organisation: str  # the customer id, or VENDOR


@dataclass(frozen=True)
class HaltWatch:
    """The telemetry that could halt a channel's current base, with the thresholds it is judged by.

    `unwatched` says why the rule is not evaluated now ("halted": it waits for a person; "hotfix": hotfixes
    are not scanners); the counts are given all the same."""

    channel: str
    version: str
    since: datetime
    unwatched: str | None
    clean_detections: int  # distinct (client, file) detections of known-clean or allowlisted files
    clean_clients: int
    clean_organisations: int
    clean_would_halt: bool
    rules: list[RuleCount]
    recent: list[RecentDetection]
    max_clean_file_detections: int
    spike_min_clients: int
    spike_factor: float
    min_clients: int
    min_organisations: int


def halt_watch(
    session: Session, *, channel: str, config: AppConfig, now: datetime, rules: int = 10, recent: int = 20
) -> HaltWatch | None:
    """The halt rule's view of `channel` at `now` (None for no channel): its known-clean count, the rules
    detected most widely (with their spike baselines) and the latest detections it counts. No access check:
    callers decide who may read it (`serving.channel_telemetry`)."""
    pointer = session.get(ChannelPointer, channel)
    if pointer is None:
        return None
    release = session.get(Release, pointer.version)
    policy = config.stages.telemetry
    since, detecting, known_clean, min_organisations = _counted(pointer, release, config, now)
    clean = _reporters(session, *detecting, known_clean)
    clean_corroborated = _corroborated(clean, policy.halt_min_clients, min_organisations)
    clients = func.count(distinct(TD.client_id))
    # organisations as `_Reporter` counts them: every customer once, the vendor's own machines once more
    organisations = func.count(distinct(EC.customer_id)) + func.max(case((EC.customer_id.is_(None), 1), else_=0))
    widest = session.execute(
        select(TD.rule, clients, organisations)
        .join(EC, EC.id == TD.client_id)
        .where(EC.revoked_at.is_(None), *detecting)
        .group_by(TD.rule)
        .order_by(clients.desc(), TD.rule)
        .limit(rules)
    ).all()
    counted = []
    for rule, count, orgs in widest:
        before = _clients_before(session, rule=rule, version=release.version, since=since, window=now - since)
        spike = count >= policy.spike_min_clients and count > policy.spike_factor * max(before, 1)
        corroborated = count >= policy.halt_min_clients and orgs >= min_organisations
        counted.append(RuleCount(rule, count, orgs, before, spike and corroborated))
    latest = session.execute(
        select(TD.received_at, TD.rule, TD.file_sha256, TD.verdict, EC.customer_id)
        .join(EC, EC.id == TD.client_id)
        .where(EC.revoked_at.is_(None), *detecting)
        .order_by(TD.received_at.desc(), TD.id.desc())
        .limit(recent)
    ).all()
    unwatched = None
    if pointer.halted_at is not None:
        unwatched = "halted"
    elif release.kind != "base":
        unwatched = "hotfix"
    return HaltWatch(
        channel=channel,
        version=release.version,
        since=since,
        unwatched=unwatched,
        clean_detections=len(clean),
        clean_clients=len({r.client_id for r in clean}),
        clean_organisations=len({r.organisation for r in clean}),
        clean_would_halt=len(clean) > policy.max_clean_file_detections and clean_corroborated,
        rules=counted,
        recent=[RecentDetection(at, rule, sha, verdict, org or VENDOR) for at, rule, sha, verdict, org in latest],
        max_clean_file_detections=policy.max_clean_file_detections,
        spike_min_clients=policy.spike_min_clients,
        spike_factor=policy.spike_factor,
        min_clients=policy.halt_min_clients,
        min_organisations=min_organisations,
    )
