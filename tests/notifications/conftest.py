"""Fixtures for notification tests: a fresh database per test (the deliverer takes every due row, so tests
must not share an outbox), a local Slack, a real SMTP server with STARTTLS and AUTH, and a deliverer with
short leases and backoffs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from devservers import LocalSlack, LocalSmtp
from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import Actor
from release_requests.customers.schemas import CustomerCreate
from release_requests.customers.service import assign_tam, create_customer
from release_requests.notifications.delivery import Deliverer
from release_requests.notifications.models import Notification
from release_requests.notifications.transports import SlackTransport, SmtpTransport
from release_requests.people.service import PersonCreate, create_person
from release_requests.requests.schemas import SubmitRequest
from release_requests.workflows import intake

INTERNAL = "msa-engineering"
SYSTEM = Actor.system("tests")


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    with LocalSlack(channels=(INTERNAL,)) as server:
        yield server


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[LocalSmtp]:
    with LocalSmtp(user="relreq", password="p@ss word", starttls=True) as server:
        yield server


@pytest.fixture
def smtp(smtp_server) -> LocalSmtp:
    smtp_server.received.clear()
    smtp_server._rejections.clear()
    return smtp_server


@pytest.fixture
def engine(committed_db):
    engine = db.make_engine(committed_db)
    yield engine
    engine.dispose()


@dataclass
class Scene:
    """Customers, people and requests in the test's own database, committed through the real services."""

    sessions: object
    config: object
    slack: LocalSlack

    def customer(self, *, channel_exists: bool = True, **overrides) -> str:
        """A customer whose Slack channel exists in the local Slack (unless `channel_exists` is False)."""
        suffix = uuid.uuid4().hex[:8]
        values = {
            "id": f"cust-{suffix}",
            "name": f"Customer {suffix}",
            "tier": "enterprise",
            "timezone": "Europe/Moscow",
            "country": "RU",
            "slack_channel": f"cust-{suffix}",
            "email_contacts": [f"soc-{suffix}@example.com", f"cto-{suffix}@example.com"],
        }
        values.update(overrides)
        if channel_exists and values["slack_channel"]:
            self.slack.add_channel(values["slack_channel"])
        with db.transaction(self.sessions) as s:
            return create_customer(s, actor=SYSTEM, data=CustomerCreate(**values)).id

    def person(self, role: str, *, customer_id: str | None = None, tam_for: tuple[str, ...] = (), **extra) -> int:
        suffix = uuid.uuid4().hex[:8]
        data = PersonCreate(
            name=f"{role.title()} {suffix}",
            role=role,
            email=f"{role}-{suffix}@vendor.example",
            customer_id=customer_id,
            **extra,
        )
        with db.transaction(self.sessions) as s:
            person = create_person(s, actor=SYSTEM, data=data)
            for cid in tam_for:
                assign_tam(s, actor=SYSTEM, customer_id=cid, person=person)
            return person.id

    def request(self, customer_id: str, *, by: int, severity: int = 1, title: str = "Payroll app flagged") -> str:
        from release_requests.people.models import Person

        with db.transaction(self.sessions) as s:
            data = SubmitRequest(
                customer_id=customer_id, kind="false_positive", severity=severity, channel="phone", title=title
            )
            return intake.submit(s, actor=s.get(Person, by), data=data, config=self.config).id

    def rows(self, **where) -> list[Notification]:
        with db.transaction(self.sessions) as s:
            query = select(Notification).order_by(Notification.created_at, Notification.id)
            for name, value in where.items():
                query = query.where(getattr(Notification, name) == value)
            return list(s.scalars(query))

    def events(self, request_id: str, prefix: str = "notification.") -> list[AuditEvent]:
        with db.transaction(self.sessions) as s:
            return list(
                s.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.request_id == request_id, AuditEvent.action.startswith(prefix))
                    .order_by(AuditEvent.seq)
                )
            )


@pytest.fixture
def scene(engine, config, slack) -> Scene:
    """Requests filed here page nobody: these tests count a request's own notices (paging, which adds its
    own rows for a severity 1 request nobody is on duty for, is tested in tests/paging)."""
    quiet = config.model_copy(update={"paging": config.paging.model_copy(update={"severities": []})})
    return Scene(db.make_sessionmaker(engine), quiet, slack)


@pytest.fixture
def make_deliverer(engine, config, slack, smtp):
    """A deliverer against the local servers; leases and backoffs short enough for tests. Its transports are
    Slack and e-mail; `extra=[…]` adds more (a webhook), `transports=[…]` replaces them."""

    def make(*, extra: tuple = (), **overrides) -> Deliverer:
        sender = (overrides.get("config") or config).notifications.email.from_address
        kwargs = {
            "engine": engine,
            "config": config,
            "transports": [
                SlackTransport(token=slack.token, base_url=slack.base_url, timeout=5),
                SmtpTransport(smtp.url, sender=sender, timeout=5),
                *extra,
            ],
            "lease_seconds": 5,
            "backoff_seconds": [0.2, 0.4],
        }
        kwargs.update(overrides)
        return Deliverer(**kwargs)

    return make


def deliver_until_quiet(deliverer, timeout: float = 10.0) -> None:
    """Run the deliverer until nothing is pending (retries with short backoffs included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliverer.deliver_due()
        due_in = deliverer.seconds_until_due()
        if due_in is None:
            return
        time.sleep(min(due_in, 0.2))
    raise AssertionError("outbox did not drain")
