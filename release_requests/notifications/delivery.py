"""Delivering the outbox: claim, send, record — exactly once in effect, whatever moment the process dies.

1. *Claim* one due row (`FOR UPDATE SKIP LOCKED`, so several deliverers share the work), render its
   message, set it `sending` with a lease and `attempts + 1`, and COMMIT — before anything leaves.
2. *Send* with no transaction open.
3. *Record* the outcome (`sent`, `failed` with the next attempt time, or `dead`) and its audit event,
   only if the claim is still ours (status `sending` and the same attempt number: a fencing token).

A deliverer killed between 1 and 3 leaves a `sending` row whose lease runs out; the next deliverer claims
it again. Sending is the row's transport's business (`transports.Transport`, looked up by the row's
channel): whenever an earlier attempt may have reached the far side (any attempt after the first) a Slack
notice first looks for its own id in the channel history (message metadata) and records that message
instead of posting again; an e-mail is sent again with the same deterministic Message-ID, which mail
clients collapse; a webhook delivery carries the notification id for the receiver to dedupe on.
Transient failures back off (`delivery.backoff_seconds`, or the far side's Retry-After); permanent ones
(refused token, unknown channel, invalid address, template error) and the last allowed attempt move the
row to `dead` and queue an alert to the team through every configured transport — unless the dead row is
itself an alert: dead letters do not breed dead letters.

A row whose transport is not configured here (RR_SLACK_TOKEN unset, …) is not claimed for sending: it is
marked `skipped` with the reason, once, without an audit event, a retry or an alert.

Rows of an *ordered* channel (`pager`) about one request leave in the order they were queued: the paging
service drops an `acknowledge` or `resolve` for an incident it has not opened yet, and a `trigger` that
overtook them would open an incident nobody ever closes. A row whose older sibling is still pending (a
trigger waiting for its retry) is put back until that one is due, without an attempt being counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from release_requests.audit.service import record, record_now
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.crashpoints import crash_point
from release_requests.customers.models import Customer
from release_requests.db import make_engine, make_sessionmaker, transaction
from release_requests.notifications.models import Notification
from release_requests.notifications.render import RenderError, render
from release_requests.notifications.service import OUTBOX, queue, team_recipients
from release_requests.notifications.transports import Delivered, Notice, SendError, Transport, configure
from release_requests.requests.models import ReleaseRequest
from release_requests.runtime import migrated_url
from release_requests.settings import Settings
from release_requests.sla.service import status_of

log = logging.getLogger(__name__)
CHANNEL = "rr_outbox"  # pg_notify channel of the insert trigger (migration 0003)
ALERT_EVENT = "notification.dead"
ORDERED_CHANNELS = frozenset({"pager"})  # per request, first queued, first delivered
ORDER_RECHECK = timedelta(seconds=1)  # how soon a row held back behind one being sent looks again


def _due(now) -> object:
    return or_(
        and_(Notification.status.in_(("queued", "failed")), Notification.next_attempt_at <= now),
        and_(Notification.status == "sending", Notification.claimed_until < now),
    )


class Deliverer:
    """Delivers due outbox rows through `transports` (one per outbox channel; a channel without one, or with
    one that is not configured, has its rows skipped). Crash points (`RR_CRASH_AT`, see `crashpoints`):
    `notify:claimed` (claim committed, nothing sent), `notify:after_<channel>` (`after_slack`,
    `after_email`, `after_webhook`, `after_pager`: the far side accepted the message, nothing recorded yet)."""

    def __init__(
        self,
        *,
        engine: Engine,
        config: AppConfig,
        transports: Iterable[Transport] | Mapping[str, Transport],
        lease_seconds: float | None = None,
        backoff_seconds: list[float] | None = None,
    ) -> None:
        delivery = config.notifications.delivery
        self.engine = engine
        self.sessions = make_sessionmaker(engine)
        self.config = config
        if isinstance(transports, Mapping):
            transports = transports.values()
        self.transports: dict[str, Transport] = {t.name: t for t in transports}
        self.lease = timedelta(seconds=lease_seconds if lease_seconds is not None else delivery.lease_seconds)
        self.backoff = list(backoff_seconds if backoff_seconds is not None else delivery.backoff_seconds)
        self.max_attempts = delivery.max_attempts

    @classmethod
    def from_settings(cls, settings: Settings, config: AppConfig, **kwargs) -> Deliverer:
        """Every transport from its settings (`transports.configure`: Slack from RR_SLACK_TOKEN, e-mail from
        RR_SMTP_URL, the webhook from RR_WEBHOOK_URL + RR_WEBHOOK_SECRET; any may be absent), the database as
        every process opens it (`runtime.migrated_url`). A setting present but invalid is a ConfigError."""
        transports = configure(settings, config)
        engine = make_engine(migrated_url())
        return cls(engine=engine, config=config, transports=transports, **kwargs)

    def _configured(self, channel: str) -> Transport | None:
        transport = self.transports.get(channel)
        return transport if transport is not None and transport.configured else None

    # --- the loop ------------------------------------------------------------------------------
    def deliver_due(self, *, limit: int = 1000) -> Counter:
        """Deliver rows until none is due (or `limit` were handled); counts outcomes by status."""
        outcomes: Counter = Counter()
        for _ in range(limit):
            claimed = self._claim()
            if claimed is None:
                break
            if isinstance(claimed, str):  # skipped (no transport here), dead (not renderable), held back (order)
                outcomes[claimed] += 1
                continue
            outcomes[self._deliver(claimed)] += 1
        return outcomes

    def seconds_until_due(self) -> float | None:
        """How long until the next row is due (0 if one is due now); None when nothing is pending."""
        with transaction(self.sessions) as session:
            when = case(
                (Notification.status == "sending", Notification.claimed_until), else_=Notification.next_attempt_at
            )
            row = session.execute(
                select(func.min(when), func.now()).where(Notification.status.in_(("queued", "failed", "sending")))
            ).one()
        if row[0] is None:
            return None
        return max(0.0, (row[0] - row[1]).total_seconds())

    # --- 1. claim ------------------------------------------------------------------------------
    def _claim(self) -> Notice | str | None:
        with transaction(self.sessions) as session:
            now = db_now(session)
            row = session.scalar(
                select(Notification)
                .where(_due(now))
                .order_by(Notification.next_attempt_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                return None
            if self._configured(row.channel) is None:
                self._skip(row)
                return "skipped"
            if row.channel in ORDERED_CHANNELS and (later := self._behind(session, row, now)) is not None:
                row.next_attempt_at = later
                return "held"
            row.attempts += 1
            try:
                notice = self._render(session, row)
            except RenderError as exc:
                self._give_up(session, row, exc.message, now)
                return "dead"
            row.status, row.claimed_until = "sending", now + self.lease
        crash_point("notify:claimed")
        return notice

    def _behind(self, session: Session, row: Notification, now: datetime) -> datetime | None:
        """When `row` may be tried again if an older row of its channel about its request is still pending
        (its next attempt, or a moment from now while it is being sent); None when nothing is ahead of it.

        "Older" is `created_at`, the moment the row was written (`clock_timestamp()`, see `service.queue`), and
        that alone orders a request's `pager` rows as their transactions committed: each is queued while the
        request's page row is held (inserted by `start_page`, or locked FOR UPDATE by the watcher and by
        `acknowledge`), one row per transaction, so the next one is written only after the previous holder
        committed — a later commit has a later `created_at`. No tie-break is added: two rows of one request never
        share a moment, and the random uuid `id` would order nothing. What could still invert two rows is the
        database server's wall clock stepping back between them; a sequence column would rule that out too, at
        the cost of a migration."""
        ahead = session.execute(
            select(Notification.status, Notification.next_attempt_at)
            .where(
                Notification.channel == row.channel,
                Notification.request_id == row.request_id,
                Notification.created_at < row.created_at,
                Notification.status.in_(("queued", "failed", "sending")),
            )
            .order_by(Notification.created_at)
            .limit(1)
        ).first()
        if ahead is None:
            return None
        status, next_attempt_at = ahead
        soonest = now + ORDER_RECHECK
        return soonest if status == "sending" else max(next_attempt_at, soonest)

    def _skip(self, row: Notification) -> None:
        """Not sent, not retried, not alerted about, not audited: the transport is simply not there. The
        server said so once at start (and /healthz says so); `relreq notifications retry ID` once it is."""
        transport = self.transports.get(row.channel)
        reason = transport.reason if transport is not None else "no such transport"
        row.status, row.last_error, row.claimed_until = "skipped", f"{row.channel} not configured: {reason}", None

    def _render(self, session: Session, row: Notification) -> Notice:
        """The notice as of now: the row's context plus the request's current state and SLA, rendered. A notice
        about no request (an invitation: `request_id` is None) is its context alone."""
        facts, sla_now, status_url = {}, None, ""
        if row.request_id is not None:
            request = session.get(ReleaseRequest, row.request_id)
            customer = session.get(Customer, request.customer_id)
            sla = status_of(session, request=request, config=self.config, now=db_now(session))
            facts = {
                "id": request.id,
                "title": request.title,
                "status": request.status,
                "severity": request.severity,
                "kind": request.kind,
                "customer": customer.name,
                "customer_id": customer.id,
            }
            sla_now = sla.model_dump(mode="json") if sla else None
            status_url = f"{self.config.notifications.email.status_url.rstrip('/')}/{request.id}"
        context = row.context or {}
        rendered = render(
            notification_id=row.id,
            event=row.event,
            language=row.language,
            audience=row.audience,
            context=context,
            request=facts,
            sla=sla_now,
            status_url=status_url,
            severities=self.config.severity,
        )
        return Notice(
            id=row.id,
            attempt=row.attempts,
            event=row.event,
            audience=row.audience,
            channel=row.channel,
            recipient=row.recipient,
            language=row.language,
            request_id=row.request_id,
            created_at=row.created_at,
            rendered=rendered,
            context=context,
            request=facts,
            sla=sla_now,
            status_url=status_url,
        )

    # --- 2. send -------------------------------------------------------------------------------
    def _deliver(self, notice: Notice) -> str:
        transport = self.transports[notice.channel]
        try:
            delivered = transport.send(notice)
        except SendError as exc:
            return self._record_failure(notice, exc)
        crash_point(f"notify:after_{transport.name}")
        return self._record_sent(notice, delivered)

    # --- 3. record -----------------------------------------------------------------------------
    def _reclaim_own(self, session: Session, notice: Notice) -> Notification | None:
        """The row, locked, if this claim still holds it; None if the lease ran out and another took over."""
        row = session.get(Notification, notice.id, with_for_update=True)
        if row.status != "sending" or row.attempts != notice.attempt:
            log.warning(
                "notification %s: claim %d lost (now %s, attempt %d)",
                notice.id,
                notice.attempt,
                row.status,
                row.attempts,
            )
            return None
        return row

    def _record_sent(self, notice: Notice, delivered: Delivered) -> str:
        with transaction(self.sessions) as session:
            row = self._reclaim_own(session, notice)
            if row is None:
                return "lost"
            now = db_now(session)
            row.status, row.sent_at, row.external_id = "sent", now, delivered.external_id
            row.claimed_until = row.last_error = None
            record(
                session,
                actor=OUTBOX,
                action="notification.sent",
                entity_type="notification",
                entity_id=row.id,
                request_id=row.request_id,
                after={
                    **_summary(row),
                    "attempt": row.attempts,
                    "external_id": delivered.external_id,
                    "already_delivered": delivered.already_delivered,
                },
            )
        return "sent"

    def _record_failure(self, notice: Notice, exc: SendError) -> str:
        with transaction(self.sessions) as session:
            row = self._reclaim_own(session, notice)
            if row is None:
                return "lost"
            now = db_now(session)
            row.claimed_until = None
            if exc.permanent or row.attempts >= self.max_attempts:
                self._give_up(session, row, exc.message, now)
                return "dead"
            delay = exc.retry_after
            if delay is None:
                delay = self.backoff[min(row.attempts, len(self.backoff)) - 1]
            row.status, row.last_error, row.next_attempt_at = "failed", exc.message, now + timedelta(seconds=delay)
            record(
                session,
                actor=OUTBOX,
                action="notification.failed",
                entity_type="notification",
                entity_id=row.id,
                request_id=row.request_id,
                after={
                    **_summary(row),
                    "attempt": row.attempts,
                    "error": exc.message,
                    "next_attempt_at": row.next_attempt_at,
                    "retry_after": exc.retry_after,
                },
            )
        return "failed"

    def _give_up(self, session: Session, row: Notification, error: str, now: datetime) -> None:
        """Dead-letter `row` and alert the team through every configured transport (Slack, e-mail, webhook:
        one of them may be what is broken). An alert is never raised about an alert that died."""
        row.status, row.last_error, row.claimed_until = "dead", error, None
        event = record_now(
            session,
            actor=OUTBOX,
            action="notification.dead",
            entity_type="notification",
            entity_id=row.id,
            request_id=row.request_id,
            after={**_summary(row), "attempts": row.attempts, "error": error},
        )
        if row.event == ALERT_EVENT:
            return
        context = {
            "failed_id": row.id,
            "failed_event": row.event,
            "failed_channel": row.channel,
            "failed_recipient": row.recipient,
            "error": error,
            "attempts": row.attempts,
        }
        for recipient in team_recipients(self.config):
            if self._configured(recipient.channel) is None:
                continue  # it would only be skipped
            queue(
                session,
                request_id=row.request_id,
                event=ALERT_EVENT,
                recipient=recipient,
                context=context,
                at=now,
                key=f"{row.id}:{event.seq}",
            )


def _summary(row: Notification) -> dict:
    """What every notification event on the timeline says (`audience` hides staff notices from customers)."""
    return {"event": row.event, "audience": row.audience, "channel": row.channel, "recipient": row.recipient}
