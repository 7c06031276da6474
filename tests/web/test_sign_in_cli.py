"""`relreq users set-password`, `login-link` and `invite`, then signing in with what they gave."""

from __future__ import annotations

import io
import json
import re
import sys
from dataclasses import dataclass

import httpx
import pytest

from release_requests import db
from tests.web.conftest import CSRF_RE, email_of


def _set_password(relreq, monkeypatch, person: str, password: str):
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    return relreq("users", "set-password", person)


def test_a_password_set_on_the_command_line_signs_in(relreq, monkeypatch, world):
    user = world.user("customer", world.customer())
    email = email_of(world, user)
    code, out, err = _set_password(relreq, monkeypatch, email, "correct horse battery staple")
    assert code == 0, err
    assert f"password set for {email}" in out
    with httpx.Client(base_url=world.api_url) as c:
        token = CSRF_RE.search(c.get("/login").text).group(1)
        answer = c.post(
            "/login", data={"email": email.upper(), "password": "correct horse battery staple", "csrf_token": token}
        )
    assert answer.status_code == 303 and answer.headers["location"] == "/my/requests"


def test_a_short_password_is_refused_in_one_line(relreq, monkeypatch, world):
    user = world.user("tam")
    code, _, err = _set_password(relreq, monkeypatch, str(user.id), "short")
    assert code != 0
    assert err.strip().splitlines()[-1].endswith("password (stdin): a password needs at least 12 characters")


def test_a_login_link_signs_in_once(relreq, world):
    user = world.user("triage")
    code, out, err = relreq("users", "login-link", email_of(world, user), "--json")
    assert code == 0, err
    link = json.loads(out)
    assert link["valid_minutes"] == 15
    path = re.sub(r"^https?://[^/]+", "", link["url"])
    with httpx.Client(base_url=world.api_url) as c:
        page = c.get(path)
        assert page.status_code == 200 and "single-use" in page.text
        token = CSRF_RE.search(page.text).group(1)
        link_token = path.rsplit("/", 1)[1]
        first = c.post("/login/link", data={"token": link_token, "csrf_token": token})
        assert first.status_code == 303 and first.headers["location"] == "/queue"
        token = CSRF_RE.search(c.get(path).text).group(1)  # a fresh form: signing in retired the old one
        again = c.post("/login/link", data={"token": link_token, "csrf_token": token})
    assert again.status_code == 401 and "expired or was already used" in again.text


def test_the_audit_log_records_sign_in_events_without_secrets(relreq, monkeypatch, world):
    user = world.user("tam")
    _set_password(relreq, monkeypatch, str(user.id), "another long secret phrase")
    relreq("users", "login-link", str(user.id))
    from sqlalchemy import select

    from release_requests import db
    from release_requests.audit.models import AuditEvent

    with db.transaction(world.sessions) as s:
        events = list(
            s.scalars(
                select(AuditEvent).where(AuditEvent.entity_type == "person", AuditEvent.entity_id == str(user.id))
            )
        )
    actions = [e.action for e in events]
    assert "person.password_set" in actions and "person.login_link_issued" in actions
    dumped = json.dumps([[e.before, e.after, e.reason] for e in events])
    assert "another long secret phrase" not in dumped and "argon2" not in dumped and "/login/link/" not in dumped


def test_access_logs_do_not_carry_sign_in_link_tokens():
    import logging

    from release_requests.logs import RedactSecrets

    record = logging.makeLogRecord(
        {"msg": '%s - "%s %s HTTP/%s" %d', "args": ("127.0.0.1:5", "GET", "/login/link/AbC-123_x", "1.1", 200)}
    )
    RedactSecrets().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /login/link/[redacted] HTTP/1.1" 200'


# --- `relreq users invite`: the sign-in link by e-mail, through the outbox ------------------------------------


@pytest.fixture
def invite_world(pg_server, admin_url, template_db, config, settings, tmp_path):
    """A database and console of its own (a deliverer takes every due row) and a real SMTP server."""
    from devservers import LocalSmtp
    from release_requests.api.app import create_app
    from release_requests.settings import Settings
    from tests.conftest import REPO, World, clone_database, serve_app

    url = clone_database(pg_server, admin_url, template_db)
    engine = db.make_engine(url)
    app_settings = Settings(database_url=url, data_dir=tmp_path, config_dir=REPO / "config")
    try:
        with (
            serve_app(create_app(settings=app_settings, config=config, sessions=db.make_sessionmaker(engine))) as api,
            LocalSmtp() as smtp,
        ):
            yield InviteWorld(World(engine, api), engine, url, smtp, settings)
    finally:
        engine.dispose()


@dataclass
class InviteWorld:
    world: object
    engine: object
    url: str
    smtp: object
    settings: object

    def relreq(self, monkeypatch, capsys, *args: str, smtp: bool = True):
        from tests.conftest import run_relreq

        env = {
            "RR_DATABASE_URL": self.url,
            "RR_DATA_DIR": str(self.settings.data_dir),
            "RR_API_URL": self.world.api_url,
            "RR_PUBLIC_URL": None,
            "RR_TOKEN": None,
            "RR_SMTP_URL": self.smtp.url if smtp else None,
        }
        return run_relreq(monkeypatch, capsys, args, env)

    def deliver(self, config):
        from release_requests.notifications.delivery import Deliverer
        from release_requests.notifications.transports import SmtpTransport

        sender = config.notifications.email.from_address
        transport = SmtpTransport(self.smtp.url, sender=sender, timeout=5)
        return Deliverer(engine=self.engine, config=config, transports=[transport]).deliver_due()


def _sign_in_with(world, url: str) -> tuple[httpx.Response, httpx.Response]:
    """Open the link and press Sign in, twice: (first answer, second answer)."""
    path = re.sub(r"^https?://[^/]+", "", url)
    link_token = path.rsplit("/", 1)[1]
    answers = []
    with httpx.Client(base_url=world.api_url) as c:
        for _ in range(2):
            token = CSRF_RE.search(c.get(path).text).group(1)
            answers.append(c.post("/login/link", data={"token": link_token, "csrf_token": token}))
    return answers[0], answers[1]


def test_an_invitation_e_mails_a_link_that_signs_in_once(invite_world, monkeypatch, capsys, caplog, config):
    import logging

    from sqlalchemy import select

    from release_requests.audit.models import AuditEvent
    from release_requests.notifications.models import Notification

    caplog.set_level(logging.DEBUG)
    w = invite_world
    user = w.world.user("triage")
    email = email_of(w.world, user)
    code, out, err = w.relreq(monkeypatch, capsys, "users", "invite", email)
    assert code == 0, err
    assert f"invitation for {email} queued (e-mail)" in out
    assert "/login/link/" not in out + err  # it goes by e-mail, not to the admin's terminal
    assert w.deliver(config)["sent"] == 1
    logged = caplog.text  # everything the command and the deliverer logged (not the test's own requests below)

    [mail] = w.smtp.received
    assert mail.rcpt_tos == [email] and mail.message["To"] == email
    assert mail.message["Subject"] == "Your sign-in link for release-requests"
    text = mail.message.get_body(("plain",)).get_content()
    assert "valid for 15 minutes, works once" in text and "msa-engineering@vendor.example" in text
    assert "Request:" not in text  # no request footer: the invitation is about no request
    url = re.search(r"https?://\S+/login/link/\S+", text).group(0)
    assert url.startswith(w.world.api_url)
    first, again = _sign_in_with(w.world, url)
    assert first.status_code == 303 and first.headers["location"] == "/queue"
    assert again.status_code == 401 and "expired or was already used" in again.text

    link_token = url.rsplit("/", 1)[1]
    with db.transaction(w.world.sessions) as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        row = s.scalar(select(Notification))
        assert (row.event, row.status, row.request_id, row.recipient) == ("person.invited", "sent", None, email)
    actions = [e.action for e in events]
    assert {"person.login_link_issued", "notification.queued", "notification.sent", "person.signed_in"} <= set(actions)
    queued = next(e for e in events if e.action == "notification.queued")
    assert queued.actor.startswith("local-admin:") and queued.after["recipient"] == email
    dumped = json.dumps([[e.before, e.after, e.reason, e.entity_id] for e in events])
    assert link_token not in dumped and "/login/link/" not in dumped
    assert link_token not in logged and "/login/link/" not in logged


def test_an_invitation_is_in_the_persons_language(invite_world, monkeypatch, capsys, config):
    from release_requests.people.models import Person

    w = invite_world
    user = w.world.user("tam")
    with db.transaction(w.world.sessions) as s:
        s.get(Person, user.id).language = "ru"
    code, out, err = w.relreq(monkeypatch, capsys, "users", "invite", str(user.id), "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["email_status"] == "configured" and "url" not in answer and answer["valid_minutes"] == 15
    assert w.deliver(config)["sent"] == 1
    [mail] = w.smtp.received
    assert mail.message["Subject"] == "Ваша ссылка для входа в release-requests"
    assert mail.message["Content-Language"] == "ru"
    assert "действует 15 минут" in mail.message.get_body(("plain",)).get_content()


def test_without_smtp_the_invitation_says_it_is_skipped_and_prints_the_link(invite_world, monkeypatch, capsys):
    w = invite_world
    user = w.world.user("release_manager")
    email = email_of(w.world, user)
    code, out, err = w.relreq(monkeypatch, capsys, "users", "invite", email, smtp=False)
    assert code == 0, err
    assert f"invitation for {email} queued, but the e-mail will be skipped" in out and "RR_SMTP_URL unset" in out
    url = out.strip().splitlines()[-1]
    assert re.fullmatch(r"https?://\S+/login/link/\S+", url)
    first, _ = _sign_in_with(w.world, url)
    assert first.status_code == 303


def test_inviting_a_person_without_an_e_mail_address_is_one_line(relreq, world):
    from release_requests.audit.service import Actor
    from release_requests.people.service import PersonCreate, create_person

    with db.transaction(world.sessions) as s:
        person_id = create_person(s, actor=Actor.system("tests"), data=PersonCreate(name="No Mail", role="triage")).id
    code, out, err = relreq("users", "invite", str(person_id))
    assert code != 0 and out == ""
    assert (
        err.strip()
        == f"error: {person_id} has no e-mail address; `relreq users login-link {person_id}` prints a link instead"
    )


def test_queue_invitation_keeps_the_link_in_the_outbox_row_only(world, config):
    from sqlalchemy import select

    from release_requests.audit.models import AuditEvent
    from release_requests.audit.service import Actor
    from release_requests.errors import InvalidInput
    from release_requests.notifications.service import INVITATION_EVENT, queue_invitation
    from release_requests.people.models import Person
    from release_requests.people.service import PersonCreate, create_person

    user = world.user("customer", world.customer())
    url = "http://console.example/login/link/not-a-real-token"
    admin = Actor(name="local-admin:tests")
    s = world.sessions()
    try:
        person = s.get(Person, user.id)
        person.language = "ru"
        row = queue_invitation(s, actor=admin, person=person, url=url, config=config)
        assert (row.event, row.channel, row.audience, row.recipient) == (
            INVITATION_EVENT,
            "email",
            "customer",
            person.email,
        )
        assert (row.request_id, row.language, row.recipient_person_id, row.status) == (None, "ru", person.id, "queued")
        assert row.context["url"] == url and row.context["valid_minutes"] == 15
        assert queue_invitation(s, actor=admin, person=person, url=url, config=config).id == row.id  # once per link
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.entity_id == row.id))
        assert event.action == "notification.queued" and event.actor == "local-admin:tests"
        assert "not-a-real-token" not in json.dumps([event.before, event.after, event.reason])
        nobody = create_person(s, actor=admin, data=PersonCreate(name="No Mail", role="tam"))
        with pytest.raises(InvalidInput, match="no e-mail address"):
            queue_invitation(s, actor=admin, person=nobody, url=url, config=config)
    finally:
        s.rollback()
        s.close()
