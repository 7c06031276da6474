"""Shared fixtures: one real embedded Postgres per test session, migrated once into a template.

- `session`: rollback-per-test (outer transaction + SAVEPOINT, ≈ 2 ms), acting as the app role.
- `committed_db`: a fresh database cloned from the template, for tests that need real commits or
  several connections (concurrency, tamper).
- `api`: the real API served by uvicorn on a free port over the shared test database; tests create
  their own customers (unique ids), so they never see each other's data.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from release_requests import db, embedded_pg
from release_requests.config import load_config
from release_requests.settings import Settings

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    server = embedded_pg.start_server(tmp_path_factory.mktemp("pg") / "data")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def admin_url(pg_server) -> str:
    return embedded_pg.server_url(pg_server, "postgres")


@pytest.fixture(scope="session")
def template_db(pg_server, admin_url) -> str:
    db.ensure_database(admin_url, "rr_template")
    url = embedded_pg.server_url(pg_server, "rr_template")
    db.upgrade(url)
    return "rr_template"


def clone_database(pg_server, admin_url: str, template: str) -> str:
    name = f"rr_{uuid.uuid4().hex[:10]}"
    db.ensure_database(admin_url, name, template=template)
    return embedded_pg.server_url(pg_server, name)


@pytest.fixture(scope="session")
def db_url(pg_server, admin_url, template_db) -> str:
    """The shared test database (superuser URL; app engines switch to the app role themselves)."""
    return clone_database(pg_server, admin_url, template_db)


@pytest.fixture
def committed_db(pg_server, admin_url, template_db) -> str:
    return clone_database(pg_server, admin_url, template_db)


@pytest.fixture(scope="session")
def app_engine(db_url):
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(app_engine) -> Iterator[Session]:
    """A session whose every commit is a SAVEPOINT inside one transaction rolled back after the test."""
    with app_engine.connect() as conn:
        outer = conn.begin()
        s = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield s
        finally:
            s.close()
            outer.rollback()


@pytest.fixture(scope="session")
def config():
    return load_config(REPO / "config")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def settings(db_url, data_dir) -> Settings:
    return Settings(database_url=db_url, data_dir=data_dir, config_dir=REPO / "config")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def api_url(settings, config, app_engine) -> Iterator[str]:
    import uvicorn

    from release_requests.api.app import create_app

    app = create_app(settings=settings, config=config, sessions=db.make_sessionmaker(app_engine))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test API did not start")
        time.sleep(0.02)
    yield url
    server.should_exit = True
    thread.join(5)


@dataclass
class User:
    id: int
    name: str
    role: str
    token: str
    customer_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class World:
    """Creates customers and people through the real services, committed, with unique ids."""

    def __init__(self, engine, api_url: str) -> None:
        self.sessions = db.make_sessionmaker(engine)
        self.api_url = api_url

    def customer(self, **overrides) -> str:
        from release_requests.audit.service import Actor
        from release_requests.customers.schemas import CustomerCreate
        from release_requests.customers.service import create_customer

        suffix = uuid.uuid4().hex[:8]
        values = {
            "id": f"cust-{suffix}", "name": f"Customer {suffix}", "tier": "enterprise",
            "timezone": "Europe/Moscow", "country": "RU", "email_contacts": [f"soc-{suffix}@example.com"],
        }  # fmt: skip
        values.update(overrides)
        with db.transaction(self.sessions) as s:
            return create_customer(s, actor=Actor.system("tests"), data=CustomerCreate(**values)).id

    def user(self, role: str, customer_id: str | None = None, *, tam_for: list[str] = (), **extra) -> User:
        from release_requests.audit.service import Actor
        from release_requests.customers.service import assign_tam
        from release_requests.people.service import PersonCreate, create_person, issue_token

        suffix = uuid.uuid4().hex[:8]
        data = PersonCreate(
            name=f"{role.title()} {suffix}", role=role, email=f"{role}-{suffix}@example.com",
            customer_id=customer_id if role == "customer" else None, **extra,
        )  # fmt: skip
        with db.transaction(self.sessions) as s:
            person = create_person(s, actor=Actor.system("tests"), data=data)
            for cid in tam_for:
                assign_tam(s, actor=Actor.system("tests"), customer_id=cid, person=person)
            token = issue_token(s, actor=Actor.system("tests"), person=person)
            return User(person.id, person.name, role, token, data.customer_id)

    def client(self, user: User | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers=user.headers if user else {}, timeout=30)


@pytest.fixture(scope="session")
def world(app_engine, api_url) -> World:
    return World(app_engine, api_url)


@pytest.fixture
def superuser_conn(db_url):
    engine = create_engine(db_url, poolclass=NullPool)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def execute_as_superuser(url: str, sql: str) -> None:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()
