"""Health Check fixtures: a Russian customer in Kamchatka (UTC+12, far from UTC) with a support certificate, its
TAM, an engineer, and a clock fixed late on 30 November UTC, when it is already 1 December there."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from release_requests import db
from release_requests.customers.models import Customer
from release_requests.customers.schemas import CustomerCreate
from release_requests.customers.service import create_customer
from release_requests.errors import Conflict
from release_requests.healthchecks import service
from release_requests.healthchecks.schemas import BookIn
from release_requests.people.models import Person
from release_requests.people.service import PersonCreate, create_person
from tests.conftest import SYSTEM

# 13:30 UTC on 30 November is 01:30 on 1 December in Kamchatka: 14 days ahead is the 15th there, the 14th in UTC
NOW = datetime(2026, 11, 30, 13, 30, tzinfo=UTC)
CERTIFICATE = {"certificate_start": date(2026, 3, 1), "certificate_end": date(2028, 2, 29)}


def new_customer(session, *, name: str | None = None, **overrides) -> Customer:
    suffix = uuid.uuid4().hex[:8]
    values = {
        "id": f"hc-{suffix}",
        "name": name or f"Kamchatka Energy {suffix}",
        "tier": "enterprise",
        "timezone": "Asia/Kamchatka",
        "country": "RU",
        "email_contacts": [f"soc-{suffix}@customer.example"],
        "extra_closed_dates": [date(2026, 12, 16)],
        **CERTIFICATE,
        **overrides,
    }
    return create_customer(session, actor=SYSTEM, data=CustomerCreate(**values))


@dataclass
class Scene:
    session: object
    config: object
    customer: Customer
    tam: Person
    engineer: Person

    def book(self, day: date, *, engineer: Person | None = None, customer: Customer | None = None, now=NOW, by=None):
        data = BookIn(customer_id=(customer or self.customer).id, date=day, engineer=(engineer or self.engineer).email)
        return service.book(self.session, actor=by or self.tam, data=data, now=now, config=self.config)


@pytest.fixture
def scene(session, config, build) -> Scene:
    customer = new_customer(session)
    tam = build.person("tam", tam_for=[customer.id])
    return Scene(session, config, customer, tam, build.person("build_engineer"))


def race(sessions, *, winner, loser) -> tuple[object, Conflict | None]:
    """`winner(session)` writes in a transaction left open while `loser(session)` runs in another: the loser
    waits (on a unique index or a lock) until the winner commits, then goes on; returns the id of what the
    winner wrote and the Conflict the loser got, if any."""
    first = sessions()
    first.begin()
    winner_id = winner(first).id
    outcome = {}

    def second():
        with db.transaction(sessions) as s:
            try:
                loser(s)
            except Conflict as exc:
                outcome["error"] = exc

    racer = threading.Thread(target=second)
    racer.start()
    time.sleep(0.5)
    assert racer.is_alive()  # waiting for the first transaction
    first.commit()
    first.close()
    racer.join(10)
    assert not racer.is_alive()
    return winner_id, outcome.get("error")


@pytest.fixture
def race_world(committed_db):
    """A customer, an admin and two engineers, committed, on a database of its own."""
    engine = db.make_engine(committed_db)
    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:
        customer = new_customer(s)
        people = [
            create_person(s, actor=SYSTEM, data=PersonCreate(name=n, role=r, email=f"{n}@vendor.example"))
            for n, r in (("tam-a", "admin"), ("eng-a", "triage"), ("eng-b", "triage"))
        ]
    yield sessions, customer, *people
    engine.dispose()


def booking(customer, day: date, engineer, admin, config):
    def make(s):
        data = BookIn(customer_id=customer.id, date=day, engineer=engineer.email)
        return service.book(s, actor=s.get(Person, admin.id), data=data, now=NOW, config=config)

    return make
