"""One message from the support mailbox → its outcome: a new request, a customer's message on a request,
or a message kept for the duty manager. The one code path for IMAP, `relreq intake email` and the API.

`ingest` works in the caller's transaction and commits nothing. It first inserts the message's row
(`inbound_mail`, keyed by Message-ID, ON CONFLICT DO NOTHING): a message read twice — a re-delivery, a
second poller, a retried pipe, at the same moment or a week later — finds the earlier row and files nothing.
Then, in this order:

1. too large (`[email] max_message_bytes`) → held, its headers read, its body not parsed;
2. nothing could be parsed → held, with the parser's reason;
3. written by a machine (Auto-Submitted other than "no", Precedence bulk/list/junk, X-Loop, a bounce,
   mailer-daemon/postmaster/noreply, or our own From address) → ignored: never answered, nothing filed;
4. no sender address → held;
5. `require_authentication` not met by our own servers' Authentication-Results → held, not answered (a
   reply to a forged sender would be backscatter);
6. the sender is staff → held (staff file through the portal, the CLI or the API);
7. the sender is nobody's contact → held, and once per sender per UTC day a polite reply saying how to
   reach support; a contact of several customers → held;
8. a reply to one of our notices or naming a request of the sender's customer → the customer's message on
   it (and, if it waited for information, the answer that restarts the clock); a reply to a request that
   is over (closed, cancelled, rejected) files a new request that says which one it follows up on;
9. otherwise → a new request (`workflows.intake.file_request`, so it is routed and paged like any other),
   acknowledged to the customer's recipients and, as a reply to their message, to the sender.

One hostile message never stops the mailbox: parsing keeps only what Postgres can store (no NUL, a strict
Message-ID), and steps 3–9 run in a savepoint — a message the database still refuses (a value, a limit, a
bug in filing) is held, "could not be filed: <error>", its bytes kept, and intake moves on. Only a lost
connection or a server asking to retry is raised, so the message is taken again later.

Who files: a contact's customer-role person (their user account). A contact listed on the customer record
without an account gets one, created from the message: role customer, the display name (or the address),
no password and no token — they cannot sign in until invited; `person.created_from_mail` says why it
exists. Every outcome is audited (`mail.received`: outcome, reason, sender, Message-ID — never the content).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from io import BytesIO
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, defer

from release_requests import access
from release_requests.audit.service import Actor, record, record_now
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.customers.models import Customer
from release_requests.errors import Conflict, DomainError, InvalidInput, NotFound
from release_requests.mail.attachments import SampleFile, Unpacked, unpack
from release_requests.mail.authentication import AuthVerdict, meets, read_verdict
from release_requests.mail.models import InboundMail
from release_requests.mail.parsing import ParsedMail, parse
from release_requests.mail.schemas import MailAttachmentOut, MailDetail, MailOut
from release_requests.mail.threading import locate, read_subject
from release_requests.notifications.models import Notification
from release_requests.notifications.preferences import effective
from release_requests.notifications.service import Recipient, notify, queue
from release_requests.notifications.transports import MESSAGE_ID_DOMAIN
from release_requests.people.models import Person
from release_requests.people.service import PersonCreate, actor_of, create_person, label
from release_requests.requests import service as requests
from release_requests.requests.lifecycle import get_visible
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.schemas import Answer, SubmitRequest
from release_requests.requests.states import TRANSITIONS, Status
from release_requests.workflows import intake

log = logging.getLogger(__name__)

MAIL = Actor.system("mail-intake")
Source = Literal["imap", "pipe", "api"]
SOURCES = ("imap", "pipe", "api")
UNKNOWN_SENDER_EVENT = "mail.unknown_sender"
CUSTOMER_MESSAGE_EVENT = "request.customer_message"
TEXT_LIMIT = 20000  # a request's description, an answer, a customer's message
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


@dataclass(frozen=True)
class IngestResult:
    """What became of one message. `duplicate`: its Message-ID was read before; this is that earlier result
    and nothing was done now."""

    mail_id: int
    outcome: str
    reason: str
    request_id: str | None
    duplicate: bool = False


@dataclass(frozen=True)
class _Decision:
    outcome: str
    reason: str
    request_id: str | None = None
    customer_id: str | None = None


def ingest(
    session: Session,
    *,
    raw: bytes,
    source: Source,
    received_at: datetime | None,
    config: AppConfig,
    samples_dir: Path,
    size: int | None = None,
    truncated: bool = False,
) -> IngestResult:
    """Read one raw RFC 822 message and do what it calls for (see the module's docstring). `received_at`: when
    it reached our server (IMAP INTERNALDATE); without it, the topmost Received: header's date, or now.
    `truncated`: `raw` is only the first bytes of a message of `size` bytes (one too large to fetch whole
    from the mailbox). The row keeps the whole `size`, so `size > len(raw)` says it was cut."""
    if source not in SOURCES:
        raise InvalidInput(f"unknown source '{source}'", field="source")
    if truncated and (size is None or size <= len(raw)):
        raise InvalidInput("a truncated message needs its whole size, larger than the bytes given", field="size")
    policy = config.intake.email
    now = db_now(session)
    whole = size if truncated else None
    oversized = (whole or len(raw)) > policy.max_message_bytes
    parsed = parse(raw, headers_only=oversized, size=whole)
    arrived = _arrival(received_at or parsed.first_received, now=now, config=config)
    verdict = read_verdict(
        parsed.authentication_results, trusted=policy.trusted_authserv_ids, from_domain=parsed.from_domain
    )
    mail_id = session.execute(
        insert(InboundMail)
        .values(
            message_id=parsed.message_id,
            sha256=parsed.sha256,
            source=source,
            received_at=arrived,
            sender=parsed.sender,
            sender_name=parsed.sender_name,
            subject=parsed.subject,
            size=parsed.size,
            outcome="held",
            reason="being read",
            authentication=verdict.as_record(),
            raw=raw,
        )
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(InboundMail.id)
    ).scalar_one_or_none()
    if mail_id is None:
        return _duplicate(session, parsed=parsed, source=source)
    mail = session.get(InboundMail, mail_id)
    if oversized:
        kept = "kept"
        if truncated:
            kept = f"truncated, only its first {len(raw)} bytes kept (read it whole in the mailbox)"
        decision = _Decision(
            "held", f"{parsed.size} bytes, over max_message_bytes ({policy.max_message_bytes}): {kept}, not parsed"
        )
    else:
        decision = _decide_or_hold(
            session, mail=mail, parsed=parsed, verdict=verdict, arrived=arrived, config=config, samples_dir=samples_dir
        )
    mail.outcome, mail.reason = decision.outcome, decision.reason
    mail.request_id, mail.customer_id = decision.request_id, decision.customer_id
    session.flush()
    record(
        session,
        actor=MAIL,
        action="mail.received",
        entity_type="mail",
        entity_id=str(mail.id),
        request_id=decision.request_id,
        after={
            "outcome": decision.outcome,
            "reason": decision.reason,
            "sender": parsed.sender,
            "message_id": parsed.message_id,
            "source": source,
            "customer_id": decision.customer_id,
        },
    )
    return IngestResult(mail.id, decision.outcome, decision.reason, decision.request_id)


def receive(session: Session, *, actor: Person, raw: bytes, config: AppConfig, samples_dir: Path) -> IngestResult:
    """`ingest` for a person handing a message over the API (a mail system's pipe that speaks HTTP)."""
    access.authorize(actor, "mail.ingest")
    return ingest(session, raw=raw, source="api", received_at=None, config=config, samples_dir=samples_dir)


def _duplicate(session: Session, *, parsed: ParsedMail, source: str) -> IngestResult:
    earlier = session.scalar(select(InboundMail).where(InboundMail.message_id == parsed.message_id))
    record(
        session,
        actor=MAIL,
        action="mail.duplicate",
        entity_type="mail",
        entity_id=str(earlier.id),
        after={"message_id": parsed.message_id, "source": source, "sha256": parsed.sha256},
        reason="the same Message-ID was read before: nothing done again",
    )
    return IngestResult(earlier.id, earlier.outcome, earlier.reason, earlier.request_id, duplicate=True)


def _arrival(moment: datetime | None, *, now: datetime, config: AppConfig) -> datetime:
    """When the message reached us, never in the future nor older than `max_backdate_hours`."""
    if moment is None:
        return now
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    oldest = now - timedelta(hours=config.intake.requests.max_backdate_hours)
    return min(max(moment, oldest), now)


# --- deciding -------------------------------------------------------------------------------------


def _decide_or_hold(session: Session, *, mail: InboundMail, **what) -> _Decision:
    """`_decide` in a savepoint. A message the database refuses all the same (a value, a limit, a bug in filing)
    is held, its bytes kept for a duty manager, so the mailbox's cursor moves past it and the messages after
    it are taken; what a retry can fix (a lost connection, a deadlock) is raised, so it is taken again."""
    mail_id = mail.id
    try:
        with session.begin_nested():
            return _decide(session, mail=mail, **what)
    except (DomainError, SQLAlchemyError, ValueError) as exc:
        if _worth_retrying(exc):
            raise
        log.error("mail %s could not be filed (%s): held", mail_id, type(exc).__name__, exc_info=True)
        return _Decision("held", f"could not be filed: {type(exc).__name__}")


def _worth_retrying(exc: Exception) -> bool:
    """The connection or the server failed, not this message: OperationalError and InterfaceError — except
    SQLSTATE class 54 ("program limit exceeded": a value too large for an index), which this message causes
    every time it is tried."""
    if isinstance(exc, InterfaceError) or getattr(exc, "connection_invalidated", False):
        return True
    if isinstance(exc, OperationalError):
        return not str(getattr(exc.orig, "sqlstate", None) or "").startswith("54")
    return False


def _decide(
    session: Session,
    *,
    mail: InboundMail,
    parsed: ParsedMail,
    verdict: AuthVerdict,
    arrived: datetime,
    config: AppConfig,
    samples_dir: Path,
) -> _Decision:
    policy = config.intake.email
    if parsed.unparseable:
        return _Decision("held", parsed.unparseable)
    if parsed.noise:
        return _Decision("ignored", f"written by a machine ({parsed.noise}): not answered, nothing filed")
    if parsed.sender is None:
        return _Decision("held", "no sender address (From is missing or not an address)")
    if parsed.sender == parseaddr(config.notifications.email.from_address)[1].lower():
        return _Decision("ignored", "from our own address: not answered, nothing filed")
    authenticated, why = meets(policy.require_authentication, verdict)
    if not authenticated:
        return _Decision("held", f"sender not authenticated: {why}; not answered")
    if session.scalar(select(Person.id).where(func.lower(Person.email) == parsed.sender, Person.role != "customer")):
        return _Decision("held", "sent by a staff address: assign it to a customer or a request")
    customer_ids = _customers_of(session, parsed.sender)
    if not customer_ids:
        replied = _reply_to_unknown(session, parsed=parsed, config=config)
        told = "replied with how to reach support" if replied else "already replied to this sender today"
        return _Decision("held", f"unknown sender: not a contact of any customer; {told}")
    if len(customer_ids) > 1:
        return _Decision("held", f"contact of several customers ({', '.join(customer_ids)}): assign it by hand")
    customer = session.get(Customer, customer_ids[0])
    try:
        with session.begin_nested():
            return _act(
                session,
                mail=mail,
                parsed=parsed,
                customer=customer,
                arrived=arrived,
                config=config,
                samples_dir=samples_dir,
            )
    except (DomainError, ValidationError) as exc:
        message = exc.message if isinstance(exc, DomainError) else str(exc.errors()[0]["msg"])
        return _Decision("held", f"could not be filed: {message}", customer_id=customer.id)


def _act(
    session: Session,
    *,
    mail: InboundMail,
    parsed: ParsedMail,
    customer: Customer,
    arrived: datetime,
    config: AppConfig,
    samples_dir: Path,
) -> _Decision:
    """A known contact's message: add it to the request it answers, or file a new one."""
    person = _contact_person(session, customer=customer, parsed=parsed, mail_id=mail.id)
    if isinstance(person, str):
        return _Decision("held", person, customer_id=customer.id)
    match = locate(
        in_reply_to=parsed.in_reply_to,
        references=parsed.references,
        subject=parsed.subject,
        id_prefix=config.intake.requests.id_prefix,
        known=lambda message_id: _known_message(session, message_id),
        owned=lambda request_id: _customer_of(session, request_id) == customer.id,
    )
    # never say whose: the row is staff-only, but the id may be another customer's
    passed_over = (
        f"{' and '.join(match.passed_over)} {'names' if len(match.passed_over) == 1 else 'name'} a request "
        "that is not this customer's, or no request"
        if match.passed_over
        else ""
    )
    request = session.get(ReleaseRequest, match.request_id) if match.request_id else None
    if request is not None and TRANSITIONS[Status(request.status)]:  # open: no terminal state (closed, cancelled…)
        outcome, notes = _add_to_request(
            session,
            actor=person,
            request=request,
            parsed=parsed,
            mail_id=mail.id,
            config=config,
            samples_dir=samples_dir,
        )
        what = "answered its question" if outcome == "answered" else "added as the customer's message"
        found = f"found by {match.via}" + (f"; {passed_over}" if passed_over else "")
        return _Decision(outcome, _with_notes(f"{what} ({found})", notes), request.id, customer.id)
    filed, notes = _file_new(
        session,
        actor=person,
        customer=customer,
        parsed=parsed,
        arrived=arrived,
        config=config,
        samples_dir=samples_dir,
        acknowledge_sender=True,
        follows_up=request,
    )
    reason = "filed as a new request"
    if request is not None:
        reason += f": it follows up on {request.id}, which is {request.status} (found by {match.via})"
    if passed_over:
        reason += f" ({passed_over})"
    return _Decision("filed", _with_notes(reason, notes), filed.id, customer.id)


def _with_notes(reason: str, notes: list[str]) -> str:
    return reason + "".join(f"\n- {note}" for note in notes) if notes else reason


def _customers_of(session: Session, address: str) -> list[str]:
    """The customers `address` is a contact of: on the customer record, or as a customer user's e-mail."""
    listed = session.scalars(
        text(
            "SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM jsonb_array_elements_text(email_contacts) AS c(a) "
            "WHERE lower(c.a) = :address)"
        ).bindparams(address=address)
    )
    users = session.scalars(
        select(Person.customer_id).where(func.lower(Person.email) == address, Person.role == "customer")
    )
    return sorted({*listed, *users})


def _contact_person(session: Session, *, customer: Customer, parsed: ParsedMail, mail_id: int) -> Person | str:
    """The contact's customer-role person, created on first contact; a string says why there is none."""
    query = select(Person).where(func.lower(Person.email) == parsed.sender, Person.customer_id == customer.id)
    person = session.scalar(query)
    if person is not None:
        return person if person.active else "the sender's user account is deactivated"
    try:
        data = PersonCreate(
            name=parsed.sender_name or parsed.sender, role="customer", email=parsed.sender, customer_id=customer.id
        )
    except ValidationError:
        return "the sender's address cannot be a user's e-mail address"
    try:
        with session.begin_nested():
            person = create_person(session, actor=MAIL, data=data)
    except (IntegrityError, Conflict):  # created by a concurrent message of the same sender, committed meanwhile
        return session.scalar(query) or "the sender's user account could not be created"
    record(
        session,
        actor=MAIL,
        action="person.created_from_mail",
        entity_type="person",
        entity_id=str(person.id),
        after={"email": person.email, "customer_id": customer.id, "mail_id": mail_id},
        reason="a contact of the customer wrote to support and had no user account (no password, no token)",
    )
    return person


def _customer_of(session: Session, request_id: str) -> str | None:
    return session.scalar(select(ReleaseRequest.customer_id).where(ReleaseRequest.id == request_id))


def _known_message(session: Session, message_id: str) -> str | None:
    """The request a Message-ID belongs to: one of our notices, a request's thread root, or a message that
    went to a request before."""
    local, _, domain = message_id[1:-1].rpartition("@")
    if domain == MESSAGE_ID_DOMAIN and local:
        if session.get(ReleaseRequest, local) is not None:
            return local
        notice = session.get(Notification, local)
        if notice is not None and notice.request_id:
            return notice.request_id
    return session.scalar(
        select(InboundMail.request_id).where(InboundMail.message_id == message_id, InboundMail.request_id.is_not(None))
    )


# --- acting ---------------------------------------------------------------------------------------


def _unpacked(parsed: ParsedMail, config: AppConfig) -> Unpacked:
    if parsed.truncated:  # its last attachment is cut short, and which one is is anyone's guess
        why = f"only the first bytes of this {parsed.size}-byte message were fetched; it is whole in the mailbox"
        return Unpacked((), (f"attachments: none stored: {why}",))
    policy = config.intake.email
    return unpack(
        parsed.attachments,
        max_files=policy.max_attachments,
        max_bytes=config.intake.samples.max_bytes,
        max_unpacked=policy.max_unpacked_bytes,
        passwords=policy.archive_passwords,
    )


def _store_samples(
    session: Session, *, actor: Person, request_id: str, files: tuple[SampleFile, ...], config: AppConfig, samples_dir
) -> list[str]:
    """Store each file as a sample of the request; a note for each one the request would not take."""
    notes = []
    for file in files:
        try:
            with session.begin_nested():
                intake.add_sample(
                    session,
                    actor=actor,
                    request_id=request_id,
                    config=config,
                    samples_dir=samples_dir,
                    stream=BytesIO(file.data),
                    filename=file.filename,
                    declared_sha256=None,
                )
        except DomainError as exc:
            notes.append(f"{file.filename or '(unnamed)'}: {exc.message}")
    return notes


def _text_with_notes(text: str, notes: list[str]) -> str:
    """The customer's text, then what was not stored, within the 20,000 characters a request's text may have."""
    block = ("\n\nNot stored from the e-mail:\n" + "\n".join(f"- {n}" for n in notes)) if notes else ""
    block = block[: TEXT_LIMIT // 2]
    return (text[: TEXT_LIMIT - len(block)] + block).strip()


def _file_new(
    session: Session,
    *,
    actor: Person,
    customer: Customer,
    parsed: ParsedMail,
    arrived: datetime,
    config: AppConfig,
    samples_dir: Path,
    acknowledge_sender: bool,
    follows_up: ReleaseRequest | None = None,
) -> tuple[ReleaseRequest, list[str]]:
    """A new request from the message; `follows_up`: the customer's own request, over, that it answers."""
    policy = config.intake.email
    tags = read_subject(
        parsed.subject,
        id_prefix=config.intake.requests.id_prefix,
        default_severity=policy.default_severity,
        default_kind=policy.default_kind,
    )
    unpacked = _unpacked(parsed, config)
    notes = list(unpacked.notes)
    written = parsed.text
    if follows_up is not None:  # the same customer's request: naming it tells them nothing new
        written = f"This follows up on {follows_up.id}, which is {follows_up.status}.\n\n{written}"
    data = SubmitRequest(
        customer_id=customer.id,
        kind=tags.kind,
        severity=tags.severity,
        channel="email",
        title=tags.title,
        description=_text_with_notes(written, notes),
        received_at=arrived,
    )
    request = intake.file_request(session, actor=actor, data=data, config=config).request
    notes += _store_samples(
        session, actor=actor, request_id=request.id, files=unpacked.samples, config=config, samples_dir=samples_dir
    )
    if acknowledge_sender and parsed.sender:
        _acknowledge_sender(session, request=request, customer=customer, parsed=parsed, config=config)
    return request, notes


def _acknowledge_sender(
    session: Session, *, request: ReleaseRequest, customer: Customer, parsed: ParsedMail, config: AppConfig
) -> None:
    """The request.received notice, also to the sender when they are not among the customer's recipients, as a
    reply to their message. Its context is the one the customer's recipients (or the team) got."""
    prefs = effective(session, customer=customer)
    if parsed.sender in {a.lower() for a in prefs.email_recipients}:
        return
    template = session.scalar(
        select(Notification)
        .where(Notification.request_id == request.id, Notification.event == "request.received")
        .order_by((Notification.audience == "customer").desc(), Notification.created_at)
        .limit(1)
    )
    context = {**(template.context if template else {}), "routing_reason": ""}  # who is off stays internal
    if not parsed.synthetic_id:
        context["in_reply_to"] = parsed.message_id
    now = db_now(session)
    queue(
        session,
        request_id=request.id,
        event="request.received",
        recipient=Recipient("customer", "email", parsed.sender, prefs.language),
        context=context,
        at=prefs.deliver_at(severity=request.severity, at=now, held_back=config.notifications.quiet_hours.severities),
    )


def _add_to_request(
    session: Session,
    *,
    actor: Person,
    request: ReleaseRequest,
    parsed: ParsedMail,
    mail_id: int,
    config: AppConfig,
    samples_dir: Path,
) -> tuple[str, list[str]]:
    """The message on the request's timeline (the customer sees it), its attachments as samples, the owner and
    team told; a request waiting for information is answered (its clock runs again). → (outcome, notes)"""
    unpacked = _unpacked(parsed, config)
    notes = list(unpacked.notes) + _store_samples(
        session, actor=actor, request_id=request.id, files=unpacked.samples, config=config, samples_dir=samples_dir
    )
    message = _text_with_notes(parsed.text, notes) or "(an e-mail without text)"
    event = record_now(
        session,
        actor=actor_of(actor),
        action=CUSTOMER_MESSAGE_EVENT,
        entity_type="request",
        entity_id=request.id,
        request_id=request.id,
        after={"message": message, "from": parsed.sender, "mail_id": mail_id},
    )
    answered = request.status == Status.needs_info
    if answered:
        request = requests.answer(session, actor=actor, request_id=request.id, data=Answer(message=message))
    customer = session.get(Customer, request.customer_id)
    notify(
        session,
        request=request,
        event=CUSTOMER_MESSAGE_EVENT,
        targets=["owner", "internal_channel"],
        context={
            "message": message,
            "sender": parsed.sender or "",
            "sender_name": parsed.sender_name or "",
            "customer": customer.name,
            "samples": len(unpacked.samples),
            "answered": answered,
        },
        config=config,
        at=event.occurred_at,
        key=str(mail_id),
    )
    return ("answered" if answered else "threaded"), notes


def _reply_to_unknown(session: Session, *, parsed: ParsedMail, config: AppConfig) -> bool:
    """A polite reply saying how to reach support, at most once per sender per UTC day (the outbox's dedupe
    key); False when one was already queued today. It quotes nothing of the message: a forged sender must
    not receive a stranger's text from us."""
    policy = config.intake.email
    now = db_now(session)
    context = {"auto_replied": True, "support_phone": policy.support_phone, "portal_url": policy.portal_url}
    if not parsed.synthetic_id:
        context["in_reply_to"] = parsed.message_id
    language = "ru" if _CYRILLIC.search(parsed.subject + parsed.text[:2000]) else "en"
    row = queue(
        session,
        request_id=None,
        event=UNKNOWN_SENDER_EVENT,
        recipient=Recipient("customer", "email", parsed.sender, language),
        context=context,
        at=now,
        key=now.astimezone(UTC).date().isoformat(),
        actor=MAIL,
    )
    return row is not None


# --- the duty manager's side ----------------------------------------------------------------------


def list_mail(session: Session, *, actor: Person, outcome: str | None = None, limit: int = 50) -> list[InboundMail]:
    """The mailbox, newest first (without the raw bytes), optionally only one outcome (`held`)."""
    access.authorize(actor, "mail.read")
    query = select(InboundMail).options(defer(InboundMail.raw))
    if outcome is not None:
        query = query.where(InboundMail.outcome == outcome)
    return list(session.scalars(query.order_by(InboundMail.received_at.desc(), InboundMail.id.desc()).limit(limit)))


def held_count(session: Session, *, actor: Person) -> int:
    """How many messages wait for a duty manager (the console's navigation shows it): an index-only count."""
    access.authorize(actor, "mail.read")
    return session.scalar(select(func.count()).select_from(InboundMail).where(InboundMail.outcome == "held")) or 0


def read_mail(session: Session, *, actor: Person, mail_id: int) -> InboundMail:
    access.authorize(actor, "mail.read")
    mail = session.get(InboundMail, mail_id)
    if mail is None:
        raise NotFound(f"no mail {mail_id}")
    return mail


def describe(mail: InboundMail, *, config: AppConfig) -> MailDetail:
    """The row with what its message says: its text (never its HTML) and the attachments it carries."""
    parsed = parse(mail.raw, headers_only=mail.size > config.intake.email.max_message_bytes, size=mail.size)
    text = parsed.body[:TEXT_LIMIT] if not parsed.headers_only else "(too large: not parsed; download it raw)"
    return MailDetail(
        **MailOut.model_validate(mail).model_dump(),
        text=text,
        attachments=[
            MailAttachmentOut(filename=a.filename, content_type=a.content_type, size=len(a.data))
            for a in parsed.attachments
        ],
        defects=list(parsed.defects),
        noise=parsed.noise,
    )


def assign_mail(
    session: Session,
    *,
    actor: Person,
    mail_id: int,
    customer_id: str | None = None,
    request_id: str | None = None,
    config: AppConfig,
    samples_dir: Path,
) -> InboundMail:
    """A duty manager files a held or ignored message for a customer (as a new request they submit), or adds it
    to a request as the customer's message. Audited (`mail.assigned`); the message becomes `assigned`."""
    access.authorize(actor, "mail.assign")
    if (customer_id is None) == (request_id is None):
        raise InvalidInput("give exactly one of customer_id and request_id", field="customer_id")
    mail = session.get(InboundMail, mail_id, with_for_update=True)
    if mail is None:
        raise NotFound(f"no mail {mail_id}")
    if mail.outcome not in ("held", "ignored"):
        raise Conflict(f"mail {mail_id} is already {mail.outcome}; only held or ignored mail can be assigned")
    # a person decided: read it whole, even past the automatic size limit; a truncated one files no attachment
    parsed = parse(mail.raw, size=mail.size)
    now = db_now(session)
    before = {"outcome": mail.outcome, "reason": mail.reason}
    if customer_id is not None:
        customer = session.get(Customer, customer_id)
        if customer is None or not access.can_see_customer(session, actor, customer_id):
            raise InvalidInput(f"unknown customer '{customer_id}'", field="customer_id")
        request, notes = _file_new(
            session,
            actor=actor,
            customer=customer,
            parsed=parsed,
            arrived=_arrival(mail.received_at, now=now, config=config),
            config=config,
            samples_dir=samples_dir,
            acknowledge_sender=parsed.noise is None,  # a robot's message is filed, never answered
        )
        reason = f"filed as {request.id} by {label(actor)}"
    else:
        request = get_visible(session, actor=actor, request_id=request_id)
        outcome, notes = _add_to_request(
            session,
            actor=actor,
            request=request,
            parsed=parsed,
            mail_id=mail.id,
            config=config,
            samples_dir=samples_dir,
        )
        answered = " (it answered the request's question)" if outcome == "answered" else ""
        reason = f"added to {request.id} by {label(actor)}{answered}"
    mail.outcome, mail.reason = "assigned", _with_notes(reason, notes)
    mail.request_id, mail.customer_id = request.id, request.customer_id
    mail.assigned_by_id, mail.assigned_at = actor.id, now
    session.flush()
    record(
        session,
        actor=actor_of(actor),
        action="mail.assigned",
        entity_type="mail",
        entity_id=str(mail.id),
        request_id=request.id,
        before=before,
        after={"outcome": "assigned", "reason": mail.reason, "customer_id": request.customer_id},
    )
    return mail
