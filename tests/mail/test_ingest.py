"""`workflows.mail_intake.ingest` against real Postgres: every outcome a message can have, the customer's
message threading onto their request (answering its question and restarting the clock), the duty manager's
assignment — and, with a real SMTP server and the real deliverer, the acknowledgement and the reply to an
unknown sender as they leave (Auto-Submitted, In-Reply-To), and the customer's text escaped in Slack."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.clock import db_now
from release_requests.customers.models import Customer
from release_requests.errors import Conflict, InvalidInput
from release_requests.mail.models import InboundMail
from release_requests.notifications.models import Notification
from release_requests.notifications.render import render
from release_requests.notifications.transports import message_id as notice_message_id
from release_requests.people.models import Person
from release_requests.requests import service as requests
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.requests.presentation import request_timeline
from release_requests.requests.schemas import Cancel, NeedsInfo
from release_requests.samples.store import sample_path
from release_requests.sla.service import status_of
from release_requests.workflows import intake
from release_requests.workflows.mail_intake import assign_mail, ingest, list_mail
from tests.mail.conftest import HUGE_MESSAGE_ID, SAMPLE, make_zip, message, with_email
from tests.notifications.conftest import INTERNAL, deliver_until_quiet


@pytest.fixture
def mailroom(session, build, config, samples_dir):
    return Mailroom(session, build, config, samples_dir)


class Mailroom:
    """A customer with a listed contact, and `send` running the real intake in the test's transaction."""

    def __init__(self, session, build, config, samples_dir) -> None:
        self.session, self.build, self.config, self.samples_dir = session, build, config, samples_dir
        self.customer = build.customer()
        self.contact = self.customer.email_contacts[0]
        # the session's database is shared: notices other tests committed are not this test's
        self._earlier = set(session.scalars(select(Notification.id)))

    def send(self, raw: bytes, *, config=None, received_at=None, source="pipe", **kwargs):
        return ingest(
            self.session,
            raw=raw,
            source=source,
            received_at=received_at,
            config=config or self.config,
            samples_dir=self.samples_dir,
            **kwargs,
        )

    def mail(self, result) -> InboundMail:
        return self.session.get(InboundMail, result.mail_id)

    def request(self, result) -> ReleaseRequest:
        return self.session.get(ReleaseRequest, result.request_id)

    def notices(self, **where) -> list[Notification]:
        """The notices queued since this mailroom opened (in the test's own transaction)."""
        query = select(Notification)
        for name, value in where.items():
            query = query.where(getattr(Notification, name) == value)
        rows = self.session.scalars(query.order_by(Notification.created_at, Notification.id))
        return [row for row in rows if row.id not in self._earlier]

    def events(self, action: str, entity_id: str | None = None) -> list[AuditEvent]:
        query = select(AuditEvent).where(AuditEvent.action == action)
        if entity_id is not None:
            query = query.where(AuditEvent.entity_id == entity_id)
        return list(self.session.scalars(query.order_by(AuditEvent.seq)))


def _stranger() -> str:
    return f"stranger-{uuid.uuid4().hex[:8]}@elsewhere.example"


# --- a new request --------------------------------------------------------------------------------


def test_a_contacts_message_files_a_request_with_its_attachments_and_the_zip_opened(mailroom):
    archive = make_zip([("payroll.exe", SAMPLE), ("helper.dll", b"MZ helper")], password=b"infected")
    raw = message(
        sender=f"Ivan Petrov <{mailroom.contact.upper()}>",
        subject="[S2] [FP] Payroll app flagged",
        attachments=(("report.txt.exe", b"MZ report"), ("samples.zip", archive)),
    )
    result = mailroom.send(raw)
    assert (result.outcome, result.duplicate) == ("filed", False)
    assert result.reason == "filed as a new request"
    request = mailroom.request(result)
    assert (request.channel, request.severity, request.kind, request.title) == (
        "email",
        2,
        "false_positive",
        "Payroll app flagged",
    )
    assert request.description.startswith("Our payroll calculator is detected")
    samples = mailroom.session.scalars(select(Sample).where(Sample.request_id == request.id)).all()
    assert sorted((s.filename, s.size) for s in samples) == [
        ("helper.dll", 9),
        ("payroll.exe", len(SAMPLE)),
        ("report.txt.exe", 9),
    ]
    stored = next(s for s in samples if s.filename == "payroll.exe")
    assert sample_path(mailroom.samples_dir, stored.sha256).read_bytes() == SAMPLE
    # the contact had no account: one was made, a customer user who cannot sign in
    person = mailroom.session.get(Person, request.submitted_by_id)
    assert (person.role, person.customer_id, person.email, person.name) == (
        "customer",
        mailroom.customer.id,
        mailroom.contact,
        "Ivan Petrov",
    )
    assert person.password_hash is None
    assert mailroom.events("person.created_from_mail", str(person.id))
    mail = mailroom.mail(result)
    assert (mail.outcome, mail.request_id, mail.customer_id, mail.source) == (
        "filed",
        request.id,
        mailroom.customer.id,
        "pipe",
    )
    assert mail.raw == raw and mail.sender == mailroom.contact
    [event] = mailroom.events("mail.received", str(mail.id))
    assert event.request_id == request.id
    assert event.after["outcome"] == "filed" and event.after["sender"] == mailroom.contact
    assert "Payroll" not in str(event.after)  # what it says stays in the mail row, never in the audit log
    # acknowledged: the customer's recipients get request.received (the sender is one of them)
    acks = mailroom.notices(request_id=request.id, event="request.received", audience="customer")
    assert {n.recipient for n in acks} >= {mailroom.contact}
    # a second message of the same contact reuses the account
    again = mailroom.send(message(sender=mailroom.contact, subject="another one"))
    assert mailroom.request(again).submitted_by_id == person.id


def test_when_the_message_reached_us_starts_the_clock_never_in_the_future_nor_too_old(mailroom):
    now = db_now(mailroom.session)
    hour_ago = (now - timedelta(hours=1)).replace(microsecond=0)
    received = f"from mx.customer.example by mx.vendor.example; {hour_ago.strftime('%a, %d %b %Y %H:%M:%S +0000')}"
    by_header = mailroom.send(message(sender=mailroom.contact, received=received))
    assert mailroom.request(by_header).received_at == hour_ago
    given = now - timedelta(minutes=5)
    assert mailroom.request(mailroom.send(message(sender=mailroom.contact), received_at=given)).received_at == given
    future = mailroom.send(message(sender=mailroom.contact), received_at=now + timedelta(days=1))
    assert mailroom.request(future).received_at == now
    ancient = mailroom.send(message(sender=mailroom.contact), received_at=now - timedelta(days=400))
    oldest = now - timedelta(hours=mailroom.config.intake.requests.max_backdate_hours)
    assert mailroom.request(ancient).received_at == oldest


def test_an_html_only_message_is_filed_as_text(mailroom):
    html = "<p>Payroll <b>flagged</b></p><script>steal()</script><img src='http://tracker.example/x.png'>"
    result = mailroom.send(message(sender=mailroom.contact, text=None, html=html))
    assert result.outcome == "filed"
    assert mailroom.request(result).description == "Payroll flagged"


def test_malformed_mime_is_filed_with_what_could_be_read_or_held_when_nothing_could(mailroom):
    broken = (
        f"From: {mailroom.contact}\r\nSubject: broken\r\nMessage-ID: <{uuid.uuid4().hex}@customer.example>\r\n"
        'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\nContent-Type: text/plain; charset=no-such\r\n\r\n'
        "the app is flagged\r\n--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename=x.exe\r\n\r\nTVqQ!!!\r\n"
    ).encode()  # no closing boundary, an unknown charset, broken base64
    result = mailroom.send(broken)
    assert result.outcome == "filed"
    assert mailroom.request(result).description == "the app is flagged"
    garbage = mailroom.send(b"\x00\x01\x02\xff" + uuid.uuid4().bytes)
    assert (garbage.outcome, garbage.reason) == ("held", "the message cannot be parsed (no header lines)")
    assert mailroom.mail(garbage).message_id.endswith("@inbound.invalid>")


def test_a_50_mb_attachment_is_held_whole_and_a_large_sample_is_noted(mailroom):
    huge = message(sender=mailroom.contact, attachments=(("disk.img", b"\x00" * (50 * 1024 * 1024)),))
    result = mailroom.send(huge)
    limit = mailroom.config.intake.email.max_message_bytes
    assert (result.outcome, result.reason) == (
        "held",
        f"{len(huge)} bytes, over max_message_bytes ({limit}): kept, not parsed",
    )
    mail = mailroom.mail(result)
    assert mail.size == len(huge) and len(mail.raw) == len(huge) and mail.sender == mailroom.contact
    mine = select(func.count()).select_from(ReleaseRequest).where(ReleaseRequest.customer_id == mailroom.customer.id)
    assert mailroom.session.scalar(mine) == 0
    small = with_email(mailroom.config, samples_max_bytes=1000)
    result = mailroom.send(message(sender=mailroom.contact, attachments=(("big.bin", b"x" * 5000),)), config=small)
    assert result.outcome == "filed"
    note = "big.bin: 5000 bytes, over the sample limit of 1000"
    assert result.reason == f"filed as a new request\n- {note}"
    assert mailroom.request(result).description.endswith(f"Not stored from the e-mail:\n- {note}")


def test_a_zip_bomb_files_the_report_without_unpacking_the_bomb(mailroom):
    bomb = make_zip([("zeros.bin", b"\x00" * 30_000_000)], password=b"infected")  # ~30 kB on the wire
    config = with_email(mailroom.config, max_unpacked_bytes=10_000_000)
    result = mailroom.send(message(sender=mailroom.contact, attachments=(("bomb.zip", bomb),)), config=config)
    assert result.outcome == "filed"
    limit = config.intake.samples.max_bytes
    assert f"bomb.zip → zeros.bin: declares 30000000 bytes, over the sample limit of {limit}" in result.reason
    assert mailroom.session.scalars(select(Sample).where(Sample.request_id == result.request_id)).all() == []


# --- replies --------------------------------------------------------------------------------------


def test_a_reply_answers_the_open_question_and_restarts_the_clock(mailroom, build):
    filed = mailroom.send(message(sender=mailroom.contact))
    triage = build.person("triage")
    intake.triage(
        mailroom.session,
        actor=triage,
        request_id=filed.request_id,
        decision=NeedsInfo(decision="needs_info", question="Which file is flagged?"),
        config=mailroom.config,
    )
    request = mailroom.request(filed)
    assert status_of(mailroom.session, request=request, config=mailroom.config, now=db_now(mailroom.session)).paused
    question = mailroom.notices(request_id=request.id, event="request.needs_info", channel="email")[0]
    reply = message(
        sender=mailroom.contact,
        subject="Re: We need information from you",  # no id in the subject: the headers find it
        text="It is C:\\payroll.exe\n\nOn Mon, Support wrote:\n> Which file is flagged?\n",
        in_reply_to=notice_message_id(question.id),
        attachments=(("payroll.exe", SAMPLE),),
    )
    result = mailroom.send(reply)
    assert (result.outcome, result.request_id) == ("answered", request.id)
    assert result.reason == "answered its question (found by In-Reply-To)"
    mailroom.session.refresh(request)
    assert request.status == "submitted"
    sla = status_of(mailroom.session, request=request, config=mailroom.config, now=db_now(mailroom.session))
    assert not sla.paused
    # the customer sees their own message on their timeline; the mail bookkeeping stays staff-only
    customer_user = mailroom.session.get(Person, request.submitted_by_id)
    seen = request_timeline(mailroom.session, actor=customer_user, request_id=request.id)
    [said] = [e for e in seen if e.action == "request.customer_message"]
    assert said.after["message"] == "It is C:\\payroll.exe" and said.after["from"] == mailroom.contact
    assert not [e for e in seen if e.action.startswith("mail.")]
    assert [e.after["answer"] for e in seen if e.action == "request.answered"] == ["It is C:\\payroll.exe"]
    assert mailroom.session.scalars(select(Sample.filename).where(Sample.request_id == request.id)).all() == [
        "payroll.exe"
    ]
    told = mailroom.notices(request_id=request.id, event="request.customer_message")
    assert {n.audience for n in told} == {"internal"} and told[0].context["answered"] is True


def test_replies_thread_by_references_and_by_the_id_in_the_subject(mailroom):
    filed = mailroom.send(message(sender=mailroom.contact))
    root = f"<{filed.request_id}@release-requests>"
    by_refs = mailroom.send(message(sender=mailroom.contact, subject="Re: hi", references=f"<x@y> {root} <z@y>"))
    assert (by_refs.outcome, by_refs.request_id, by_refs.reason) == (
        "threaded",
        filed.request_id,
        "added as the customer's message (found by References)",
    )
    by_subject = mailroom.send(message(sender=mailroom.contact, subject=f"[S1] more [{filed.request_id}]"))
    assert (by_subject.outcome, by_subject.request_id) == ("threaded", filed.request_id)
    assert mailroom.request(filed).severity == 3  # a tag in a reply changes nothing: severity is staff's
    # a reply to the reply threads through the earlier inbound message
    earlier = mailroom.mail(by_subject).message_id
    chained = mailroom.send(message(sender=mailroom.contact, subject="Re: more", in_reply_to=earlier))
    assert (chained.outcome, chained.request_id) == ("threaded", filed.request_id)


def test_a_reference_to_another_customers_request_does_not_stop_threading(mailroom, build):
    mine = mailroom.send(message(sender=mailroom.contact))
    theirs = mailroom.send(message(sender=build.customer().email_contacts[0]))
    their_root, my_root = (f"<{r.request_id}@release-requests>" for r in (theirs, mine))
    passed = "In-Reply-To names a request that is not this customer's, or no request"
    by_refs = mailroom.send(
        message(sender=mailroom.contact, subject="Re: x", in_reply_to=their_root, references=f"{my_root} {their_root}")
    )
    assert (by_refs.outcome, by_refs.request_id) == ("threaded", mine.request_id)
    assert by_refs.reason == f"added as the customer's message (found by References; {passed})"
    raw = message(
        sender=mailroom.contact, subject=f"Re: [{mine.request_id}]", in_reply_to=their_root, references=their_root
    )
    by_subject = mailroom.send(raw)
    assert (by_subject.outcome, by_subject.request_id) == ("threaded", mine.request_id)
    assert by_subject.reason == f"added as the customer's message (found by subject; {passed})"
    assert not mailroom.events("request.customer_message", theirs.request_id)


def test_a_reply_to_a_request_that_is_over_files_a_new_one_that_names_it(mailroom):
    filed = mailroom.send(message(sender=mailroom.contact))
    submitter = mailroom.session.get(Person, mailroom.request(filed).submitted_by_id)
    requests.cancel(
        mailroom.session, actor=submitter, request_id=filed.request_id, data=Cancel(reason="a restart fixed it")
    )
    reply = message(
        sender=mailroom.contact,
        subject=f"Re: [{filed.request_id}] Payroll app flagged",
        text="It is flagged again since today.",
        in_reply_to=mailroom.mail(filed).message_id,
    )
    result = mailroom.send(reply)
    assert result.outcome == "filed" and result.request_id != filed.request_id
    assert result.reason == (
        f"filed as a new request: it follows up on {filed.request_id}, which is cancelled (found by In-Reply-To)"
    )
    followup = mailroom.request(result)
    assert (followup.customer_id, followup.channel, followup.title) == (
        mailroom.customer.id,
        "email",
        "Payroll app flagged",
    )
    assert followup.description == (
        f"This follows up on {filed.request_id}, which is cancelled.\n\nIt is flagged again since today."
    )
    assert mailroom.request(filed).status == "cancelled"
    assert not mailroom.events("request.customer_message", filed.request_id)


def test_an_unknown_id_or_another_customers_request_files_a_new_one(mailroom, build):
    unknown = mailroom.send(message(sender=mailroom.contact, subject="[RR-1999-999999] old problem"))
    assert (unknown.outcome, mailroom.request(unknown).title) == ("filed", "old problem")
    assert (
        unknown.reason == "filed as a new request (subject names a request that is not this customer's, or no request)"
    )
    other = build.customer()
    theirs = mailroom.send(message(sender=other.email_contacts[0], subject="their secret project"))
    [their_notice] = mailroom.notices(request_id=theirs.request_id, event="request.received", audience="internal")[:1]
    raw = message(
        sender=mailroom.contact,
        subject=f"Re: [{theirs.request_id}] their secret project",
        in_reply_to=notice_message_id(their_notice.id),
    )
    result = mailroom.send(raw)
    assert result.outcome == "filed" and result.request_id != theirs.request_id
    mine = mailroom.request(result)
    assert mine.customer_id == mailroom.customer.id and theirs.request_id not in mine.title
    assert not mailroom.events("request.customer_message", theirs.request_id)


# --- not filed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"auto_submitted": "auto-replied"}, {"precedence": "junk"}, {"x_loop": "support"}, {"return_path": "<>"}],
)
def test_auto_replies_and_bounces_are_ignored_never_answered(mailroom, headers):
    filed = mailroom.send(message(sender=mailroom.contact))
    before = len(mailroom.notices())
    raw = message(
        sender=mailroom.contact,
        subject="Out of office",
        in_reply_to=f"<{filed.request_id}@release-requests>",
        **headers,
    )
    result = mailroom.send(raw)
    assert result.outcome == "ignored" and result.request_id is None
    assert result.reason.startswith("written by a machine (") and result.reason.endswith(
        "): not answered, nothing filed"
    )
    assert len(mailroom.notices()) == before  # nothing queued: no loop
    assert not mailroom.events("request.customer_message", filed.request_id)
    stranger = mailroom.send(message(sender=f"MAILER-DAEMON@{uuid.uuid4().hex[:6]}.example"))
    assert stranger.outcome == "ignored" and len(mailroom.notices()) == before
    ours = mailroom.send(message(sender=mailroom.config.notifications.email.from_address))
    assert (ours.outcome, ours.reason) == ("ignored", "from our own address: not answered, nothing filed")


def test_an_unknown_sender_is_held_and_told_how_to_reach_support_once_a_day(mailroom):
    sender = _stranger()
    first = mailroom.send(message(sender=f"Stranger <{sender}>"))
    assert (first.outcome, first.request_id) == ("held", None)
    assert first.reason == "unknown sender: not a contact of any customer; replied with how to reach support"
    second = mailroom.send(message(sender=sender.upper(), subject="again?"))
    assert second.reason == "unknown sender: not a contact of any customer; already replied to this sender today"
    [reply] = mailroom.notices(event="mail.unknown_sender", recipient=sender)
    assert reply.request_id is None and reply.audience == "customer" and reply.language == "en"
    assert reply.context["auto_replied"] is True
    assert reply.context["in_reply_to"] == mailroom.mail(first).message_id
    assert reply.context["support_phone"] == mailroom.config.intake.email.support_phone
    russian = mailroom.send(message(sender=_stranger(), subject="Ложное срабатывание"))
    assert mailroom.notices(event="mail.unknown_sender", recipient=mailroom.mail(russian).sender)[0].language == "ru"


def test_the_same_message_id_files_nothing_twice(mailroom):
    raw = message(sender=mailroom.contact)
    first = mailroom.send(raw)
    again = mailroom.send(raw, source="imap")
    assert again.duplicate and (again.mail_id, again.outcome, again.request_id) == (
        first.mail_id,
        "filed",
        first.request_id,
    )
    resent = mailroom.send(message(sender=mailroom.contact, message_id=mailroom.mail(first).message_id, text="x"))
    assert resent.duplicate and resent.request_id == first.request_id
    count = select(func.count()).select_from(ReleaseRequest).where(ReleaseRequest.customer_id == mailroom.customer.id)
    assert mailroom.session.scalar(count) == 1
    assert len(mailroom.events("mail.duplicate", str(first.mail_id))) == 2


def test_a_forged_from_is_held_unanswered_when_authentication_is_required(mailroom):
    config = with_email(
        mailroom.config, require_authentication="spf_or_dkim", trusted_authserv_ids=["mx.vendor.example"]
    )
    domain = mailroom.contact.rpartition("@")[2]
    forged = message(
        sender=mailroom.contact,
        authentication_results="mx.vendor.example; spf=pass smtp.mailfrom=attacker@evil.example; dkim=none",
    )
    before = len(mailroom.notices())
    result = mailroom.send(forged, config=config)
    assert result.outcome == "held" and result.request_id is None
    assert result.reason.startswith("sender not authenticated: neither SPF nor DKIM passed for the From domain")
    assert result.reason.endswith("; not answered")
    assert len(mailroom.notices()) == before
    assert mailroom.mail(result).authentication["spf_domain"] == "evil.example"
    self_signed = message(
        sender=mailroom.contact,
        authentication_results=f"mx.customer.example; spf=pass smtp.mailfrom={mailroom.contact}",  # not ours
    )
    assert mailroom.send(self_signed, config=config).outcome == "held"
    genuine = message(
        sender=mailroom.contact,
        authentication_results=f"mx.vendor.example; spf=softfail smtp.mailfrom=x@{domain}; dkim=pass header.d={domain}",
    )
    assert mailroom.send(genuine, config=config).outcome == "filed"


def test_staff_and_contacts_of_several_customers_are_held(mailroom, build):
    staff = build.person("tam")
    assert (
        mailroom.send(message(sender=staff.email)).reason
        == "sent by a staff address: assign it to a customer or a request"
    )
    first, second = build.customer(), build.customer()
    shared = first.email_contacts[0]
    second.email_contacts = [shared.upper()]  # an outsourced SOC serving both
    mailroom.session.flush()
    result = mailroom.send(message(sender=shared))
    assert (result.outcome, result.reason) == (
        "held",
        f"contact of several customers ({', '.join(sorted([first.id, second.id]))}): assign it by hand",
    )


# --- hostile messages never stop intake -----------------------------------------------------------


def test_a_nul_or_a_huge_message_id_or_a_nul_in_the_text_is_filed_and_intake_goes_on(mailroom):
    nul_id = message(sender=mailroom.contact, message_id="<abMARKcd@customer.example>")
    huge_id = message(sender=mailroom.contact, message_id="<MARK@x>")
    nul_text = message(sender=mailroom.contact, subject="Payroll MARK flagged", text="the file MARK is flagged")
    hostile = [
        nul_id.replace(b"MARK", b"\x00"),
        huge_id.replace(b"<MARK@x>", HUGE_MESSAGE_ID),
        nul_text.replace(b" MARK ", b"\x00"),
    ]
    results = [mailroom.send(raw) for raw in hostile]
    assert [r.outcome for r in results] == ["filed"] * 3
    for raw, result in zip(hostile, results, strict=True):
        mail = mailroom.mail(result)
        assert mail.raw == raw and mail.outcome == "filed"
    assert [mailroom.mail(r).message_id.endswith("@inbound.invalid>") for r in results] == [True, True, False]
    filed = mailroom.request(results[2])
    assert (filed.title, filed.description) == ("Payrollflagged", "the fileis flagged")
    assert mailroom.send(message(sender=mailroom.contact)).outcome == "filed"


@pytest.fixture
def refuse(mailroom):
    """`refuse("22021")`: from now on Postgres refuses every new request with that SQLSTATE (`refuse(None)`:
    no more). A trigger that goes with the test's transaction: what a value no parser foresaw, a limit or
    a server going away does to filing."""
    session = mailroom.session
    session.execute(text("RESET ROLE"))  # the test's superuser: the app role may not create triggers
    session.execute(
        text(
            "CREATE FUNCTION refuse_request() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF coalesce(current_setting('rr_test.refuse', true), '') <> '' THEN "
            "RAISE EXCEPTION 'refused by the test' USING ERRCODE = current_setting('rr_test.refuse'); END IF; "
            "RETURN NEW; END $$"
        )
    )
    session.execute(
        text(
            "CREATE TRIGGER refuse_request BEFORE INSERT ON release_requests "
            "FOR EACH ROW EXECUTE FUNCTION refuse_request()"
        )
    )
    session.execute(text(f"SET ROLE {db.APP_ROLE}"))

    def set_to(sqlstate: str | None) -> None:
        session.execute(text("SELECT set_config('rr_test.refuse', :s, true)"), {"s": sqlstate or ""})

    return set_to


@pytest.mark.parametrize(
    ("sqlstate", "error"),
    [("22021", "DataError"), ("23514", "IntegrityError"), ("54000", "OperationalError")],
)
def test_a_message_the_database_refuses_is_held_with_its_bytes_and_the_next_one_is_filed(
    mailroom, refuse, sqlstate, error
):
    refuse(sqlstate)
    raw = message(sender=mailroom.contact, attachments=(("payroll.exe", SAMPLE),))
    result = mailroom.send(raw)
    assert (result.outcome, result.reason, result.request_id) == ("held", f"could not be filed: {error}", None)
    mail = mailroom.mail(result)
    assert (mail.outcome, mail.raw, mail.sender) == ("held", raw, mailroom.contact)
    assert mailroom.events("mail.received", str(mail.id))[0].after["outcome"] == "held"
    # nothing of the attempt stayed: no contact account, no notice
    assert mailroom.session.scalar(select(Person).where(Person.email == mailroom.contact)) is None
    assert mailroom.notices() == []
    refuse(None)
    assert mailroom.send(message(sender=mailroom.contact)).outcome == "filed"


@pytest.mark.parametrize("sqlstate", ["40001", "53100"])  # a serialization failure; the server's disk full
def test_what_a_retry_can_fix_is_raised_so_the_message_is_taken_again(mailroom, refuse, sqlstate):
    refuse(sqlstate)
    with pytest.raises(OperationalError):
        mailroom.send(message(sender=mailroom.contact))


def test_a_truncated_message_keeps_its_size_and_is_filed_by_hand_without_its_attachments(mailroom, build):
    whole = message(sender=mailroom.contact, text="Everything is flagged.", attachments=(("payroll.exe", SAMPLE),))
    first = len(whole) - 200  # cut inside the attachment
    config = with_email(mailroom.config, max_message_bytes=first - 1)
    result = mailroom.send(whole[:first], config=config, size=len(whole), truncated=True, source="imap")
    assert result.outcome == "held"
    assert result.reason == (
        f"{len(whole)} bytes, over max_message_bytes ({first - 1}): truncated, only its first {first} bytes kept "
        "(read it whole in the mailbox), not parsed"
    )
    mail = mailroom.mail(result)
    assert (mail.size, mail.raw) == (len(whole), whole[:first])
    with pytest.raises(InvalidInput, match="whole size"):
        mailroom.send(whole, truncated=True)
    manager = build.person("duty_manager")
    assigned = assign_mail(
        mailroom.session,
        actor=manager,
        mail_id=result.mail_id,
        customer_id=mailroom.customer.id,
        config=config,
        samples_dir=mailroom.samples_dir,
    )
    note = (
        f"attachments: none stored: only the first bytes of this {len(whole)}-byte message were fetched; "
        "it is whole in the mailbox"
    )
    request = mailroom.session.get(ReleaseRequest, assigned.request_id)
    assert request.description == f"Everything is flagged.\n\nNot stored from the e-mail:\n- {note}"
    assert assigned.reason.endswith(f"\n- {note}")
    assert mailroom.session.scalars(select(Sample).where(Sample.request_id == request.id)).all() == []


# --- the duty manager ----------------------------------------------------------------------------


def test_a_duty_manager_files_or_attaches_a_held_message(mailroom, build):
    manager = build.person("duty_manager")
    held = mailroom.send(message(sender=_stranger(), subject="[S1] urgent, from my private address"))
    assert held.mail_id in [m.id for m in list_mail(mailroom.session, actor=manager, outcome="held", limit=500)]
    mail = assign_mail(
        mailroom.session,
        actor=manager,
        mail_id=held.mail_id,
        customer_id=mailroom.customer.id,
        config=mailroom.config,
        samples_dir=mailroom.samples_dir,
    )
    request = mailroom.session.get(ReleaseRequest, mail.request_id)
    assert (mail.outcome, mail.assigned_by_id, request.severity, request.submitted_by_id) == (
        "assigned",
        manager.id,
        1,
        manager.id,
    )
    assert mail.reason == f"filed as {request.id} by {manager.name} (duty_manager)"
    assert mailroom.events("mail.assigned", str(mail.id))[0].before["outcome"] == "held"
    with pytest.raises(Conflict, match="already assigned"):
        assign_mail(
            mailroom.session,
            actor=manager,
            mail_id=held.mail_id,
            request_id=request.id,
            config=mailroom.config,
            samples_dir=mailroom.samples_dir,
        )
    other = mailroom.send(message(sender=_stranger(), text="more details"))
    with pytest.raises(InvalidInput, match="exactly one"):
        assign_mail(
            mailroom.session,
            actor=manager,
            mail_id=other.mail_id,
            config=mailroom.config,
            samples_dir=mailroom.samples_dir,
        )
    attached = assign_mail(
        mailroom.session,
        actor=manager,
        mail_id=other.mail_id,
        request_id=request.id,
        config=mailroom.config,
        samples_dir=mailroom.samples_dir,
    )
    assert (attached.outcome, attached.request_id) == ("assigned", request.id)
    [said] = mailroom.events("request.customer_message", request.id)
    assert said.after["message"] == "more details"


# --- what leaves: real SMTP, real Slack, the real deliverer ---------------------------------------


def _ingest_committed(scene, raw: bytes, samples_dir, config=None):
    with db.transaction(scene.sessions) as s:
        return ingest(
            s, raw=raw, source="imap", received_at=None, config=config or scene.config, samples_dir=samples_dir
        )


def test_the_acknowledgement_and_the_unknown_sender_reply_leave_as_replies(scene, make_deliverer, smtp, samples_dir):
    customer_id = scene.customer()
    person_id = scene.person("customer", customer_id=customer_id)  # a user of the customer, not on its contact list
    with db.transaction(scene.sessions) as s:
        sender = s.get(Person, person_id).email
        contacts = s.get(Customer, customer_id).email_contacts
    raw = message(sender=sender, subject="[S3] Payroll flagged", attachments=(("payroll.exe", SAMPLE),))
    filed = _ingest_committed(scene, raw, samples_dir)
    stranger = _stranger()
    first_words = message(sender=stranger)
    held = [_ingest_committed(scene, m, samples_dir) for m in (first_words, message(sender=stranger, subject="?"))]
    assert filed.outcome == "filed" and [h.outcome for h in held] == ["held", "held"]
    deliver_until_quiet(make_deliverer())
    by_recipient: dict[str, list] = {}
    for received in smtp.received:
        for rcpt in received.rcpt_tos:
            by_recipient.setdefault(rcpt, []).append(received.message)
    [ack] = by_recipient[sender]
    assert ack["In-Reply-To"] == _message_id(raw) and _message_id(raw) in ack["References"]
    assert f"<{filed.request_id}@release-requests>" in ack["References"]
    assert ack["Auto-Submitted"] == "auto-generated"
    assert ack["Subject"] == f"[{filed.request_id}] We received your request: Payroll flagged"
    assert "Your first qualified response is due by" in ack.get_body(("plain",)).get_content()
    for contact in contacts:  # the customer's own recipients get theirs, not as a reply
        [theirs] = by_recipient[contact]
        assert theirs["Subject"] == ack["Subject"] and theirs["In-Reply-To"] is None
    [reply] = by_recipient[stranger]  # two messages, one reply: once per sender per day
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == _message_id(first_words)
    assert reply["Subject"] == "Your message to premium support"
    text = reply.get_body(("plain",)).get_content()
    assert scene.config.intake.email.support_phone in text and scene.config.intake.email.portal_url in text


def _message_id(raw: bytes) -> str:
    return message_from_bytes(raw)["Message-ID"]


def test_the_customers_words_are_escaped_in_the_internal_slack_notice(scene, make_deliverer, slack, samples_dir):
    customer_id = scene.customer()
    with db.transaction(scene.sessions) as s:
        contact = s.get(Customer, customer_id).email_contacts[0]
    filed = _ingest_committed(scene, message(sender=contact), samples_dir)
    hostile = "<!channel> urgent! <https://evil.example|click here> & more"
    reply = message(sender=contact, subject=f"Re: [{filed.request_id}]", text=hostile)
    assert _ingest_committed(scene, reply, samples_dir).outcome == "threaded"
    deliver_until_quiet(make_deliverer())
    posts = [m for m in slack.messages(INTERNAL) if "Message from" in m["text"]]
    assert len(posts) == 1
    body = str(posts[0]["blocks"])
    assert "&lt;!channel&gt; urgent! &lt;https://evil.example|click here&gt; &amp; more" in body
    assert "<!channel>" not in body and "<https://evil.example" not in body


def test_received_at_given_by_the_mailbox_is_kept(mailroom):
    moment = datetime.now(UTC) - timedelta(minutes=30)
    result = mailroom.send(message(sender=mailroom.contact), received_at=moment, source="imap")
    assert mailroom.mail(result).received_at == mailroom.request(result).received_at


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_notices_render_in_both_languages_from_what_intake_queues(mailroom, language):
    filed = mailroom.send(message(sender=mailroom.contact))
    hostile = "<!channel> see <b>this</b>"
    mailroom.send(message(sender=mailroom.contact, subject=f"Re: [{filed.request_id}]", text=hostile))
    stranger = _stranger()
    mailroom.send(message(sender=stranger))
    told = mailroom.notices(request_id=filed.request_id, event="request.customer_message")[0]
    [reply] = mailroom.notices(event="mail.unknown_sender", recipient=stranger)
    request = {
        "id": filed.request_id,
        "title": "Payroll",
        "status": "submitted",
        "severity": 3,
        "kind": "false_positive",
    }
    for row, about in ((told, request), (reply, None)):
        rendered = render(
            notification_id=row.id,
            event=row.event,
            language=language,
            audience=row.audience,
            context=row.context,
            request=about,
            sla=None,
            status_url="http://127.0.0.1:8000/requests/x",
            severities=mailroom.config.severity,
        )
        assert "\n" not in rendered.subject
        assert "<!channel>" not in json.dumps(rendered.blocks) and "<b>" not in rendered.html
    assert (
        hostile
        in render(
            notification_id=told.id,
            event=told.event,
            language=language,
            audience="internal",
            context=told.context,
            request=request,
            sla=None,
            status_url="",
            severities=mailroom.config.severity,
        ).text
    )


def test_the_same_message_at_the_same_moment_files_once(scene, samples_dir):
    customer_id = scene.customer()
    with db.transaction(scene.sessions) as s:
        contact = s.get(Customer, customer_id).email_contacts[0]
    raw = message(sender=contact)
    results = {}
    with db.transaction(scene.sessions) as first:
        results["first"] = ingest(
            first, raw=raw, source="imap", received_at=None, config=scene.config, samples_dir=samples_dir
        )

        def second() -> None:  # a second poller: waits on the Message-ID's unique key until the first commits
            results["second"] = _ingest_committed(scene, raw, samples_dir)

        racer = threading.Thread(target=second)
        racer.start()
        racer.join(1.0)
        assert racer.is_alive()  # blocked, not filing a second request
    racer.join(10)
    assert results["second"].duplicate and results["second"].request_id == results["first"].request_id
    with db.transaction(scene.sessions) as s:
        count = select(func.count()).select_from(ReleaseRequest).where(ReleaseRequest.customer_id == customer_id)
        assert s.scalar(count) == 1
