"""Delivering the outbox: claim, send, record — exactly once in effect, whatever moment the process dies.

1. *Claim* one due row (`FOR UPDATE SKIP LOCKED`, so several deliverers share the work), render its
   message, set it `sending` with a lease and `attempts + 1`, and COMMIT — before anything leaves.
2. *Send* with no transaction open.
3. *Record* the outcome (`sent`, `failed` with the next attempt time, or `dead`) and its audit event,
   only if the claim is still ours (status `sending` and the same attempt number: a fencing token).

A deliverer killed between 1 and 3 leaves a `sending` row whose lease runs out; the next deliverer claims
it again. Whenever an earlier attempt may have reached the far side (any attempt after the first) a Slack
notice first looks for its own id in the channel history (message metadata) and records that message
instead of posting again; an e-mail is sent again with the same deterministic Message-ID, which mail
clients collapse. Transient failures back off (`delivery.backoff_seconds`, or Slack's Retry-After);
permanent ones (refused token, unknown channel, invalid address, template error) and the last allowed
attempt move the row to `dead` and queue an alert to the internal channel and mailbox.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from release_requests.audit.service import record
from release_requests.config import AppConfig
from release_requests.crashpoints import crash_point
from release_requests.customers.models import Customer
from release_requests.db import make_sessionmaker, transaction
from release_requests.notifications.models import Notification
from release_requests.notifications.render import Rendered, RenderError, render
from release_requests.notifications.service import OUTBOX, Recipient, queue
from release_requests.notifications.transports import SendError, SlackSender, SmtpSender, build_email, check_address
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.service import db_now
from release_requests.settings import Settings
from release_requests.sla.service import status_of

log = logging.getLogger(__name__)
CHANNEL = "rr_outbox"  # pg_notify channel of the insert trigger (migration 0003)
ALERT_EVENT = "notification.dead"


@dataclass(frozen=True)
class Job:
    """A claimed row, rendered, as the send step needs it (no ORM object crosses the transaction)."""

    id: str
    attempt: int
    event: str
    audience: str
    channel: str
    recipient: str
    language: str
    request_id: str | None
    created_at: datetime
    update_ts: str | None  # set: edit that Slack message (chat.update) instead of posting
    rendered: Rendered


def _due(now) -> object:
    return or_(
        and_(Notification.status.in_(("queued", "failed")), Notification.next_attempt_at <= now),
        and_(Notification.status == "sending", Notification.claimed_until < now),
    )


class Deliverer:
    """Delivers due outbox rows. Crash points (`RR_CRASH_AT`, see `crashpoints`): `notify:claimed` (claim
    committed, nothing sent), `notify:after_slack` / `notify:after_email` (the far side accepted the
    message, nothing recorded yet)."""

    def __init__(
        self,
        *,
        engine: Engine,
        config: AppConfig,
        slack: SlackSender | None,
        smtp: SmtpSender | None,
        lease_seconds: float | None = None,
        backoff_seconds: list[float] | None = None,
    ) -> None:
        delivery = config.notifications.delivery
        self.engine = engine
        self.sessions = make_sessionmaker(engine)
        self.config = config
        self.slack = slack
        self.smtp = smtp
        self.lease = timedelta(seconds=lease_seconds if lease_seconds is not None else delivery.lease_seconds)
        self.backoff = list(backoff_seconds if backoff_seconds is not None else delivery.backoff_seconds)
        self.max_attempts = delivery.max_attempts

    @classmethod
    def from_settings(cls, settings: Settings, config: AppConfig, **kwargs) -> Deliverer:
        """Slack from RR_SLACK_TOKEN/RR_SLACK_BASE_URL, e-mail from RR_SMTP_URL (either may be absent), the
        database as every process opens it (`runtime.migrated_url`)."""
        from release_requests.db import make_engine
        from release_requests.runtime import migrated_url

        timeout = config.notifications.delivery.timeout_seconds
        slack = (
            SlackSender(token=settings.slack_token, base_url=settings.slack_base_url, timeout=timeout)
            if settings.slack_token
            else None
        )
        smtp = SmtpSender(settings.smtp_url, timeout=timeout) if settings.smtp_url else None
        engine = make_engine(migrated_url())
        return cls(engine=engine, config=config, slack=slack, smtp=smtp, **kwargs)

    # --- the loop ------------------------------------------------------------------------------
    def deliver_due(self, *, limit: int = 1000) -> Counter:
        """Deliver rows until none is due (or `limit` were handled); counts outcomes by status."""
        outcomes: Counter = Counter()
        for _ in range(limit):
            claimed = self._claim()
            if claimed is None:
                break
            if isinstance(claimed, str):  # could not even be rendered: already dead
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
    def _claim(self) -> Job | str | None:
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
            row.attempts += 1
            try:
                rendered = self._render(session, row)
            except RenderError as exc:
                self._give_up(session, row, exc.message, now)
                return "dead"
            row.status, row.claimed_until = "sending", now + self.lease
            job = Job(
                id=row.id,
                attempt=row.attempts,
                event=row.event,
                audience=row.audience,
                channel=row.channel,
                recipient=row.recipient,
                language=row.language,
                request_id=row.request_id,
                created_at=row.created_at,
                update_ts=(row.context or {}).get("update_ts"),
                rendered=rendered,
            )
        crash_point("notify:claimed")
        return job

    def _render(self, session: Session, row: Notification) -> Rendered:
        """The message as of now: the row's context plus the request's current state and SLA."""
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
        return render(
            notification_id=row.id,
            event=row.event,
            language=row.language,
            audience=row.audience,
            context=row.context or {},
            request=facts,
            sla=sla.model_dump(mode="json") if sla else None,
            status_url=f"{self.config.notifications.email.status_url.rstrip('/')}/{request.id}",
        )

    # --- 2. send -------------------------------------------------------------------------------
    def _deliver(self, job: Job) -> str:
        try:
            external_id, found = self._send(job)
        except SendError as exc:
            return self._record_failure(job, exc)
        crash_point(f"notify:after_{job.channel}")
        return self._record_sent(job, external_id, found)

    def _send(self, job: Job) -> tuple[str, bool]:
        """Send `job`; returns (external id, whether an earlier attempt had already delivered it)."""
        if job.channel == "slack":
            if self.slack is None:
                raise SendError("Slack is not configured (set RR_SLACK_TOKEN)", permanent=True)
            channel = self.slack.channel_id(job.recipient)
            if job.update_ts:
                self.slack.update(channel=channel, ts=job.update_ts, rendered=job.rendered)
                return f"{channel}/{job.update_ts}", False
            if job.attempt > 1:
                since = job.created_at - timedelta(minutes=1)
                ts = self.slack.find_posted(channel=channel, notification_id=job.id, since=since)
                if ts is not None:
                    return f"{channel}/{ts}", True
            ts = self.slack.post(
                channel=channel, rendered=job.rendered, notification_id=job.id, request_id=job.request_id
            )
            return f"{channel}/{ts}", False
        if self.smtp is None:
            raise SendError("e-mail is not configured (set RR_SMTP_URL)", permanent=True)
        message = build_email(
            notification_id=job.id,
            request_id=job.request_id,
            rendered=job.rendered,
            sender=self.config.notifications.email.from_address,
            to=check_address(job.recipient),
            language=job.language,
            date=job.created_at,
        )
        self.smtp.send(message)
        return message["Message-ID"], False

    # --- 3. record -----------------------------------------------------------------------------
    def _reclaim_own(self, session: Session, job: Job) -> Notification | None:
        """The row, locked, if this claim still holds it; None if the lease ran out and another took over."""
        row = session.get(Notification, job.id, with_for_update=True)
        if row.status != "sending" or row.attempts != job.attempt:
            log.warning(
                "notification %s: claim %d lost (now %s, attempt %d)", job.id, job.attempt, row.status, row.attempts
            )
            return None
        return row

    def _record_sent(self, job: Job, external_id: str, found: bool) -> str:
        with transaction(self.sessions) as session:
            row = self._reclaim_own(session, job)
            if row is None:
                return "lost"
            now = db_now(session)
            row.status, row.sent_at, row.external_id = "sent", now, external_id
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
                    "external_id": external_id,
                    "already_delivered": found,
                },
            )
        return "sent"

    def _record_failure(self, job: Job, exc: SendError) -> str:
        with transaction(self.sessions) as session:
            row = self._reclaim_own(session, job)
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
        """Dead-letter `row` and alert the team (by Slack and by e-mail: one of them may be what is broken).
        An alert that dies itself is not alerted about again."""
        row.status, row.last_error, row.claimed_until = "dead", error, None
        event = record(
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
        internal = self.config.notifications.internal
        context = {
            "failed_id": row.id,
            "failed_event": row.event,
            "failed_channel": row.channel,
            "failed_recipient": row.recipient,
            "error": error,
            "attempts": row.attempts,
        }
        for recipient in (
            Recipient("internal", "slack", internal.slack_channel),
            Recipient("internal", "email", internal.email),
        ):
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


def libpq_url(engine: Engine) -> str:
    return make_url(engine.url).set(drivername="postgresql").render_as_string(hide_password=False)


def listen(deliverer: Deliverer, *, stop: threading.Event, poll_seconds: float = 2.0) -> None:
    """Deliver each row as soon as it is committed (LISTEN on the insert trigger's channel), and whatever
    falls due later (retries, quiet hours, expired leases) within `poll_seconds`. Returns when `stop` is set;
    survives database restarts and unexpected errors (logged, then tried again after `poll_seconds`)."""
    import psycopg

    while not stop.is_set():
        try:
            with psycopg.connect(libpq_url(deliverer.engine), autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                while not stop.is_set():
                    deliverer.deliver_due()
                    due_in = deliverer.seconds_until_due()
                    # a row due now but locked by another deliverer must not make this loop spin
                    wait = poll_seconds if due_in is None else max(0.05, min(poll_seconds, due_in))
                    for _ in conn.notifies(timeout=wait, stop_after=1):
                        pass
        except Exception:
            log.exception("outbox listener failed; retrying in %s s", poll_seconds)
            stop.wait(poll_seconds)
