"""Paging: a severity 1–2 request that no TAM at work takes wakes the person on duty at once, and climbs the
escalation chain (`paging.chain`) until somebody acknowledges it.

Every function takes the caller's session and commits nothing, except `escalate_due`, which the every-minute
watcher calls with a session factory and runs each page in its own transaction. A page is one row per request
(`pages.request_id` is its key, inserted with ON CONFLICT DO NOTHING): a retried intake or two watchers at once
never page twice. Each step is audited on the request (staff-only on its timeline) and its notices are outbox
rows keyed by the step, so a step is sent once:

- the paged person: `page.sent` by Slack DM (when they have a Slack id) AND by e-mail (when they have an
  address) — both, a phone buzzes twice rather than never;
- the paging service: one `page.pager` row (channel `pager`, address "pager"), whose context is the Events v2
  action (`trigger` | `acknowledge` | `resolve`), the deduplication key and facts we wrote ourselves (severity,
  customer name, who is paged, which step) — never the customer's title or description: the paging service
  is a third party. Its outbox keys: `trigger` (first step), `step{n}` (each escalation re-triggers the same
  incident with the new person), `acknowledge`, `resolve`.

No one on duty and no fallback is itself an alert (`duty.nobody_on_duty`) to every person who may take duty
and the internal channel, logged at error level; the head of support, when configured, is paged all the same.

An acknowledgement stops the climb, not the SLA clock: only a qualified answer meets that (`sla.service`). Once
the clock is met, or the request is no longer open, the watcher resolves the page — an exhausted one too, so the
paging service's incident never stays open for a request nobody needs to be woken for any more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from release_requests import access
from release_requests.audit.service import Actor, record, timeline
from release_requests.clock import db_now
from release_requests.config import AppConfig, get_config
from release_requests.customers.models import Customer
from release_requests.db import transaction
from release_requests.errors import Conflict, InvalidInput, NotFound
from release_requests.notifications.service import Recipient, notify, person_recipients, queue
from release_requests.paging import chain as chains
from release_requests.paging.models import PAGE_STATUSES, Page
from release_requests.people.models import Person
from release_requests.people.service import actor_of, find_person
from release_requests.requests.lifecycle import get_visible
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.states import OPEN_STATES
from release_requests.routing.models import DutyFallback
from release_requests.routing.service import RoutingDecision, choose_owner, duty_overview
from release_requests.sla.service import facts_from_events, status_of

log = logging.getLogger(__name__)

PAGING = Actor.system("paging")
PAGER = Recipient("internal", "pager", "pager")  # the Events v2 webhook: rows name it, the URL stays in settings
ACK_VIA = ("slack", "cli", "api", "web")
WATCHED = ("paging", "acknowledged", "exhausted")  # what the watcher looks at: all but resolved
MAX_ACK_MINUTES = 1440  # the most config/paging.toml allows; the wait when it lists no severity at all


def ack_minutes(config: AppConfig, severity: int) -> int:
    """Minutes a step of a page of `severity` waits for an acknowledgement. A severity taken out of
    `ack_minutes` while one of its pages is live waits the longest configured time: the page still climbs,
    at the slowest pace the team chose, rather than stopping or waking people faster than for any severity."""
    configured = config.paging.ack_minutes
    return configured.get(str(severity)) or max(configured.values(), default=MAX_ACK_MINUTES)


def dedup_key(request_id: str) -> str:
    """The paging service's incident key: one request, one incident, however often it is re-sent."""
    return f"release-requests/{request_id}"


def _audit_page(
    session: Session,
    request_id: str,
    action: str,
    *,
    actor: Actor = PAGING,
    before: dict | None = None,
    after: dict | None = None,
    reason: str | None = None,
) -> None:
    """One step of a page, in the audit log under the page (keyed by its request) and on the request's timeline."""
    record(
        session,
        actor=actor,
        action=action,
        entity_type="page",
        entity_id=request_id,
        request_id=request_id,
        before=before,
        after=after,
        reason=reason,
    )


# --------------------------------------------------------------------------------------------------
# Who may be paged


def head_of_support(session: Session, *, config: AppConfig) -> tuple[Person | None, str | None]:
    """The configured head of support if they may end a chain, and the problem with the setting if any."""
    ref = config.paging.head_of_support.strip()
    if not ref:
        return None, None
    try:
        person = find_person(session, ref=ref)
    except NotFound:
        person = None
    problem = chains.head_of_support_problem(ref, person)
    return (None, problem) if problem else (person, None)


def _fallback(session: Session) -> Person | None:
    row = session.get(DutyFallback, 1)
    return session.get(Person, row.person_id) if row is not None else None


def _duty_people(session: Session) -> list[Person]:
    """Everybody active whose role takes duty: who must hear that nobody does."""
    roles = sorted(access.rule("duty.serve").roles)
    return list(
        session.scalars(select(Person).where(Person.active.is_(True), Person.role.in_(roles)).order_by(Person.id))
    )


def _team_recipients(session: Session, config: AppConfig) -> list[Recipient]:
    """The internal Slack channel and every duty-taking person: who hears that paging failed."""
    channel = Recipient("internal", "slack", config.notifications.internal.slack_channel)
    return list(dict.fromkeys([channel, *(r for p in _duty_people(session) for r in person_recipients(p, via="all"))]))


# --------------------------------------------------------------------------------------------------
# Starting a page


def _pager_row(session: Session, *, page: Page, customer: Customer, action: str, key: str, at: datetime) -> None:
    paged = session.get(Person, page.paged_person_id) if page.paged_person_id else None
    context = {
        "action": action,
        "dedup_key": page.dedup_key,
        "severity": page.severity,
        "customer": customer.name,
        "paged": paged.name if paged else None,
        "step": page.step + 1,
    }
    queue(session, request_id=page.request_id, event="page.pager", recipient=PAGER, context=context, at=at, key=key)


def _page_step(
    session: Session,
    *,
    page: Page,
    request: ReleaseRequest,
    customer: Customer,
    config: AppConfig,
    why: str,
    at: datetime,
    pager_key: str,
) -> None:
    """Wake the person at `page.step`: their Slack DM and e-mail, the paging service, the audit event."""
    current = page.chain[page.step]
    person = session.get(Person, current["person_id"])
    minutes = ack_minutes(config, page.severity)
    sla = status_of(session, request=request, config=config, now=at)
    context = {
        "customer": customer.name,
        "severity": page.severity,
        "paged": person.name,
        "role": current["role"],
        "step": page.step + 1,
        "steps": len(page.chain),
        "why": why,
        "ack_minutes": minutes,
        # in the paged person's own zone: they read it at 02:00 on a phone
        "escalate_at_local": page.escalate_at.astimezone(ZoneInfo(person.timezone or "UTC")).strftime(
            "%Y-%m-%d %H:%M %Z"
        ),
        "due_at_local": sla.due_at_local if sla else None,
    }
    media = []
    for recipient in person_recipients(person, via="all"):
        queue(
            session,
            request_id=request.id,
            event="page.sent",
            recipient=recipient,
            context=context,
            at=at,
            key=f"step{page.step}",
        )
        media.append(recipient.channel)
    _pager_row(session, page=page, customer=customer, action="trigger", key=pager_key, at=at)
    _audit_page(
        session,
        request.id,
        "page.sent",
        after={
            "step": page.step + 1,
            "of": len(page.chain),
            "person_id": person.id,
            "person": person.name,
            "role": current["role"],
            "via": [*media, "pager"],
            "escalate_at": page.escalate_at,
        },
        reason=why,
    )


def _alert_nobody_on_duty(
    session: Session,
    *,
    request: ReleaseRequest,
    customer: Customer,
    routing: RoutingDecision,
    head: Person | None,
    config: AppConfig,
    at: datetime,
) -> None:
    context = {
        "customer": customer.name,
        "severity": request.severity,
        "reason": routing.reason,
        "head_of_support": head.name if head else None,
    }
    recipients = _team_recipients(session, config)
    for recipient in recipients:
        queue(session, request_id=request.id, event="duty.nobody_on_duty", recipient=recipient, context=context, at=at)
    record(
        session,
        actor=PAGING,
        action="duty.nobody_on_duty",
        entity_type="duty",
        entity_id="rotation",
        request_id=request.id,
        after={"severity": request.severity, "told": [r.address for r in recipients]},
        reason=routing.reason,
    )
    log.error(
        "nobody on duty for %s (severity %s): %s",
        request.id,
        request.severity,
        routing.reason,
        extra={"request_id": request.id, "severity": request.severity, "event": "duty.nobody_on_duty"},
    )


def _record_exhausted(session: Session, *, request_id: str, after: dict, why: str) -> None:
    """Nobody is left to wake: audited on the request and logged at error level (what operators alert on)."""
    _audit_page(
        session,
        request_id,
        "page.exhausted",
        after=after,
        reason=why,
    )
    log.error("page of %s exhausted: %s", request_id, why, extra={"request_id": request_id, "event": "page.exhausted"})


def _routing_now(
    session: Session, *, request: ReleaseRequest, routing: RoutingDecision, config: AppConfig, at: datetime
) -> RoutingDecision:
    """Who the page wakes. Routing judged the moment the customer reached us; a call logged later than a step's
    acknowledgement window (a call at 02:00 on Sunday typed in at 09:00 on Monday) pages whoever is on duty
    now instead — the manager of that night is asleep or off, and the page would only climb past them — and
    a TAM of the customer at work now takes it without a page."""
    window = ack_minutes(config, request.severity)
    late = int((at - request.received_at).total_seconds() // 60)
    if late <= window:
        return routing
    now = choose_owner(session, customer_id=request.customer_id, at=at)
    why = f"logged {late} min after the customer reached us (a step waits {window} min): paging who is on duty now"
    return RoutingDecision(now.owner, f"{why}; {now.reason}", now.basis)


def start_page(
    session: Session, *, request: ReleaseRequest, routing: RoutingDecision, config: AppConfig, at: datetime
) -> Page | None:
    """Page whoever must take `request` now, if it pages: a severity in `[paging] severities` that no TAM at
    work takes (`routing.basis` is not `tam`). `routing` is the request's, judged when the customer reached us;
    a request logged late is paged as routing decides at `at` (`_routing_now`).
    Returns the page started now; None when the request does not page or already has its page (nothing is
    sent twice)."""
    if request.severity not in config.paging.severities:
        return None
    routing = _routing_now(session, request=request, routing=routing, config=config, at=at)
    if routing.basis == "tam":
        return None
    customer = session.get(Customer, request.customer_id)
    head, problem = head_of_support(session, config=config)
    if problem:
        log.error("paging: %s", problem, extra={"request_id": request.id, "event": "page.misconfigured"})
    chain = chains.build_chain(routed=routing.owner, basis=routing.basis, fallback=_fallback(session), head=head)
    minutes = ack_minutes(config, request.severity)
    first = chain[0] if chain else None
    inserted = session.execute(
        insert(Page)
        .values(
            request_id=request.id,
            dedup_key=dedup_key(request.id),
            severity=request.severity,
            status="paging" if first else "exhausted",
            chain=chain,
            step=0,
            paged_person_id=first["person_id"] if first else None,
            paged_at=at,
            escalate_at=at + timedelta(minutes=minutes) if first else None,
            version=1,
        )
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(Page.request_id)
    ).scalar_one_or_none()
    if inserted is None:
        return None
    page = session.get(Page, request.id)
    nobody = routing.owner is None or not routing.owner.active
    if nobody:
        _alert_nobody_on_duty(
            session, request=request, customer=customer, routing=routing, head=head, config=config, at=at
        )
    _audit_page(
        session,
        request.id,
        "page.started",
        after={
            "dedup_key": page.dedup_key,
            "severity": page.severity,
            "chain": chain,
            "ack_minutes": minutes,
            **({"head_of_support_problem": problem} if problem else {}),
        },
        reason=routing.reason,
    )
    if first is None:
        why = "nobody to page: no one on duty, no fallback, no head of support"
        _record_exhausted(session, request_id=request.id, after={"steps": 0}, why=why)
        return page
    _page_step(
        session,
        page=page,
        request=request,
        customer=customer,
        config=config,
        why=routing.reason,
        at=at,
        pager_key="trigger",
    )
    return page


# --------------------------------------------------------------------------------------------------
# The climb (every minute, from the SLA watcher's flow)


@dataclass(frozen=True)
class Escalation:
    """What one watcher pass did to one page: `escalated` to `to`, `exhausted` (nobody left), or `resolved`
    (the request was answered or is no longer open)."""

    request_id: str
    outcome: Literal["escalated", "exhausted", "resolved"]
    at: datetime
    from_person: str | None = None
    to_person: str | None = None
    step: int | None = None  # 1-based step paged now (escalated)


def _resolve(session: Session, *, page: Page, customer: Customer, why: str, at: datetime) -> Escalation:
    before = page.status
    page.status, page.resolved_at, page.escalate_at, page.updated_at = "resolved", at, None, at
    _audit_page(
        session,
        page.request_id,
        "page.resolved",
        before={"status": before},
        after={"status": "resolved"},
        reason=why,
    )
    _pager_row(session, page=page, customer=customer, action="resolve", key="resolve", at=at)
    return Escalation(page.request_id, "resolved", at)


def next_step(session: Session, *, page: Page) -> int | None:
    """The index in the chain of who is paged next if nobody acknowledges in time (people deactivated since the
    chain was fixed are skipped); None when nobody is left and the page would be exhausted."""
    inactive = set(
        session.scalars(
            select(Person.id).where(Person.id.in_([e["person_id"] for e in page.chain]), Person.active.is_(False))
        )
    )
    return chains.next_step(page.chain, page.step, inactive=inactive)


def _escalate(
    session: Session, *, page: Page, request: ReleaseRequest, customer: Customer, config: AppConfig, at: datetime
) -> Escalation:
    current = page.chain[page.step]
    waited = int((at - page.paged_at).total_seconds() // 60)
    following = next_step(session, page=page)
    if following is None:
        page.status, page.escalate_at, page.updated_at = "exhausted", None, at
        context = {
            "customer": customer.name,
            "severity": page.severity,
            "steps": len(page.chain),
            "chain": ", ".join(f"{e['name']} ({e['role']})" for e in page.chain),
            "minutes": waited,
        }
        _record_exhausted(
            session,
            request_id=request.id,
            after={"steps": len(page.chain), "last": current["name"], "unacknowledged_minutes": waited},
            why=f"nobody of {context['chain']} acknowledged in {waited} min; nobody is left in the chain",
        )
        for recipient in _team_recipients(session, config):
            queue(session, request_id=request.id, event="page.exhausted", recipient=recipient, context=context, at=at)
        return Escalation(request.id, "exhausted", at, from_person=current["name"])
    nxt = page.chain[following]
    minutes = ack_minutes(config, page.severity)
    why = f"{current['name']} ({current['role']}) did not acknowledge in {minutes} min"
    before = {"step": page.step + 1, "person": current["name"], "role": current["role"]}
    page.step, page.paged_person_id = following, nxt["person_id"]
    page.escalate_at, page.updated_at = at + timedelta(minutes=minutes), at
    _audit_page(
        session,
        request.id,
        "page.escalated",
        before=before,
        after={
            "step": following + 1,
            "person_id": nxt["person_id"],
            "person": nxt["name"],
            "role": nxt["role"],
            "unacknowledged_minutes": waited,
        },
        reason=why,
    )
    _page_step(
        session,
        page=page,
        request=request,
        customer=customer,
        config=config,
        why=why,
        at=at,
        pager_key=f"step{following}",
    )
    return Escalation(request.id, "escalated", at, current["name"], nxt["name"], following + 1)


def _watch_page(session: Session, *, request_id: str, config: AppConfig, now: datetime) -> Escalation | None:
    page = session.scalar(
        select(Page).where(Page.request_id == request_id, Page.status.in_(WATCHED)).with_for_update(skip_locked=True)
    )
    if page is None:  # another watcher holds it, or it changed since the list was read
        return None
    request = session.get(ReleaseRequest, request_id)
    customer = session.get(Customer, request.customer_id)
    facts = facts_from_events(timeline(session, request_id=request_id))
    if facts is not None and facts.met_at is not None:
        return _resolve(session, page=page, customer=customer, why="a qualified answer met the SLA clock", at=now)
    if request.status not in OPEN_STATES:
        return _resolve(session, page=page, customer=customer, why=f"the request is {request.status}", at=now)
    if page.status == "paging" and page.escalate_at is not None and page.escalate_at <= now:
        return _escalate(session, page=page, request=request, customer=customer, config=config, at=now)
    return None


def escalate_due(
    sessions: sessionmaker[Session], *, config: AppConfig, now: datetime | None = None
) -> list[Escalation]:
    """One pass over the pages not yet resolved, each in its own transaction with its row locked (FOR UPDATE SKIP
    LOCKED: two watchers never move one page twice): an answered or closed request resolves its page
    (acknowledged and exhausted ones too, so the paging service's incident closes); an unacknowledged page past
    its time climbs one step, or is exhausted. A page that fails (a person's broken time zone, a bad row) is
    rolled back and logged with its request id, and the pass goes on: one bad page must not stop the climb of
    every page after it. It is tried again next pass. Time is the database's unless a test pins `now`."""
    with transaction(sessions) as session:
        ids = list(session.scalars(select(Page.request_id).where(Page.status.in_(WATCHED)).order_by(Page.paged_at)))
    done = []
    for request_id in ids:
        try:
            with transaction(sessions) as session:
                outcome = _watch_page(session, request_id=request_id, config=config, now=now or db_now(session))
        except Exception:  # noqa: BLE001 — any failure of one page is logged; the others still climb
            log.exception(
                "paging: the page of %s could not be watched; it is tried again next pass",
                request_id,
                extra={"request_id": request_id, "event": "page.watch_failed"},
            )
            continue
        if outcome is not None:
            done.append(outcome)
    return done


# --------------------------------------------------------------------------------------------------
# People: acknowledge, read


def _locked_page(session: Session, *, actor: Person, request_id: str) -> Page:
    request = get_visible(session, actor=actor, request_id=request_id)
    page = session.scalar(select(Page).where(Page.request_id == request.id).with_for_update())
    if page is None:
        raise NotFound(f"request {request.id} has no page (it did not need to wake anybody)")
    return page


def acknowledge(
    session: Session,
    *,
    actor: Person,
    request_id: str,
    via: Literal["slack", "cli", "api", "web"],
    config: AppConfig | None = None,
) -> Page:
    """`actor` takes the page: the climb stops (the paging service hears `acknowledge`, the team a short notice).
    The SLA clock runs on until a qualified answer; the request itself is not touched. An exhausted page may
    still be taken. Conflict when it was already acknowledged (naming who and when) or resolved; NotFound when
    the request has none (or is not visible). `config` names the internal channel (default: the installation's)."""
    access.authorize(actor, "page.acknowledge")
    if via not in ACK_VIA:
        raise InvalidInput(f"unknown via '{via}' (one of: {', '.join(ACK_VIA)})", field="via")
    page = _locked_page(session, actor=actor, request_id=request_id)
    if page.status == "acknowledged":
        who = session.get(Person, page.acknowledged_by_id)
        raise Conflict(
            f"the page of {page.request_id} was already acknowledged by {who.name if who else 'somebody'} "
            f"at {page.acknowledged_at.isoformat()} (via {page.acknowledged_via})",
            acknowledged_by=who.name if who else None,
            acknowledged_at=page.acknowledged_at.isoformat(),
            acknowledged_via=page.acknowledged_via,
        )
    if page.status == "resolved":
        raise Conflict(f"the page of {page.request_id} was resolved at {page.resolved_at.isoformat()}: it was answered")
    at = db_now(session)
    before = {"status": page.status, "step": page.step + 1}
    page.status, page.escalate_at, page.updated_at = "acknowledged", None, at
    page.acknowledged_by_id, page.acknowledged_at, page.acknowledged_via = actor.id, at, via
    _audit_page(
        session,
        page.request_id,
        "page.acknowledged",
        actor=actor_of(actor),
        before=before,
        after={"status": "acknowledged", "by": actor.name, "via": via},
    )
    request = session.get(ReleaseRequest, page.request_id)
    customer = session.get(Customer, request.customer_id)
    _pager_row(session, page=page, customer=customer, action="acknowledge", key="acknowledge", at=at)
    notify(
        session,
        request=request,
        event="page.acknowledged",
        targets=["internal_channel"],
        config=config or get_config(),
        at=at,
        context={"customer": customer.name, "severity": page.severity, "by": actor.name, "via": via},
    )
    return page


def page_of(session: Session, *, actor: Person, request_id: str) -> Page:
    """The page of a request the actor can see; NotFound when there is none."""
    access.authorize(actor, "page.read")
    request = get_visible(session, actor=actor, request_id=request_id)
    page = session.get(Page, request.id)
    if page is None:
        raise NotFound(f"request {request.id} has no page (it did not need to wake anybody)")
    return page


def list_pages(session: Session, *, actor: Person, status: str | None, limit: int) -> list[Page]:
    """Pages, newest first; a TAM sees those of their customers' requests only."""
    access.authorize(actor, "page.read")
    if status is not None and status not in PAGE_STATUSES:
        raise InvalidInput(f"unknown status '{status}' (one of: {', '.join(PAGE_STATUSES)})", field="status")
    query = select(Page)
    visible = access.visible_customer_ids(session, actor)
    if visible is not None:
        query = query.join(ReleaseRequest, ReleaseRequest.id == Page.request_id).where(
            ReleaseRequest.customer_id.in_(visible)
        )
    if status is not None:
        query = query.where(Page.status == status)
    return list(session.scalars(query.order_by(Page.paged_at.desc(), Page.request_id).limit(limit)))


@dataclass(frozen=True)
class Unacknowledged:
    status: str  # paging | exhausted
    paged: str | None  # who is paged now (exhausted: the last one paged; None: nobody could be)


def unacknowledged(session: Session, *, actor: Person, request_ids: list[str]) -> dict[str, Unacknowledged]:
    """Of `request_ids`, those whose page nobody has taken yet (paging or exhausted), with who is paged now: the
    console's queue marks them. One query however many requests: the queue asks for a whole page of them."""
    access.authorize(actor, "page.read")
    if not request_ids:
        return {}
    query = (
        select(Page.request_id, Page.status, Person.name)
        .join(ReleaseRequest, ReleaseRequest.id == Page.request_id)
        .outerjoin(Person, Person.id == Page.paged_person_id)
        .where(Page.request_id.in_(request_ids), Page.status.in_(("paging", "exhausted")))
    )
    visible = access.visible_customer_ids(session, actor)
    if visible is not None:
        query = query.where(ReleaseRequest.customer_id.in_(visible))
    return {request_id: Unacknowledged(status, name) for request_id, status, name in session.execute(query)}


# --------------------------------------------------------------------------------------------------
# The rotation, checked ahead (`relreq duty check`)


@dataclass(frozen=True)
class Gap:
    starts_at: datetime
    ends_at: datetime
    covered_by: Person | None  # the duty fallback; None: nobody takes a request filed then


@dataclass(frozen=True)
class DutyCheck:
    at: datetime
    until: datetime
    gaps: list[Gap]
    fallback: Person | None  # None also when the one set is deactivated or may no longer take duty
    head_of_support: Person | None
    problems: list[str]  # what is wrong with the settings (a fallback or head of support who cannot be paged)

    @property
    def nobody(self) -> bool:
        """Some span of the period has nobody to take a request (the check's failure)."""
        return any(g.covered_by is None for g in self.gaps)


def check_rotation(session: Session, *, actor: Person, at: datetime, days: int, config: AppConfig) -> DutyCheck:
    """The spans of the next `days` days no duty shift covers, each with who takes it then (the fallback) or
    nobody; and what is wrong with the fallback or head-of-support setting."""
    overview = duty_overview(session, actor=actor, at=at, days=days, leave_days=0)
    problems = []
    fallback = overview.fallback
    if fallback is not None and not (fallback.active and access.allows(fallback, "duty.serve")):
        problems.append(f"the duty fallback {fallback.name} is deactivated or may no longer take duty")
        fallback = None
    head, problem = head_of_support(session, config=config)
    if problem:
        problems.append(problem)
    gaps = [Gap(start, end, fallback) for start, end in overview.gaps]
    return DutyCheck(at, overview.until, gaps, fallback, head, problems)
