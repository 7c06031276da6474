"""Reading a real mailbox: Dovecot on loopback (tests/mail/dovecot.py), the real poller and IDLE listener
(`workflows.mailbox`), the real intake behind them and the real deliverer sending the acknowledgement over
SMTP (aiosmtpd). Each test has its own database and its own mailbox (folder) on the module's server.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select, text

from devservers import free_port
from release_requests import db, runtime
from release_requests.config import get_config
from release_requests.errors import ConfigError
from release_requests.mail.imap import MailboxError, parse_imap_url
from release_requests.mail.models import InboundMail, MailboxCursor
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.samples.store import sample_path
from release_requests.server import check_mail_intake
from release_requests.settings import Settings, get_settings
from release_requests.workflows.mailbox import listen, poll_once
from tests.conftest import REPO
from tests.mail.conftest import HUGE_MESSAGE_ID, SAMPLE, with_email
from tests.mail.conftest import message as compose
from tests.mail.dovecot import LocalDovecot
from tests.notifications.conftest import deliver_until_quiet


@pytest.fixture(scope="module")
def dovecot() -> Iterator[LocalDovecot]:
    with LocalDovecot() as server:
        yield server


@dataclass
class World:
    """One test's database, mailbox, settings and customer (whose contact writes to support)."""

    dovecot: LocalDovecot
    mailbox: str
    settings: Settings
    sessions: object
    config: object
    customer: str
    contact: str

    def message(self, *, subject: str = "[S2] Payroll app flagged") -> bytes:
        """The contact's message with a sample attached, with CRLF line ends as on the wire and in a mailbox."""
        raw = compose(sender=f"SOC Team <{self.contact}>", subject=subject, attachments=(("payroll.exe", SAMPLE),))
        return raw.replace(b"\n", b"\r\n")

    def append(self, raw: bytes, **kwargs) -> int:
        return self.dovecot.append(raw, self.mailbox, **kwargs)

    def poll(self, *, max_message_bytes: int | None = None, **settings):
        config = (
            self.config if max_message_bytes is None else with_email(self.config, max_message_bytes=max_message_bytes)
        )
        return poll_once(self.sessions, settings=self.settings.model_copy(update=settings), config=config)

    def query(self, statement):
        with db.transaction(self.sessions) as s:
            return list(s.scalars(statement))

    def requests(self) -> list[ReleaseRequest]:
        return self.query(select(ReleaseRequest).where(ReleaseRequest.customer_id == self.customer))

    def cursor(self) -> MailboxCursor | None:
        return next(iter(self.query(select(MailboxCursor))), None)


@pytest.fixture
def world(dovecot, scene, committed_db, config, tmp_path) -> Iterator[World]:
    log_offset = dovecot.log_path.stat().st_size if dovecot.log_path.exists() else 0
    customer = scene.customer()
    mailbox = dovecot.new_mailbox()
    settings = Settings(
        database_url=committed_db, data_dir=tmp_path, config_dir=REPO / "config", imap_url=dovecot.url(mailbox)
    )
    contact = f"soc-{customer.removeprefix('cust-')}@example.com"  # one of the customer's e-mail contacts
    yield World(dovecot, mailbox, settings, scene.sessions, config, customer, contact)
    print(dovecot.log_text()[log_offset:])  # pytest shows it only when the test failed


def test_new_request_by_mail_with_attachment_is_filed_acknowledged_and_marked_seen(world, smtp, make_deliverer):
    arrived = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)  # a mail server's queue, say
    uid = world.append(world.message(), arrived=arrived)

    result = world.poll()

    assert result.outcomes == {"filed": 1} and result.uids == (uid,) and not result.busy
    [request] = world.requests()
    assert request.channel == "email" and request.severity == 2 and request.title == "Payroll app flagged"
    [sample] = world.query(select(Sample).where(Sample.request_id == request.id))
    assert sample.filename == "payroll.exe" and sample.stored and sample.size == len(SAMPLE)
    assert sample_path(world.settings.samples_dir, sample.sha256).read_bytes() == SAMPLE
    [mail] = world.query(select(InboundMail))
    assert (mail.source, mail.outcome, mail.request_id) == ("imap", "filed", request.id)
    assert mail.received_at == request.received_at == arrived  # INTERNALDATE: when it reached our server
    assert world.cursor().last_uid == uid
    assert b"\\Seen" in world.dovecot.flags(world.mailbox)[uid]

    # the acknowledgement leaves over real SMTP, to the contact who wrote, with the request's id
    deliver_until_quiet(make_deliverer())
    acks = [m for m in smtp.received if world.contact in m.rcpt_tos]
    assert acks and request.id in acks[0].message["Subject"]

    # nothing new: the next pass takes nothing and files nothing
    assert world.poll().uids == () and len(world.requests()) == 1


def test_the_same_message_twice_files_once(world):
    raw = world.message()
    first, second = world.append(raw), world.append(raw)

    result = world.poll()

    assert result.uids == (first, second)
    assert result.outcomes == {"filed": 1, "duplicate": 1}
    assert len(world.requests()) == 1 and len(world.query(select(InboundMail))) == 1
    assert all(b"\\Seen" in flags for flags in world.dovecot.flags(world.mailbox).values())

    # a lost cursor (or a rebuilt mailbox: a new UIDVALIDITY) reads everything again, and files nothing again
    with db.transaction(world.sessions) as s:
        s.execute(text("UPDATE mailbox_cursors SET last_uid = 0"))
    assert world.poll().outcomes == {"duplicate": 2}
    assert len(world.requests()) == 1


def test_a_message_over_the_size_limit_is_held_whole_and_a_huge_one_by_its_headers(world, caplog):
    raw = world.message()
    assert 2000 < len(raw) < 4000
    world.append(raw)
    assert world.poll(max_message_bytes=2000).outcomes == {"held": 1}  # over the limit, under twice it
    [mail] = world.query(select(InboundMail))
    assert mail.raw == raw and mail.size == len(raw) and "over max_message_bytes" in mail.reason

    huge = world.message(subject="[S1] Everything is detected")
    huge_uid = world.append(huge)
    assert world.poll(max_message_bytes=1000).outcomes == {"held": 1}  # over twice the limit
    mail = world.query(select(InboundMail).where(InboundMail.id != mail.id))[0]
    assert mail.raw == huge[:1001] and mail.subject == "[S1] Everything is detected" and mail.outcome == "held"
    assert mail.size == len(huge)  # its true size, not the bytes kept
    assert mail.reason == (
        f"{len(huge)} bytes, over max_message_bytes (1000): truncated, only its first 1001 bytes kept "
        "(read it whole in the mailbox), not parsed"
    )
    assert world.requests() == []
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (warning.uid, warning.size) == (huge_uid, len(huge))


def test_one_hostile_message_does_not_stop_the_mailbox(world):
    raw = compose(sender=world.contact, subject="[S2] hostile", message_id="<MARK@x>", text="a NUL NULMARK here")
    hostile = raw.replace(b"<MARK@x>", HUGE_MESSAGE_ID).replace(b"NULMARK", b"\x00").replace(b"\n", b"\r\n")
    first = world.append(hostile)
    later = world.append(world.message())

    result = world.poll()

    assert result.uids == (first, later) and result.outcomes == {"filed": 2}
    assert world.cursor().last_uid == later
    [kept] = world.query(select(InboundMail).where(InboundMail.subject == "[S2] hostile"))
    assert HUGE_MESSAGE_ID in kept.raw and kept.message_id.endswith("@inbound.invalid>")
    assert sorted(r.title for r in world.requests()) == ["Payroll app flagged", "hostile"]


def test_a_crash_between_filing_and_the_cursor_loses_nothing_and_files_nothing_twice(world):
    uid = world.append(world.message())

    died = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.mail.poll_and_die",
            world.settings.database_url,
            world.settings.imap_url,
            str(world.settings.data_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RR_CRASH_AT": "mail:ingested"},
    )

    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    # killed after ingest, before the commit: nothing of it stayed, the cursor did not move, the message is unread
    assert world.requests() == [] and world.query(select(InboundMail)) == []
    assert world.cursor().last_uid == 0
    assert b"\\Seen" not in world.dovecot.flags(world.mailbox)[uid]

    # the next pass takes it again: filed once
    assert world.poll().outcomes == {"filed": 1}
    assert len(world.requests()) == 1 and world.cursor().last_uid == uid
    assert world.poll().uids == ()


def test_a_second_poller_leaves_the_mailbox_to_the_one_holding_its_cursor(world):
    uid = world.append(world.message())
    assert world.poll().uids == (uid,)  # the cursor row exists now
    later = world.append(world.message())

    with db.transaction(world.sessions) as holder:  # another poller, in the middle of taking a message
        holder.execute(select(MailboxCursor).with_for_update())
        result = world.poll()
        assert result.busy and result.uids == ()

    assert world.poll().uids == (later,)
    assert len(world.requests()) == 2


def test_the_idle_listener_takes_a_new_message_within_seconds_and_stops_promptly(world, caplog):
    caplog.set_level(logging.INFO, logger="release_requests.workflows.mailbox")
    stop = threading.Event()
    thread = threading.Thread(
        target=listen,
        args=(stop,),
        kwargs={"sessions": world.sessions, "settings": world.settings, "config": world.config},
        daemon=True,
    )
    thread.start()
    try:
        _wait_for(lambda: world.cursor() is not None, "the listener's first pass")
        time.sleep(0.3)  # in IDLE now (poll_seconds is 60: only IDLE can bring the message in time)
        uid = world.append(world.message())
        _wait_for(lambda: world.cursor().last_uid == uid, "the appended message", timeout=5)
        assert len(world.requests()) == 1
    finally:
        stop.set()
        thread.join(timeout=3)
    assert not thread.is_alive()
    assert any(getattr(r, "idle", None) is True for r in caplog.records)  # Dovecot offers IDLE, and it was used
    assert world.dovecot.password not in caplog.text


def test_without_idle_the_listener_polls_and_still_stops_promptly(committed_db, scene, config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="release_requests.workflows.mailbox")
    with LocalDovecot(idle=False) as plain:
        customer = scene.customer()
        contact = f"soc-{customer.removeprefix('cust-')}@example.com"
        settings = Settings(
            database_url=committed_db, data_dir=tmp_path, config_dir=REPO / "config", imap_url=plain.url()
        )
        world = World(plain, "INBOX", settings, scene.sessions, config, customer, contact)
        world.append(world.message())
        stop = threading.Event()
        thread = threading.Thread(
            target=listen,
            args=(stop,),
            kwargs={"sessions": world.sessions, "settings": world.settings, "config": config},
            daemon=True,
        )
        thread.start()
        try:
            _wait_for(lambda: len(world.requests()) == 1, "the first pass")
        finally:
            stop.set()
            thread.join(timeout=2)
        assert not thread.is_alive()  # it was sleeping poll_seconds (60), and woke for `stop`
    assert [getattr(r, "idle", None) for r in caplog.records if r.getMessage() == "mailbox: reading"] == [False]


def test_an_unreachable_mailbox_is_logged_once_without_the_password_and_retried(world, caplog):
    caplog.set_level(logging.INFO, logger="release_requests.workflows.mailbox")
    nobody = world.settings.model_copy(update={"imap_url": f"imap://support:{ENCODED}@127.0.0.1:{free_port()}/INBOX"})
    stop = threading.Event()
    thread = threading.Thread(
        target=listen,
        args=(stop,),
        kwargs={"sessions": world.sessions, "settings": nobody, "config": world.config},
        daemon=True,
    )
    thread.start()
    time.sleep(1.5)  # the first attempt and, after a second's backoff, the next
    stop.set()
    thread.join(timeout=3)
    assert not thread.is_alive()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].mailbox.startswith("support@127.0.0.1:")
    assert "refused" in warnings[0].error.lower() or "connect" in warnings[0].error.lower()
    assert SECRET not in caplog.text


def test_a_wrong_password_is_a_clear_error_without_the_password(world):
    wrong = "not-the-Password-42"
    for url in (
        world.dovecot.url(world.mailbox, password=wrong),
        world.dovecot.url(world.mailbox, tls=False, password=wrong),
    ):
        with pytest.raises(MailboxError) as caught:
            world.poll(imap_url=url)
        message = str(caught.value)
        assert "login" in message and "refused" in message and "AUTHENTICATIONFAILED" in message
        assert world.dovecot.user in message and wrong not in message
        assert wrong not in repr(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no traceback shows the login


def test_an_untrusted_certificate_is_refused(world):
    url = world.dovecot.url(world.mailbox).split("?")[0]  # no cafile: the self-signed certificate is not trusted
    with pytest.raises(MailboxError, match="certificate"):
        world.poll(imap_url=url)


def test_plain_imap_to_loopback_reads_the_same_mailbox(world):
    uid = world.append(world.message())
    assert world.poll(imap_url=world.dovecot.url(world.mailbox, tls=False)).uids == (uid,)


# --- RR_IMAP_URL, without a server ----------------------------------------------------------------

SECRET = "s3cr/et?p@ss#word"
ENCODED = quote(SECRET, safe="")


def test_an_imap_url_is_parsed_with_encoded_parts_and_never_shows_the_password(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection")
    target = parse_imap_url(
        f"imaps://support%40vendor.example:s3cr%2Fet%3Fp%40ss%23word@mail.example/Support%20In?cafile={ca}"
    )
    assert (target.host, target.port, target.tls, target.mailbox) == ("mail.example", 993, True, "Support In")
    assert (target.user, target.password, target.cafile) == ("support@vendor.example", SECRET, str(ca))
    assert target.key == "support@vendor.example@mail.example:993/Support In"
    assert SECRET not in repr(target) and SECRET not in str(target) and "password" not in str(target)

    plain = parse_imap_url("imap://u:p@127.0.0.1:1143")
    assert (plain.port, plain.tls, plain.mailbox) == (1143, False, "INBOX")
    assert parse_imap_url("imap://u:p@localhost/").mailbox == "INBOX"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"imap://support:{ENCODED}@mail.example/INBOX", "in the clear to mail.example"),
        (f"https://support:{ENCODED}@mail.example/", "got https://"),
        ("imaps://mail.example/INBOX", "user and the password"),
        ("imaps://support@mail.example/INBOX", "user and the password"),
        # unencoded `/`, `?`, `#` in a password: the parts after them are never shown as a host, port or mailbox
        (f"imaps://support:{SECRET}@mail.example/INBOX", "does not parse"),
        ("imaps://support:12?secret@mail.example/INBOX", "an @ after the host"),
        ("imaps://support:12#secret@mail.example/INBOX", "an @ after the host"),
        ("imaps://support:s@cret/secret@mail.example/INBOX", "an @ after the host"),
        ("imaps://support:secret?@mail.example/INBOX", "does not parse"),
        ("imaps://support:secret@mail.example:99999/", "does not parse"),
        ("imaps://support:secret@mail.example/?cafiel=/x", "unknown parameter cafiel"),
        ("imaps://support:secret@mail.example/?cafile=/nonexistent/ca.pem", "is not a file"),
        ("mail.example", "no scheme"),
    ],
)
def test_bad_imap_urls_are_refused_without_showing_the_password(url, says):
    with pytest.raises(ConfigError) as caught:
        parse_imap_url(url)
    message = str(caught.value)
    assert message.startswith("RR_IMAP_URL") and says in message
    assert SECRET not in message and "secret" not in message and "s3cr" not in message
    assert caught.value.__cause__ is None and (caught.value.__context__ is None or caught.value.__suppress_context__)


def _wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_mail_intake_flow_takes_new_mail_and_without_a_mailbox_does_nothing(world, prefect_client_env, monkeypatch):
    from flows.mail import mail_intake

    caches = (get_settings, runtime.session_factory, get_config)
    monkeypatch.setenv("RR_DATABASE_URL", world.settings.database_url)
    monkeypatch.setenv("RR_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.delenv("RR_IMAP_URL", raising=False)
    for cache in caches:
        cache.cache_clear()
    try:
        assert mail_intake() == {}  # no mailbox to read: nothing taken (its one log line depends on Prefect's set-up)

        monkeypatch.setenv("RR_IMAP_URL", world.settings.imap_url)
        get_settings.cache_clear()
        world.append(world.message())
        assert mail_intake() == {"filed": 1}
        assert mail_intake() == {}
        assert len(world.requests()) == 1
    finally:
        for cache in caches:
            cache.cache_clear()


def test_serve_warns_once_when_the_mailbox_is_read_and_senders_are_not_checked(settings, config, caplog):
    caplog.set_level(logging.WARNING, logger="release_requests.server")
    read = settings.model_copy(update={"imap_url": "imaps://support:secret@mail.example/INBOX"})
    check_mail_intake(read, config)
    [warning] = [r.getMessage() for r in caplog.records if r.name == "release_requests.server"]
    assert warning.startswith('mail intake: [email] require_authentication is "none" in ')
    assert str(settings.config_dir / "intake.toml") in warning and "secret" not in warning
    caplog.clear()
    check_mail_intake(settings.model_copy(update={"imap_url": None}), config)  # no mailbox read: nothing to say
    check_mail_intake(read, with_email(config, require_authentication="dmarc"))
    assert [r for r in caplog.records if r.name == "release_requests.server"] == []
