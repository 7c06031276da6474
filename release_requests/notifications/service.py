"""The one function every domain calls to tell somebody something: `notify`.

It resolves *targets* (the customer, the internal channel, the request's owner, its TAMs, the manager
on duty) to concrete recipients and writes one outbox row per recipient and medium, inside the
caller's transaction. Delivery happens elsewhere, later, exactly once in effect.

A recipient's `channel` names the transport that will send it (`transports.TRANSPORTS`): `slack`,
`email`, or `webhook`. The webhook (RR_WEBHOOK_URL) hears what the internal Slack channel hears, and only
when it is configured; its rows name it (`internal`), never a URL: no row can send anything anywhere else.

Not every notice is about a request: `queue_invitation` e-mails a person their sign-in link (a row with no
request; its message carries no request footer).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import Actor, jsonable, record
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.customers.models import Customer
from release_requests.customers.service import tams_of
from release_requests.errors import Conflict, InvalidInput, NotFound
from release_requests.notifications.models import Notification
from release_requests.notifications.preferences import Effective, effective
from release_requests.notifications.schemas import NotificationFilters
from release_requests.people.models import Person
from release_requests.people.service import actor_of
from release_requests.people.signin import LINK_LIFETIME
from release_requests.requests.models import ReleaseRequest
from release_requests.routing.service import on_duty


@dataclass(frozen=True)
class Recipient:
    audience: str  # customer | internal
    channel: str  # slack | email | webhook: the transport that sends it
    address: str  # a Slack channel or user id, an e-mail address, WEBHOOK_RECIPIENT
    language: str = "en"
    person_id: int | None = None


OUTBOX = Actor.system("outbox")
INVITATION_EVENT = "person.invited"  # a person's sign-in link, e-mailed (no request)
WEBHOOK_RECIPIENT = "internal"  # the one webhook, RR_WEBHOOK_URL: rows carry its name, the URL stays in settings


def team_recipients(config: AppConfig) -> list[Recipient]:
    """Everywhere the team hears about the outbox itself (a dead letter): the internal Slack channel, the
    internal mailbox and the webhook. The deliverer keeps those whose transport it has configured."""
    internal = config.notifications.internal
    return [
        Recipient("internal", "slack", internal.slack_channel),
        Recipient("internal", "email", internal.email),
        Recipient("internal", "webhook", WEBHOOK_RECIPIENT),
    ]


def person_recipients(person: Person, *, via: Literal["first", "all", "email"] = "first") -> list[Recipient]:
    """How one staff member hears a notice, in their own language. `first`: their Slack DM if they have one,
    else their e-mail (a routine notice; a person with neither gets an address that dead-letters, so the
    team hears of the gap); `all`: both (a page: a phone buzzes twice rather than never); `email`: e-mail
    only (a document to keep, with its attachment)."""
    language = person.language or "en"
    slack = [Recipient("internal", "slack", person.slack_user_id, language, person.id)] if person.slack_user_id else []
    email = [Recipient("internal", "email", person.email, language, person.id)] if person.email else []
    if via == "all":
        return slack + email
    if via == "email":
        return email
    return (slack or email)[:1] or [Recipient("internal", "email", f"person-{person.id}@invalid", language, person.id)]


def _customer_recipients(prefs: Effective) -> list[Recipient]:
    recipients = []
    if prefs.slack_channel:
        recipients.append(Recipient("customer", "slack", prefs.slack_channel, prefs.language))
    recipients += [Recipient("customer", "email", e, prefs.language) for e in prefs.email_recipients]
    return recipients


def resolve(
    session: Session,
    *,
    targets: Iterable[str],
    request: ReleaseRequest,
    config: AppConfig,
    at: datetime,
    customer_prefs: Effective | None = None,
) -> list[Recipient]:
    """Concrete recipients of `targets`; the customer target follows the customer's notification preferences
    (`customer_prefs` when the caller has read them already)."""
    recipients: list[Recipient] = []
    customer = session.get(Customer, request.customer_id)
    for target in dict.fromkeys(targets):
        if target == "customer":
            recipients += _customer_recipients(customer_prefs or effective(session, customer=customer))
        elif target == "internal_channel":
            recipients.append(Recipient("internal", "slack", config.notifications.internal.slack_channel))
            if config.notifications.internal.webhook:  # staff notices the internal channel gets, also to the webhook
                recipients.append(Recipient("internal", "webhook", WEBHOOK_RECIPIENT))
        elif target == "internal_email":
            recipients.append(Recipient("internal", "email", config.notifications.internal.email))
        elif target == "owner" and request.owner_id:
            recipients += person_recipients(session.get(Person, request.owner_id))
        elif target == "tam":
            recipients += [r for p in tams_of(session, customer_id=request.customer_id) for r in person_recipients(p)]
        elif target == "duty_manager":
            duty = on_duty(session, at=at)
            if duty.person is not None:
                recipients += person_recipients(duty.person)
    return list(dict.fromkeys(recipients))


# One statement built once (so compiled once): insert the row unless its dedupe key is queued, and load it
_QUEUE = select(Notification).from_statement(
    insert(Notification)
    .values(created_at=func.clock_timestamp())
    .on_conflict_do_nothing(index_elements=["dedupe_key"])
    .returning(*Notification.__table__.columns)
)
_OUTBOX = Notification.__table__
# A notice's rows: built once and so compiled once; given a list of rows, SQLAlchemy sends them as one
# multi-row INSERT ("insertmanyvalues"). A `.values([...])` statement would be compiled again on every call.
_QUEUE_MANY = (
    insert(_OUTBOX)
    .values(created_at=func.clock_timestamp())
    .on_conflict_do_nothing(index_elements=["dedupe_key"])
    .returning(_OUTBOX.c.id)
)


def _outbox_row(
    *, request_id: str | None, event: str, recipient: Recipient, context: dict, at: datetime, key: str
) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "request_id": request_id,
        "event": event,
        "audience": recipient.audience,
        "channel": recipient.channel,
        "recipient": recipient.address,
        "recipient_person_id": recipient.person_id,
        "language": recipient.language,
        "context": jsonable(context),
        "dedupe_key": f"{request_id or '-'}:{event}:{key}:{recipient.channel}:{recipient.address}",
        "status": "queued",
        "attempts": 0,
        "next_attempt_at": at,
    }


def _record_queued(session: Session, row: dict, *, actor: Actor) -> None:
    """The `notification.queued` event: who hears what and when, never the context."""
    record(
        session,
        actor=actor,
        action="notification.queued",
        entity_type="notification",
        entity_id=row["id"],
        request_id=row["request_id"],
        after={
            "event": row["event"],
            "audience": row["audience"],
            "channel": row["channel"],
            "recipient": row["recipient"],
            "not_before": row["next_attempt_at"],
        },
    )


def queue(
    session: Session,
    *,
    request_id: str | None,
    event: str,
    recipient: Recipient,
    context: dict,
    at: datetime,
    key: str = "",
    actor: Actor = OUTBOX,
) -> Notification | None:
    """Write one outbox row (and its `notification.queued` event) unless the same notice is already queued.

    `at` is when it may be sent (quiet hours move it later). Returns None for a duplicate. `request_id` is None
    for a notice about no request (an invitation). The event records who hears what, never the context.

    `created_at` is the moment the row is written (`clock_timestamp()`), not the start of the transaction
    (`now()`, the column's default): the deliverer sends a request's `pager` rows in `created_at` order, and
    those rows are queued while their page row is locked, so the moment of writing follows the commit order. A
    transaction that began before a concurrent one committed, then waited for the lock, would otherwise date
    its row earlier than the row it queued after.
    """
    values = _outbox_row(request_id=request_id, event=event, recipient=recipient, context=context, at=at, key=key)
    row = session.scalar(_QUEUE, values)
    if row is not None:
        _record_queued(session, values, actor=actor)
    return row


def notify(
    session: Session,
    *,
    request: ReleaseRequest,
    event: str,
    targets: Iterable[str],
    context: dict,
    config: AppConfig,
    at: datetime,
    key: str = "",
) -> list[str]:
    """Queue `event` about `request` for `targets`; the same (event, key, recipient) is queued only once.
    Returns the ids of the rows queued now, written by one INSERT (a notice has several recipients).

    `context` must hold everything the message needs that is not read again at send time (the request's
    state and SLA are): templates refuse missing variables. Customer notices of the severities in
    `[quiet_hours]` wait for the end of the customer's quiet hours.
    """
    targets = list(targets)
    customer_prefs = (
        effective(session, customer=session.get(Customer, request.customer_id)) if "customer" in targets else None
    )
    rows = []
    for recipient in resolve(
        session, targets=targets, request=request, config=config, at=at, customer_prefs=customer_prefs
    ):
        send_at = at
        if recipient.audience == "customer":
            send_at = customer_prefs.deliver_at(
                severity=request.severity, at=at, held_back=config.notifications.quiet_hours.severities
            )
        rows.append(
            _outbox_row(request_id=request.id, event=event, recipient=recipient, context=context, at=send_at, key=key)
        )
    if not rows:
        return []
    written = set(session.scalars(_QUEUE_MANY, rows))
    queued = [row for row in rows if row["id"] in written]
    for row in queued:  # in the order of the recipients, as the events were when each row had its own INSERT
        _record_queued(session, row, actor=OUTBOX)
    return [row["id"] for row in queued]


def queue_invitation(session: Session, *, actor: Actor, person: Person, url: str, config: AppConfig) -> Notification:
    """Queue the e-mail that gives `person` their sign-in link `url` (from `people.signin.issue_login_link`),
    in their language (English when they have none), delivered like every notice.

    The link is in the outbox row's context, which only the deliverer reads to render the message; the
    `notification.queued` event says who was invited (`person.invited`, their address), never the link.
    Queuing the same link again returns the row already queued. InvalidInput: the person has no e-mail address.
    """
    if not person.email:
        raise InvalidInput(f"person {person.id} has no e-mail address to send the invitation to", field="person")
    recipient = Recipient(
        "customer" if person.role == "customer" else "internal",
        "email",
        person.email,
        person.language or "en",
        person.id,
    )
    context = {
        "name": person.name,
        "url": url,
        "valid_minutes": int(LINK_LIFETIME.total_seconds() // 60),
        "contact": config.notifications.internal.email,
    }
    key = hashlib.sha256(url.encode()).hexdigest()  # one notice per link; the key does not reveal it
    row = queue(
        session,
        request_id=None,
        event=INVITATION_EVENT,
        recipient=recipient,
        context=context,
        at=db_now(session),
        key=key,
        actor=actor,
    )
    if row is None:
        dedupe_key = f"-:{INVITATION_EVENT}:{key}:{recipient.channel}:{recipient.address}"
        row = session.scalar(select(Notification).where(Notification.dedupe_key == dedupe_key))
    return row


def list_notifications(session: Session, *, actor: Person, filters: NotificationFilters) -> list[Notification]:
    """Staff see the outbox of the requests they can see, newest first."""
    access.authorize(actor, "notification.read")
    query = select(Notification)
    visible = access.visible_customer_ids(session, actor)
    if visible is not None:
        query = query.join(ReleaseRequest, ReleaseRequest.id == Notification.request_id).where(
            ReleaseRequest.customer_id.in_(visible)
        )
    if filters.request_id:
        query = query.where(Notification.request_id == filters.request_id)
    if filters.status:
        query = query.where(Notification.status == filters.status)
    return list(session.scalars(query.order_by(Notification.created_at.desc(), Notification.id).limit(filters.limit)))


RETRYABLE = ("dead", "failed", "skipped")


def retry(session: Session, *, actor: Person, notification_id: str) -> Notification:
    """Put a dead (or failing) notice back in the queue with fresh attempts, after its cause was fixed; a
    notice skipped because its transport was not configured, once it is."""
    access.authorize(actor, "notification.retry")
    row = session.get(Notification, notification_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no notification '{notification_id}'")
    if row.status not in RETRYABLE:
        raise Conflict(f"notification {row.id} is {row.status}; only dead or failed (or skipped) ones can be retried")
    before = {"status": row.status, "attempts": row.attempts, "last_error": row.last_error}
    row.status, row.attempts, row.next_attempt_at, row.claimed_until = "queued", 0, func.now(), None
    session.flush()
    record(
        session,
        actor=actor_of(actor),
        action="notification.retried",
        entity_type="notification",
        entity_id=row.id,
        request_id=row.request_id,
        before=before,
        after={
            "event": row.event,
            "audience": row.audience,
            "channel": row.channel,
            "recipient": row.recipient,
            "status": "queued",
        },
    )
    return row
