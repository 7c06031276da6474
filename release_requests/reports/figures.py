"""The figures of the customer report and the daily digest: pure functions over rows the service read.

Every figure is derived from a request's audit events up to the report's `as_of`, never from a stored
counter, so the same period with the same `as_of` always gives the same numbers and each can be checked
against the log (`relreq timeline`).

Definitions (docs/reports.md, "Figures", says the same for readers):

* **SLA outcome** of a request: its clock (`sla.service.facts_from_events` + `compute`, the customer's
  calendar, the severity policy of the customer's tier) at `as_of`: *met* (the first qualified response came
  before the due time), *breached* (it came later, or the due time passed without one), *running* (not yet
  decided: not counted anywhere in attainment), *none* (no clock: no submission event). As everywhere in
  the SLA module, a severity change re-targets the clock from the same start, needs-info pauses are not
  counted, and a cancellation stops the clock like a response would.
* **Attainment** = met ÷ (met + breached) × 100, rounded to 0.1; None when nothing was decided.
* **First response time**: minutes on the SLA clock (business minutes for severities 3–4, pauses excluded)
  from receipt to the first qualified response *of ours* — a cancellation stops the clock but is nobody's
  answer, so it has no response time. p50 and p90 are **nearest-rank** percentiles (the ⌈q·n⌉-th smallest
  value: always a time some request really had), over the requests that have one.
* **Weekly attainment**: each decided request counts in the ISO week (Monday, the customer's zone) in which
  its outcome was decided — the response for met and late-answered requests, the due time for those still
  unanswered. The weeks are those of the period, plus any later week holding a decision, so the weekly
  rows add up to `sla_met` and `sla_breached`.
* **Breach reason**: how late, and what the log says about why: a severity change, time waiting for the
  customer, a re-routing to another owner (who was away stays staff-only, as on the request page).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from release_requests.config import SeverityPolicy
from release_requests.notifications.render import duration
from release_requests.reports.periods import iso_weeks
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
from release_requests.sla.calendar import BusinessCalendar
from release_requests.sla.service import QUALIFYING_ACTIONS, SlaStatus, compute, facts_from_events

SEVERITIES = (1, 2, 3, 4)
KINDS = ("false_positive", "false_negative", "private_hotfix")
INTAKE_CHANNELS = ("portal", "phone", "email", "tam")
UNITS = ("d", "h", "min")
CANCELLED, REROUTED = "request.cancelled", "request.rerouted"
# taken on: accepted for a fix of its own, or joined to another request's fix as its duplicate
TAKEN_ON = frozenset({"request.accepted", "request.duplicate"})


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
    """One request judged at `as_of`: its row, its clock, and what its breach (if any) was."""

    row: RequestRow
    sla: SlaStatus | None
    decided_at: datetime | None  # when its outcome became met or breached
    breach: Breach | None
    accepted_at: datetime | None
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
    sla = None
    if facts is None:
        severity, policy, outcome = request.severity, policy_for(request.severity), "none"
    else:
        severity, policy = facts.severity, policy_for(facts.severity)
        sla = compute(facts, policy=policy, cal=cal, now=as_of)
        outcome = sla.state if sla.state in ("met", "breached") else "running"
    met_by = next((e.action for e in events if e.action in QUALIFYING_ACTIONS), None)
    responded = sla is not None and sla.met_at is not None and met_by != CANCELLED
    decided_at = None
    if sla is not None and outcome != "running":
        decided_at = sla.met_at or sla.due_at
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
    return Assessed(row, sla, decided_at, breach, accepted_at, status)


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


def weekly(assessed: Sequence[Assessed], *, period: Period, zone) -> list[WeekAttainment]:
    """Met and breached per ISO week of decision (the period's weeks, and later ones holding a decision)."""
    counts: dict[date, Counter] = {}
    for item in assessed:
        if item.decided_at is not None:
            day = item.decided_at.astimezone(zone).date()
            counts.setdefault(day - timedelta(days=day.weekday()), Counter())[item.row.sla] += 1
    weeks = []
    for monday in iso_weeks(period.start, max([period.end, *counts])):
        met, breached = counts.get(monday, Counter())["met"], counts.get(monday, Counter())["breached"]
        weeks.append(
            WeekAttainment(week_start=monday, met=met, breached=breached, attainment_pct=pct(met, met + breached))
        )
    return weeks


def severity_attainment(
    rows: Sequence[RequestRow], *, policy_for: Callable[[int], SeverityPolicy]
) -> list[SeverityAttainment]:
    result = []
    for severity in SEVERITIES:
        outcomes = Counter(r.sla for r in rows if r.severity == severity)
        policy = policy_for(severity)
        result.append(
            SeverityAttainment(
                severity=severity,
                label=policy.name,
                target_minutes=policy.response_minutes,
                clock=policy.clock,
                met=outcomes["met"],
                breached=outcomes["breached"],
                running=outcomes["running"],
                attainment_pct=pct(outcomes["met"], outcomes["met"] + outcomes["breached"]),
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
    """Assemble the report from judged requests and what was read beside them."""
    rows = [a.row for a in assessed]
    outcomes: Counter[SlaOutcome] = Counter(r.sla for r in rows)
    responses = [r.first_response_minutes for r in rows if r.first_response_minutes is not None]
    return CustomerReport(
        customer_id=customer_id,
        customer_name=customer_name,
        timezone=cal.timezone,
        period=period,
        as_of=as_of,
        requests_total=len(rows),
        by_severity=counted([str(r.severity) for r in rows], [str(s) for s in SEVERITIES]),
        by_kind=counted([r.kind for r in rows], KINDS),
        by_channel=counted([r.channel for r in rows], INTAKE_CHANNELS),
        sla_met=outcomes["met"],
        sla_breached=outcomes["breached"],
        sla_running=outcomes["running"],
        sla_attainment_pct=pct(outcomes["met"], outcomes["met"] + outcomes["breached"]),
        sla_by_severity=severity_attainment(rows, policy_for=policy_for),
        first_response_p50_minutes=nearest_rank(responses, 0.5),
        first_response_p90_minutes=nearest_rank(responses, 0.9),
        breaches=sorted((a.breach for a in assessed if a.breach), key=lambda b: (b.due_at, b.request_id)),
        releases=releases,
        weekly=weekly(assessed, period=period, zone=cal.zone),
        healthchecks=healthchecks,
        notes=notes,
        requests=rows,
    )


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
