"""The customer report and the daily digest: what to read, for whom; the figures themselves are in `figures`.

Reading is shaped by the report's size (100,000 requests and 1,000,000 audit events answer one customer's
quarter within a second, `bench/report_bench.py`): the period's requests come from the
`(customer_id, received_at)` index, their request events from the `audit_events.request_id` index in one
query that selects only the columns and JSON keys the figures read (no ORM object per event), and every
other table is read once for the whole report, never per request.

`customer_report` and `daily_digest` apply the permission table and visibility (another customer's report
is *not found*, like an unknown customer); `build_customer_report` and `build_daily_digest` are the trusted
primitives the scheduled sender (`reports.delivery`) calls for the recipients it has chosen.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.models import AuditEvent
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.customers.models import Customer
from release_requests.customers.service import customer_for, get_customer
from release_requests.errors import InvalidInput
from release_requests.healthchecks.models import HealthCheck, HealthCheckFinding
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
from release_requests.requests.states import OPEN_STATES, Status

FINDING_SEVERITIES = ("critical", "high", "medium", "low")
DIGEST_SEVERITIES = (1, 2)
DIGEST_WINDOW = timedelta(hours=24)
# still in the digest every day: open, except released (the fix reached the customer; only closing is left), which
# shows on the day it changed
DIGEST_OPEN = OPEN_STATES - {Status.released}


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
    """The report of the requests received in `period` (local days in the customer's zone), as the log stood
    at `as_of` (default: the database's now): the same `as_of` always gives the same figures."""
    customer = get_customer(session, customer_id=customer_id)
    as_of = as_of or db_now(session)
    cal = customer.calendar()
    start, end = utc_range(period, cal.zone)
    R = ReleaseRequest
    of_period = (R.customer_id == customer.id, R.received_at >= start, R.received_at < end, R.created_at <= as_of)
    requests = session.execute(
        select(R.id, R.kind, R.severity, R.channel, R.status, R.received_at, R.product, R.duplicate_of_id)
        .where(*of_period)
        .order_by(R.received_at, R.id)
    ).all()
    events = request_events(session, request_ids=select(R.id).where(*of_period), as_of=as_of)

    def policy_for(severity: int):
        return config.severity.for_request(severity=severity, tier=customer.tier)

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
            session, config=config, customer_id=customer.id, requests=requests, assessed=assessed, as_of=as_of
        ),
        healthchecks=healthchecks_of(session, customer_id=customer.id, period=period),
        notes=notes_for(session, customer_id=customer.id, period=period),
    )


def request_events(session: Session, *, request_ids: Select | list[str], as_of: datetime) -> dict[str, list[Event]]:
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
    requests: list,
    assessed: list[Assessed],
    as_of: datetime,
) -> list[ReleaseDelivered]:
    """The releases that reached the customer's own channel for the period's requests, first publication of each.

    A publication names the request whose build it is; a duplicate request is served by its primary's build,
    so a publication of the primary's build to this customer's channel delivers the duplicate too.
    """
    served_by: dict[str, list[str]] = defaultdict(list)  # request a publication names → requests it delivers
    channels = set()
    for r in requests:
        served_by[r.id].append(r.id)
        if r.duplicate_of_id:
            served_by[r.duplicate_of_id].append(r.id)
        channel = stage_channel(
            config, kind=r.kind, stage=own_stage(config, r.kind), customer_id=customer_id, product=r.product
        )
        if channel:
            channels.add(channel)
    if not channels:
        return []
    H = ChannelHistory
    rows = session.execute(
        select(H.request_id, H.channel, H.to_version, Release.kind, func.min(H.at))
        .join(Release, Release.version == H.to_version)
        .where(H.channel.in_(channels), H.action == "publish", H.request_id.in_(list(served_by)), H.at <= as_of)
        .group_by(H.request_id, H.channel, H.to_version, Release.kind)
    ).all()
    accepted = {a.row.request_id: a.accepted_at for a in assessed}
    delivered = [
        ReleaseDelivered(
            request_id=request_id,
            kind=kind,
            version=version,
            channel=channel,
            accepted_at=accepted[request_id],
            delivered_at=at,
            hours_to_deliver=figures.hours_between(accepted[request_id], at),
        )
        for named, channel, version, kind, at in rows
        for request_id in served_by[named]
    ]
    return sorted(delivered, key=lambda d: (d.delivered_at, d.request_id))


def healthchecks_of(session: Session, *, customer_id: str, period: Period) -> list[HealthCheckSummary]:
    """The customer's Health Checks dated in the period, and the latest one before it that was not cancelled."""
    H = HealthCheck
    rows = session.execute(
        select(H.id, H.scheduled_on, H.status, Person.name)
        .join(Person, Person.id == H.engineer_id)
        .where(H.customer_id == customer_id, H.scheduled_on <= period.end)
        .order_by(H.scheduled_on, H.id)
    ).all()
    before = [r for r in rows if r.scheduled_on < period.start and r.status != "cancelled"]
    chosen = before[-1:] + [r for r in rows if r.scheduled_on >= period.start]
    F = HealthCheckFinding
    findings: dict[int, Counter] = defaultdict(Counter)
    for healthcheck_id, severity, count in session.execute(
        select(F.healthcheck_id, F.severity, func.count())
        .where(F.healthcheck_id.in_([r.id for r in chosen]))
        .group_by(F.healthcheck_id, F.severity)
    ):
        findings[healthcheck_id][severity] = count
    return [
        HealthCheckSummary(
            id=r.id,
            scheduled_on=r.scheduled_on,
            status=r.status,
            engineer=r.name,
            findings=sum(findings[r.id].values()),
            findings_by_severity=figures.counted(list(findings[r.id].elements()), FINDING_SEVERITIES),
        )
        for r in chosen
    ]


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
    """Severity 1–2 requests of these customers (None: all) that are open (`DIGEST_OPEN`), or changed (any audit
    event) in the 24 h before `as_of`; most urgent first (severity, then due time)."""
    since = as_of - DIGEST_WINDOW
    R, A = ReleaseRequest, AuditEvent
    changed = exists().where(A.request_id == R.id, A.occurred_at > since, A.occurred_at <= as_of)
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
            .where(A.request_id.in_(ids), A.occurred_at <= as_of)
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
                sla_state=assessed.sla.state if assessed.sla else None,
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


def _stages_in_progress(session: Session, request_ids: Iterable[str]) -> dict[str, str]:
    """The stage each request waits on (sign-off) or is publishing, from its newest stage run."""
    runs = session.execute(
        select(StageRun.request_id, StageRun.stage)
        .where(StageRun.request_id.in_(list(request_ids)), StageRun.status.in_(("awaiting", "publishing")))
        .order_by(StageRun.id)
    ).all()
    return {request_id: stage for request_id, stage in runs}
