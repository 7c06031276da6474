"""The customer report and the daily digest: what to read, for whom; the figures themselves are in `figures`.

Reading is shaped by the report's size (100,000 requests and 1,000,000 audit events answer one customer's
quarter within a second, `bench/report_bench.py`): the requests come from the `(customer_id, received_at)`
index, their request events from the `audit_events.request_id` index in one query that selects only the
columns and JSON keys the figures read (no ORM object per event), and every other table is read once for the
whole report, never per request.

**Which requests can feed a period** (`figures` counts each where its event happened: received, decided,
first answered): those received in it, and those received before it that were decided or first answered in
it — found without reading every old request's log. Such a request, received before the clock horizon
(`figures.clock_horizon`: every clock started before it fell due before the period), is one of:

* decided or answered by a change of state (accepted, rejected, joined as a duplicate, cancelled) in the
  period: that set `updated_at` to then, and any later change later still (`requests.lifecycle.change` sets
  it with every audited change of a field);
* answered by `request.responded` alone, which changes no column (nor do the SLA watch's `sla.*` events):
  then it had no qualified response before, so it is still `submitted` or `needs_info` (`UNANSWERED`) unless
  a later change moved `updated_at` — and has that response in the period (an index probe on its events,
  made only for the few unanswered ones: not every request left unanswered for good is judged again);
* breached at a due time in the period, with no event then: its clock (re)started after the horizon — it
  was received then, or its needs-info pause ended then (`request.answered` changes `status`: `updated_at`).

So the candidates are `received_at < end` and (`received_at` or `updated_at` ≥ the horizon, or `UNANSWERED`
with a qualified response in the period); the figures judge each and drop those that feed nothing.

`customer_report` and `daily_digest` apply the permission table and visibility (another customer's report
is *not found*, like an unknown customer); `build_customer_report` and `build_daily_digest` are the trusted
primitives the scheduled sender (`reports.delivery`) calls for the recipients it has chosen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import String, and_, any_, exists, func, literal, not_, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.models import AuditEvent
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.customers.models import Customer
from release_requests.customers.service import customer_for, get_customer
from release_requests.errors import InvalidInput
from release_requests.healthchecks.models import HealthCheck, HealthCheckFinding
from release_requests.healthchecks.schemas import SEVERITIES as FINDING_SEVERITIES
from release_requests.healthchecks.schemas import FindingOut
from release_requests.people.models import Person
from release_requests.pipeline.models import StageRun
from release_requests.releases.channels import channel_for
from release_requests.releases.models import ChannelHistory, Release
from release_requests.reports import figures
from release_requests.reports.figures import Assessed, Event, RequestFacts
from release_requests.reports.periods import utc_range
from release_requests.reports.preferences import notes_for
from release_requests.reports.schemas import (
    CustomerReport,
    DailyDigest,
    DigestRow,
    HealthCheckSummary,
    Period,
    ReleaseDelivered,
)
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.presentation import ROUTING_ACTIONS, STAFF_ONLY_ACTIONS
from release_requests.requests.states import OPEN_STATES, Status
from release_requests.sla.service import QUALIFYING_ACTIONS

# the states of a request that has had no qualified response yet (`request.responded` changes no column)
UNANSWERED = (Status.submitted, Status.needs_info)
# a Health Check's findings the report lists: always these, and the rest while the list stays this short
FINDINGS_ALWAYS, FINDINGS_LISTED = ("critical", "high"), 15
DIGEST_SEVERITIES = (1, 2)
DIGEST_WINDOW = timedelta(hours=24)
# still in the digest every day: open, except released (the fix reached the customer; only closing is left), which
# shows on the day it changed
DIGEST_OPEN = OPEN_STATES - {Status.released}
# a change of the request itself, as its customer's timeline shows it (`requests.presentation`): not a notice about
# it, a build, a channel, nor the internal routing and SLA escalations
OWN_CHANGE = and_(
    AuditEvent.entity_type == "request",
    AuditEvent.action.not_in(ROUTING_ACTIONS),
    not_(or_(*(AuditEvent.action.startswith(prefix, autoescape=True) for prefix in STAFF_ONLY_ACTIONS))),
)


def customer_report(
    session: Session,
    *,
    actor: Person,
    customer_id: str,
    period: Period,
    config: AppConfig,
    as_of: datetime | None = None,
) -> CustomerReport:
    """One customer's report for a person: `report.read`, and a customer they may see (else not found)."""
    access.authorize(actor, "report.read")
    customer_for(session, actor=actor, customer_id=customer_id)
    return build_customer_report(session, customer_id=customer_id, period=period, config=config, as_of=as_of)


def build_customer_report(
    session: Session, *, customer_id: str, period: Period, config: AppConfig, as_of: datetime | None = None
) -> CustomerReport:
    """The report of `period` (local days in the customer's zone), as the log stood at `as_of` (default: the
    database's now): the same `as_of` always gives the same figures."""
    customer = get_customer(session, customer_id=customer_id)
    as_of = as_of or db_now(session)
    cal = customer.calendar()
    start, end = utc_range(period, cal.zone)

    def policy_for(severity: int):
        return config.severity.for_request(severity=severity, tier=customer.tier)

    horizon = figures.clock_horizon(start, policies=map(policy_for, figures.SEVERITIES), cal=cal)
    R, A = ReleaseRequest, AuditEvent
    requests = session.execute(
        select(R.id, R.kind, R.severity, R.channel, R.status, R.received_at, R.updated_at)
        .where(
            R.customer_id == customer.id,
            R.created_at <= as_of,
            R.received_at < end,
            or_(R.received_at >= horizon, R.updated_at >= horizon, R.status.in_(UNANSWERED)),
        )
        .order_by(R.received_at, R.id)
    ).all()
    # requests left unanswered long ago come in by their status alone: keep those with a qualified response in
    # the period (one index probe each), so that the many left unanswered for good are not judged every time
    stale = {r.id for r in requests if r.received_at < horizon and r.updated_at < horizon}
    answered = set(
        session.scalars(
            select(A.request_id).where(
                A.request_id == any_(ids(stale)),
                A.entity_type == "request",
                A.action.in_(QUALIFYING_ACTIONS),
                A.occurred_at >= start,
                A.occurred_at < end,
            )
        )
    )
    requests = [r for r in requests if r.id in answered or r.id not in stale]
    events = request_events(session, request_ids=[r.id for r in requests], as_of=as_of)
    assessed = [
        figures.assess(RequestFacts(*r[:6]), events.get(r.id, ()), policy_for=policy_for, cal=cal, as_of=as_of)
        for r in requests
    ]
    return figures.customer_report(
        customer_id=customer.id,
        customer_name=customer.name,
        cal=cal,
        period=period,
        as_of=as_of,
        assessed=assessed,
        policy_for=policy_for,
        releases=releases_delivered(
            session,
            config=config,
            customer_id=customer.id,
            start=start,
            end=end,
            as_of=as_of,
            taken_on={a.row.request_id: a.accepted_at for a in assessed},
        ),
        healthchecks=healthchecks_of(session, customer_id=customer.id, period=period),
        notes=notes_for(session, customer_id=customer.id, period=period),
    )


def request_events(session: Session, *, request_ids: list[str], as_of: datetime) -> dict[str, list[Event]]:
    """The request events of these requests up to `as_of`, oldest first, reduced to what the figures read."""
    A = AuditEvent
    rows = session.execute(
        select(
            A.request_id,
            A.occurred_at,
            A.action,
            A.after["received_at"].astext,
            A.after["severity"].astext,
            A.after["status"].astext,
        )
        .where(A.request_id.in_(request_ids), A.entity_type == "request", A.occurred_at <= as_of)
        .order_by(A.seq)
    )
    events: dict[str, list[Event]] = defaultdict(list)
    for request_id, occurred_at, action, received_at, severity, status in rows:
        after: dict = {}
        if received_at is not None:
            after["received_at"] = received_at
        if severity is not None:
            after["severity"] = int(severity)
        if status is not None:
            after["status"] = status
        events[request_id].append(Event(request_id, occurred_at, action, "request", after))
    return events


def stage_channel(
    config: AppConfig, *, kind: str, stage: str | None, customer_id: str, product: str | None
) -> str | None:
    """The channel `stage` of a request's pipeline publishes to (None: no such stage, or a hotfix request
    without its product, for which nothing was ever built)."""
    if stage is None:
        return None
    try:
        return channel_for(config=config, kind=kind, stage=stage, customer_id=customer_id, product=product)
    except InvalidInput:
        return None


def own_stage(config: AppConfig, kind: str) -> str | None:
    """The stage whose channel serves the request's customer alone (`customer-<id>`, `hotfix-<id>-<product>`)."""
    _, pipeline = config.stages.pipeline_for(kind)
    return next((s for s in pipeline.stages if "{customer}" in pipeline.channels[s]), None)


def releases_delivered(
    session: Session,
    *,
    config: AppConfig,
    customer_id: str,
    start: datetime,
    end: datetime,
    as_of: datetime,
    taken_on: dict[str, datetime | None],
) -> list[ReleaseDelivered]:
    """Each release first published to one of the customer's own channels within [start, end) (and by `as_of`),
    with the customer's requests it delivered: whenever they were received. `taken_on`: when each request
    already judged was taken on (`figures.Assessed.accepted_at`); the others' are read here.

    A publication names the request whose build it is; a duplicate request is served by its primary's build
    (the primary may be another customer's: a shared fix reaches every affected customer's channel), so a
    publication naming the primary delivers the duplicate too — if it came once the duplicate was taken on: a
    request joined to a fix already on its channel had nothing delivered for it (no negative delivery time).
    """
    R, H, A = ReleaseRequest, ChannelHistory, AuditEvent
    kinds = session.execute(
        select(R.kind, R.product).where(R.customer_id == customer_id, R.created_at <= as_of).distinct()
    ).all()
    channels = {
        stage_channel(config, kind=kind, stage=own_stage(config, kind), customer_id=customer_id, product=product)
        for kind, product in kinds
    } - {None}
    if not channels:
        return []
    first = (
        select(H.request_id, H.channel, H.to_version, func.min(H.at).label("at"))
        .where(H.channel.in_(channels), H.action == "publish", H.at <= as_of)
        .group_by(H.request_id, H.channel, H.to_version)
        .subquery()
    )
    published = session.execute(
        select(first.c.request_id, first.c.channel, first.c.to_version, Release.kind, first.c.at)
        .join(Release, Release.version == first.c.to_version)
        .where(first.c.at >= start, first.c.at < end)
    ).all()
    named = {p.request_id for p in published}
    if not named:
        return []
    served_by: dict[str, list[str]] = defaultdict(list)  # request a publication names → requests it delivers
    named_ids = func.unnest(ids(named)).table_valued("id").render_derived()
    of_customer = (R.customer_id == customer_id, R.created_at <= as_of)
    for request_id in session.scalars(select(R.id).join(named_ids, R.id == named_ids.c.id).where(*of_customer)):
        served_by[request_id].append(request_id)
    for request_id, primary in session.execute(
        select(R.id, R.duplicate_of_id).where(*of_customer, R.duplicate_of_id.is_not(None))
    ):
        if primary in named:
            served_by[primary].append(request_id)
    unknown = {r for rs in served_by.values() for r in rs} - taken_on.keys()
    taken_on = taken_on | dict(
        session.execute(
            select(A.request_id, func.min(A.occurred_at))
            .where(
                A.request_id == any_(ids(unknown)),
                A.entity_type == "request",
                A.action.in_(figures.TAKEN_ON),
                A.occurred_at <= as_of,
            )
            .group_by(A.request_id)
        ).all()
    )
    delivered = [
        ReleaseDelivered(
            request_id=request_id,
            kind=kind,
            version=version,
            channel=channel,
            accepted_at=taken_on[request_id],
            delivered_at=at,
            hours_to_deliver=figures.hours_between(taken_on[request_id], at),
        )
        for named_id, channel, version, kind, at in published
        for request_id in served_by[named_id]
        if taken_on.get(request_id) is not None and taken_on[request_id] <= at
    ]
    return sorted(delivered, key=lambda d: (d.delivered_at, d.request_id))


def ids(values: Iterable[str]):
    """Many ids as one array parameter, not a parameter each: used as an index condition (`= ANY(...)`, each id
    looked up) or joined (`unnest`). Never as a row filter: once psycopg prepares the statement (its fifth run),
    Postgres may pick a generic plan that searches the array linearly for every row."""
    return literal(sorted(values), ARRAY(String))


def healthchecks_of(session: Session, *, customer_id: str, period: Period) -> list[HealthCheckSummary]:
    """The customer's Health Checks dated in the period, and the latest one before it that was not cancelled —
    each with its nonconformities and recommendations (`listed`)."""
    H = HealthCheck
    rows = session.execute(
        select(H.id, H.scheduled_on, H.status, Person.name)
        .join(Person, Person.id == H.engineer_id)
        .where(H.customer_id == customer_id, H.scheduled_on <= period.end)
        .order_by(H.scheduled_on, H.id)
    ).all()
    before = [r for r in rows if r.scheduled_on < period.start and r.status != "cancelled"]
    chosen = before[-1:] + [r for r in rows if r.scheduled_on >= period.start]
    findings: dict[int, list[FindingOut]] = defaultdict(list)
    for finding in session.scalars(
        select(HealthCheckFinding)
        .where(HealthCheckFinding.healthcheck_id.in_([r.id for r in chosen]))
        .order_by(HealthCheckFinding.id)
    ):
        findings[finding.healthcheck_id].append(FindingOut.model_validate(finding))
    summaries = []
    for r in chosen:
        shown = listed(findings[r.id])
        summaries.append(
            HealthCheckSummary(
                id=r.id,
                scheduled_on=r.scheduled_on,
                status=r.status,
                engineer=r.name,
                findings=len(findings[r.id]),
                findings_by_severity=figures.counted([f.severity for f in findings[r.id]], FINDING_SEVERITIES),
                nonconformities=shown,
                findings_not_listed=len(findings[r.id]) - len(shown),
            )
        )
    return summaries


def listed(findings: list[FindingOut]) -> list[FindingOut]:
    """The findings a report lists, most serious first (then as recorded): every critical and high one, then
    medium and low ones while fewer than `FINDINGS_LISTED` are listed — the Health Check report has them all."""
    ordered = sorted(findings, key=lambda f: FINDING_SEVERITIES.index(f.severity))
    serious = [f for f in ordered if f.severity in FINDINGS_ALWAYS]
    return serious + [f for f in ordered if f.severity not in FINDINGS_ALWAYS][: max(0, FINDINGS_LISTED - len(serious))]


# --- the daily digest ---------------------------------------------------------------------------------------


def daily_digest(session: Session, *, actor: Person, as_of: datetime | None, config: AppConfig) -> DailyDigest:
    """The digest a person may read: staff every customer they see (a TAM theirs), a customer's user their own."""
    access.authorize(actor, "report.read")
    visible = access.visible_customer_ids(session, actor)
    return build_daily_digest(
        session,
        customer_ids=None if visible is None else set(visible),
        as_of=as_of or db_now(session),
        config=config,
    )


def build_daily_digest(
    session: Session, *, customer_ids: set[str] | None, as_of: datetime, config: AppConfig
) -> DailyDigest:
    """Severity 1–2 requests of these customers (None: all) that are open (`DIGEST_OPEN`), or changed (an event of
    its own a customer would see, `OWN_CHANGE`) in the 24 h before `as_of`; most urgent first (severity, then due
    time)."""
    since = as_of - DIGEST_WINDOW
    R, A = ReleaseRequest, AuditEvent
    changed = exists().where(A.request_id == R.id, OWN_CHANGE, A.occurred_at > since, A.occurred_at <= as_of)
    query = (
        select(
            R.id, R.kind, R.severity, R.channel, R.status, R.received_at, R.customer_id, R.title, R.product, Person.name
        )
        .outerjoin(Person, Person.id == R.owner_id)
        .where(R.severity.in_(DIGEST_SEVERITIES), R.created_at <= as_of, or_(R.status.in_(DIGEST_OPEN), changed))
    )
    if customer_ids is not None:
        query = query.where(R.customer_id.in_(customer_ids))
    requests = session.execute(query).all()
    ids = [r.id for r in requests]
    customers = {
        c.id: (c, c.calendar())
        for c in session.scalars(select(Customer).where(Customer.id.in_({r.customer_id for r in requests})))
    }
    events = request_events(session, request_ids=ids, as_of=as_of)
    last_change = dict(
        session.execute(
            select(A.request_id, func.max(A.occurred_at))
            .where(A.request_id.in_(ids), OWN_CHANGE, A.occurred_at <= as_of)
            .group_by(A.request_id)
        ).all()
    )
    stages = _stages_in_progress(session, ids)
    rows = []
    for r in requests:
        customer, cal = customers[r.customer_id]
        assessed = figures.assess(
            RequestFacts(*r[:6]),
            events.get(r.id, ()),
            policy_for=lambda severity, tier=customer.tier: config.severity.for_request(severity=severity, tier=tier),
            cal=cal,
            as_of=as_of,
        )
        status = assessed.status
        detail = stages.get(r.id) if status in (Status.awaiting_approval, Status.releasing) else None
        if status == Status.released:
            last = config.stages.pipeline_for(r.kind)[1].stages[-1]  # where a released fix is now
            detail = stage_channel(config, kind=r.kind, stage=last, customer_id=r.customer_id, product=r.product)
        rows.append(
            DigestRow(
                request_id=r.id,
                customer_id=r.customer_id,
                customer_name=customer.name,
                severity=assessed.row.severity,
                kind=r.kind,
                title=r.title,
                status=status,
                owner=r.name,
                sla_state=sla_state(assessed),
                due_at=assessed.row.due_at,
                changed_at=last_change.get(r.id, r.received_at),
                next_step=figures.next_step(status, detail),
                next_step_detail=detail,
            )
        )
    far = datetime.max.replace(tzinfo=as_of.tzinfo)
    rows.sort(key=lambda d: (d.severity, d.due_at or far, d.request_id))
    only = next(iter(customer_ids)) if customer_ids is not None and len(customer_ids) == 1 else None
    return DailyDigest(as_of=as_of, since=since, customer_id=only, rows=rows)


def sla_state(assessed: Assessed) -> str | None:
    """The clock's state, but `withdrawn` for a request cancelled before any answer (the clock calls it met)."""
    if assessed.row.sla == "withdrawn":
        return "withdrawn"
    return assessed.sla.state if assessed.sla else None


def _stages_in_progress(session: Session, request_ids: Iterable[str]) -> dict[str, str]:
    """The stage each request waits on (sign-off) or is publishing, from its newest stage run."""
    runs = session.execute(
        select(StageRun.request_id, StageRun.stage)
        .where(StageRun.request_id.in_(list(request_ids)), StageRun.status.in_(("awaiting", "publishing")))
        .order_by(StageRun.id)
    ).all()
    return {request_id: stage for request_id, stage in runs}
