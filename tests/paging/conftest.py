"""Fixtures for paging: a database of the test's own (the duty rotation and its fallback are global), people
with Slack ids and addresses, shifts, and helpers to read pages, outbox rows and audit events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import Actor
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.customers.schemas import CustomerCreate
from release_requests.customers.service import assign_tam, create_customer
from release_requests.notifications.models import Notification
from release_requests.paging.models import Page
from release_requests.people.models import Person
from release_requests.people.service import PersonCreate, create_person, issue_token
from release_requests.requests.schemas import SubmitRequest
from release_requests.routing.service import ShiftCreate, add_shifts, set_fallback
from release_requests.workflows import intake

SYSTEM = Actor.system("tests")
INTERNAL = "msa-engineering"  # config/notifications.toml's internal Slack channel


def with_head(config: AppConfig, head: str) -> AppConfig:
    """The configuration with `head_of_support` set (an e-mail or id)."""
    return config.model_copy(update={"paging": config.paging.model_copy(update={"head_of_support": head})})


def last_sunday_2am(zone: str) -> datetime:
    """The latest Sunday 02:00 in `zone` that has passed: within the week a call may be typed in later."""
    now = datetime.now(ZoneInfo(zone))
    day = now - timedelta(days=(now.weekday() - 6) % 7)
    at = day.replace(hour=2, minute=0, second=0, microsecond=0)
    return at if at < now - timedelta(minutes=5) else at - timedelta(days=7)


def noon_zone() -> str:
    """A fixed-offset zone where it is now 12:xx: working hours around now (11:00-14:00 there) cross no midnight,
    and three hours ago is outside them."""
    return f"Etc/GMT{datetime.now(UTC).hour - 12:+d}"  # Etc/GMT+N is N hours *behind* UTC


def a_weekday_but(*moments: datetime) -> str:
    """A weekday (mon–sat) on which none of `moments` falls, in their own zones: hours that day are off at each."""
    taken = {m.strftime("%a").lower() for m in moments}
    return next(day for day in ("mon", "tue", "wed", "thu", "fri", "sat") if day not in taken)


@dataclass
class Scene:
    sessions: object
    config: AppConfig

    def now(self) -> datetime:
        with db.transaction(self.sessions) as s:
            return db_now(s)

    def customer(self, **overrides) -> str:
        suffix = uuid.uuid4().hex[:8]
        values = {
            "id": f"cust-{suffix}",
            "name": f"Customer {suffix}",
            "tier": "enterprise",
            "timezone": "Europe/Moscow",
            "country": "RU",
            "email_contacts": [f"soc-{suffix}@example.com"],
        }
        values.update(overrides)
        with db.transaction(self.sessions) as s:
            return create_customer(s, actor=SYSTEM, data=CustomerCreate(**values)).id

    def person(self, role: str, *, slack: bool = True, tam_for: tuple[str, ...] = (), customer_id=None, **extra):
        """A person (id, e-mail, Slack id, API token) committed through the real services."""
        suffix = uuid.uuid4().hex[:8]
        data = PersonCreate(
            name=f"{role.title()} {suffix}",
            role=role,
            email=f"{role}-{suffix}@vendor.example",
            customer_id=customer_id,
            slack_user_id=f"U{suffix.upper()}" if slack else None,
            **extra,
        )
        with db.transaction(self.sessions) as s:
            person = create_person(s, actor=SYSTEM, data=data)
            for cid in tam_for:
                assign_tam(s, actor=SYSTEM, customer_id=cid, person=person)
            token = issue_token(s, actor=SYSTEM, person=person)
            return Staff(person.id, person.name, person.email, person.slack_user_id, token)

    def shift(self, staff: Staff, start: datetime, end: datetime) -> None:
        with db.transaction(self.sessions) as s:
            add_shifts(s, actor=SYSTEM, person=s.get(Person, staff.id), data=ShiftCreate(starts_at=start, ends_at=end))

    def fallback(self, staff: Staff) -> None:
        with db.transaction(self.sessions) as s:
            set_fallback(s, actor=SYSTEM, person=s.get(Person, staff.id))

    def file(
        self,
        customer_id: str,
        *,
        by: Staff,
        severity: int = 1,
        config: AppConfig | None = None,
        title: str = "Payroll",
        **extra,
    ) -> str:
        with db.transaction(self.sessions) as s:
            data = SubmitRequest(
                customer_id=customer_id, kind="false_positive", severity=severity, channel="phone", title=title, **extra
            )
            return intake.submit(s, actor=s.get(Person, by.id), data=data, config=config or self.config).id

    def page(self, request_id: str) -> Page | None:
        with db.transaction(self.sessions) as s:
            page = s.get(Page, request_id)
            if page is not None:
                s.expunge(page)
            return page

    def rows(self, request_id: str, event: str | None = None) -> list[Notification]:
        with db.transaction(self.sessions) as s:
            query = select(Notification).where(Notification.request_id == request_id)
            if event:
                query = query.where(Notification.event == event)
            return list(s.scalars(query.order_by(Notification.created_at, Notification.id)))

    def events(self, request_id: str, prefix: str) -> list[AuditEvent]:
        with db.transaction(self.sessions) as s:
            return list(
                s.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.request_id == request_id, AuditEvent.action.startswith(prefix))
                    .order_by(AuditEvent.seq)
                )
            )


@dataclass
class Staff:
    id: int
    name: str
    email: str
    slack_user_id: str | None
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def engine(committed_db):
    engine = db.make_engine(committed_db, pool_size=6)
    yield engine
    engine.dispose()


@pytest.fixture
def scene(engine, config) -> Scene:
    return Scene(db.make_sessionmaker(engine), config)
