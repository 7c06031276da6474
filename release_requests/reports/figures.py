"""The figures of the customer report and the daily digest: pure functions over rows the service read.

Every figure is derived from a request's audit events up to the report's `as_of`, never from a stored
counter, so the same period with the same `as_of` always gives the same numbers and each can be checked
against the log (`relreq timeline`).

Definitions (docs/reports.md, "Figures", says the same for readers):

* **SLA outcome** of a request: its clock (`sla.service.facts_from_events` + `compute`, the customer's
  calendar, the severity policy of the customer's tier) at `as_of`: *met* (our first qualified response came
  by the due time), *withdrawn* (the customer cancelled by the due time, before any qualified response of
  ours: the SLA module stops the clock there, but nobody answered, so it is no "met"), *breached* (our
  response or the cancellation came later, or the due time passed without either), *running* (not yet
  decided), *none* (no clock: no submission event). As everywhere in the SLA module, a severity change
  re-targets the clock from the same start and needs-info pauses are not counted.
* **Each figure counts in the period its event happened**, so that no request is lost between two reports
  (one mailed while its clock still ran, the next one only about requests received later):
  - *received* (`received_at` in the period): `requests_total`, `by_severity`, `by_kind`, `by_channel`, and
    `sla_running` (received in the period, still running at `as_of`);
  - *decided* (the outcome's instant in the period — the response for met, the cancellation for withdrawn,
    the **due time** for breached, however late an answer came): met, breached, withdrawn, attainment, the
    weeks and the breaches, whenever the request was received;
  - *responded* (the first qualified response of ours in the period): `first_response_p50/p90` — a late
    answer is measured when it is given, not when the breach was, so a report mailed before it does not
    lose it for good.
  `RequestRow.received_in_period`, `decided_in_period` and `responded_in_period` say which a row feeds.
* **Attainment** = met ÷ (met + breached) × 100, rounded to 0.1; None when nothing was decided.
* **First response time**: minutes on the SLA clock (business minutes for severities 3–4, pauses excluded)
  from receipt to the first qualified response *of ours* — a cancellation is nobody's answer, so it has no
  response time. p50 and p90 are **nearest-rank** percentiles (the ⌈q·n⌉-th smallest value: always a time
  some request really had), over the requests that have one in the period.
* **Weekly attainment**: each outcome decided in the period counts in the ISO week (Monday, the customer's
  zone) of its decision; the weeks are those holding the period's days, so they add up to `sla_met` and
  `sla_breached`.
* **Breach reason**: how late, and what the log says about why: a severity change, time waiting for the
  customer, a re-routing to another owner (who was away stays staff-only, as on the request page).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from release_requests.config import SeverityPolicy
from release_requests.notifications.render import duration
from release_requests.reports.periods import iso_weeks, utc_range
from release_requests.reports.schemas import (
    Breach,
    CustomerReport,
    HealthCheckSummary,
    NoteOut,
    Period,
    ReleaseDelivered,
    RequestRow,
    SeverityAttainment,
    SlaOutcome,
    WeekAttainment,
)
from release_requests.requests.states import Status
from release_requests.sla.calendar import BusinessCalendar, due_at
from release_requests.sla.service import QUALIFYING_ACTIONS, SlaStatus, compute, facts_from_events

SEVERITIES = (1, 2, 3, 4)
KINDS = ("false_positive", "false_negative", "private_hotfix")
INTAKE_CHANNELS = ("portal", "phone", "email", "tam")
UNITS = ("d", "h", "min")
CANCELLED, REROUTED = "request.cancelled", "request.rerouted"
# taken on: accepted for a fix of its own, or joined to another request's fix as its duplicate
TAKEN_ON = frozenset({"request.accepted", "request.duplicate"})
DECIDED: frozenset[SlaOutcome] = frozenset({"met", "breached", "withdrawn"})


class Event(NamedTuple):
    """One request event, reduced to what the figures read (the shape `facts_from_events` reads too)."""

    request_id: str
    occurred_at: datetime
    action: str
    entity_type: str
    after: dict[str, Any]  # only `received_at`, `severity`, `status` when the event carried them


class RequestFacts(NamedTuple):
    """The columns of one request the figures need."""

    id: str
    kind: str
    severity: int
    channel: str
    status: str
    received_at: datetime


@dataclass(frozen=True)
class Assessed:
    """One request judged at `as_of`: its row (`decided_at` says when its outcome was decided), its clock, and
    what its breach (if any) was. Which period's figures it feeds is `customer_report`'s business."""

    row: RequestRow
    sla: SlaStatus | None
    breach: Breach | None
    accepted_at: datetime | None  # taken on (`TAKEN_ON`): where its delivery time counts from
    status: str  # as of `as_of`, from the log


def pct(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The ⌈q·n⌉-th smallest value (nearest-rank percentile); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def hours_between(start: datetime | None, end: datetime) -> float | None:
    return None if start is None else round((end - start).total_seconds() / 3600, 1)


def assess(
    request: RequestFacts,
    events: Sequence[Event],
    *,
    policy_for: Callable[[int], SeverityPolicy],
    cal: BusinessCalendar,
    as_of: datetime,
) -> Assessed:
    """Judge one request from its events (oldest first, none after `as_of`)."""
    severities = [e.after["severity"] for e in events if "severity" in e.after]
    steps = [s for i, s in enumerate(severities) if i == 0 or s != severities[i - 1]]
    status = next((e.after["status"] for e in reversed(events) if "status" in e.after), request.status)
    accepted_at = next((e.occurred_at for e in events if e.action in TAKEN_ON), None)
    facts = facts_from_events(events)
    met_by = next((e.action for e in events if e.action in QUALIFYING_ACTIONS), None)
    sla: SlaStatus | None = None
    outcome: SlaOutcome = "none"
    decided_at = None
    if facts is None:
        severity, policy = request.severity, policy_for(request.severity)
    else:
        severity, policy = facts.severity, policy_for(facts.severity)
        sla = compute(facts, policy=policy, cal=cal, now=as_of)
        if sla.state == "met":
            outcome, decided_at = ("withdrawn" if met_by == CANCELLED else "met"), sla.met_at
        elif sla.state == "breached":
            outcome, decided_at = "breached", sla.due_at
        else:
            outcome = "running"
    responded = sla is not None and sla.met_at is not None and met_by != CANCELLED
    row = RequestRow(
        request_id=request.id,
        kind=request.kind,
        severity=severity,
        status=status,
        channel=request.channel,
        received_at=request.received_at,
        first_response_at=sla.met_at if responded else None,
        first_response_minutes=round(sla.elapsed_seconds / 60, 1) if responded else None,
        target_minutes=policy.response_minutes,
        due_at=sla.due_at if sla else None,
        sla=outcome,
        paused_minutes=round(sla.paused_seconds / 60, 1) if sla else 0.0,
        severity_changes=len(steps) - 1 if steps else 0,
        decided_at=decided_at,
    )
    breach = None
    if outcome == "breached":
        reroutes = sum(e.action == REROUTED for e in events)
        breach = Breach(
            request_id=request.id,
            severity=severity,
            due_at=sla.due_at,
            responded=responded,
            responded_at=sla.met_at if responded else None,
            reason=breach_reason(sla, responded=responded, as_of=as_of, severities=steps, reroutes=reroutes),
            late_minutes=round(((sla.met_at or as_of) - sla.due_at).total_seconds() / 60, 1),
            severity_path=steps,
            reroutes=reroutes,
            cancelled=met_by == CANCELLED,
        )
    return Assessed(row, sla, breach, accepted_at, status)


def breach_reason(sla: SlaStatus, *, responded: bool, as_of: datetime, severities: list[int], reroutes: int) -> str:
    """'answered 42 min after the due time; severity changed 2 → 1 (…)': how late, then why, from the log."""
    late = duration(int(((sla.met_at or as_of) - sla.due_at).total_seconds()), UNITS)
    if responded:
        parts = [f"answered {late} after the due time"]
    elif sla.met_at is not None:
        parts = [f"cancelled {late} after the due time, with no qualified response before"]
    else:
        parts = [f"no qualified response yet (overdue by {late})"]
    if len(severities) > 1:
        path = " → ".join(str(s) for s in severities)
        parts.append(f"severity changed {path}: the {sla.target_minutes} min target counts from receipt")
    if sla.paused_seconds:
        parts.append(f"waited {duration(sla.paused_seconds, UNITS)} for the customer's answer (not counted)")
    if reroutes:
        parts.append("re-routed to another owner" + (f" {reroutes} times" if reroutes > 1 else ""))
    return "; ".join(parts)


def weekly(decided: Sequence[RequestRow], *, period: Period, zone) -> list[WeekAttainment]:
    """Met and breached per ISO week of their decision, over the weeks holding the period's days."""
    counts: dict[date, Counter] = {}
    for row in decided:
        day = row.decided_at.astimezone(zone).date()
        counts.setdefault(day - timedelta(days=day.weekday()), Counter())[row.sla] += 1
    weeks = []
    for monday in iso_weeks(period.start, period.end):
        met, breached = counts.get(monday, Counter())["met"], counts.get(monday, Counter())["breached"]
        weeks.append(
            WeekAttainment(week_start=monday, met=met, breached=breached, attainment_pct=pct(met, met + breached))
        )
    return weeks


def severity_attainment(
    decided: Sequence[RequestRow], running: Sequence[RequestRow], *, policy_for: Callable[[int], SeverityPolicy]
) -> list[SeverityAttainment]:
    result = []
    for severity in SEVERITIES:
        outcomes = Counter(r.sla for r in decided if r.severity == severity)
        policy = policy_for(severity)
        result.append(
            SeverityAttainment(
                severity=severity,
                label=policy.name,
                target_minutes=policy.response_minutes,
                clock=policy.clock,
                met=outcomes["met"],
                breached=outcomes["breached"],
                running=sum(r.severity == severity for r in running),
                attainment_pct=pct(outcomes["met"], outcomes["met"] + outcomes["breached"]),
                withdrawn=outcomes["withdrawn"],
            )
        )
    return result


def counted(values: Sequence[str], keys: Sequence[str]) -> dict[str, int]:
    """Counts with every expected key present (zero included), then any unexpected value."""
    found = Counter(values)
    return {**{k: found.get(k, 0) for k in keys}, **{k: v for k, v in found.items() if k not in keys}}


def customer_report(
    *,
    customer_id: str,
    customer_name: str,
    cal: BusinessCalendar,
    period: Period,
    as_of: datetime,
    assessed: Sequence[Assessed],
    policy_for: Callable[[int], SeverityPolicy],
    releases: list[ReleaseDelivered],
    healthchecks: list[HealthCheckSummary],
    notes: list[NoteOut],
) -> CustomerReport:
    """Assemble the report from judged requests (any that may feed it: the rest are left out here) and what was
    read beside them. Each request counts where its event happened: received, decided, first answered."""
    start, end = utc_range(period, cal.zone)

    def within(moment: datetime | None) -> bool:
        return moment is not None and start <= moment < end

    rows, breaches = [], []
    for item in assessed:
        row = item.row
        received = within(row.received_at)
        decided = row.sla in DECIDED and within(row.decided_at)
        responded = row.first_response_minutes is not None and within(row.first_response_at)
        if not (received or decided or responded):
            continue
        flags = {"received_in_period": received, "decided_in_period": decided, "responded_in_period": responded}
        minutes = row.first_response_minutes if responded else None  # counted where it was answered
        rows.append(row.model_copy(update={**flags, "first_response_minutes": minutes}))
        if decided and item.breach is not None:
            breaches.append(item.breach)
    received_rows = [r for r in rows if r.received_in_period]
    decided_rows = [r for r in rows if r.decided_in_period]
    running = [r for r in received_rows if r.sla == "running"]
    outcomes: Counter[SlaOutcome] = Counter(r.sla for r in decided_rows)
    responses = [r.first_response_minutes for r in rows if r.first_response_minutes is not None]
    return CustomerReport(
        customer_id=customer_id,
        customer_name=customer_name,
        timezone=cal.timezone,
        period=period,
        as_of=as_of,
        requests_total=len(received_rows),
        by_severity=counted([str(r.severity) for r in received_rows], [str(s) for s in SEVERITIES]),
        by_kind=counted([r.kind for r in received_rows], KINDS),
        by_channel=counted([r.channel for r in received_rows], INTAKE_CHANNELS),
        sla_met=outcomes["met"],
        sla_breached=outcomes["breached"],
        sla_running=len(running),
        sla_attainment_pct=pct(outcomes["met"], outcomes["met"] + outcomes["breached"]),
        sla_withdrawn=outcomes["withdrawn"],
        sla_by_severity=severity_attainment(decided_rows, running, policy_for=policy_for),
        first_response_p50_minutes=nearest_rank(responses, 0.5),
        first_response_p90_minutes=nearest_rank(responses, 0.9),
        breaches=sorted(breaches, key=lambda b: (b.due_at, b.request_id)),
        releases=releases,
        weekly=weekly(decided_rows, period=period, zone=cal.zone),
        healthchecks=healthchecks,
        notes=notes,
        requests=rows,
    )


def clock_horizon(start: datetime, *, policies: Iterable[SeverityPolicy], cal: BusinessCalendar) -> datetime:
    """An instant before which every clock started — or restarted, at the end of a needs-info pause — fell due
    before `start`, whatever the severity. A due time never moves back when its start moves forward, so it is
    enough that each target, started at the horizon, is due before `start`: found a whole day further back per
    try (over the nights, weekends and holidays of a business clock)."""
    horizon = start
    for policy in policies:
        target = timedelta(minutes=policy.response_minutes)
        since = start - target
        while due_at(start=since, target=target, clock=policy.clock, calendar=cal) >= start:
            since -= timedelta(days=1)
        horizon = min(horizon, since)
    return horizon


# --- the daily digest ---------------------------------------------------------------------------------------

S = Status
NEXT_STEPS: dict[str, str] = {
    S.submitted: "awaiting triage",
    S.needs_info: "waiting for the customer's answer",
    S.accepted: "building a fix",
    S.building: "building a fix",
    S.verifying: "verifying the fix",
    S.awaiting_approval: "awaiting sign-off",
    S.releasing: "publishing the fix",
    S.released: "released",
    S.closed: "closed: nothing left to do",
    S.rejected: "rejected: no change will be made",
    S.duplicate: "follows the fix of the request it duplicates",
    S.cancelled: "cancelled: nothing left to do",
    S.failed: "the fix failed: to be rebuilt or closed",
}
# the same, naming the stage or channel (`DigestRow.next_step_detail`) when it is known
NEXT_STEPS_DETAILED: dict[str, str] = {
    S.awaiting_approval: "awaiting sign-off of stage {0}",
    S.releasing: "publishing stage {0}",
    S.released: "released to {0}",
}


def next_step(status: str, detail: str | None) -> str:
    """A short sentence saying what happens next, from the status (and the stage or channel it names)."""
    if detail and status in NEXT_STEPS_DETAILED:
        return NEXT_STEPS_DETAILED[status].format(detail)
    return NEXT_STEPS[status]
