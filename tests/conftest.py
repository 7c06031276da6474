"""Shared fixtures: one real embedded Postgres per test session, migrated once into a template.

- `session`: rollback-per-test (outer transaction + SAVEPOINT, ≈ 2 ms), acting as the app role.
- `committed_db`: a fresh database cloned from the template, for tests that need real commits or
  several connections (concurrency, tamper).
- `api`: the real API served by uvicorn on a free port over the shared test database; tests create
  their own customers (unique ids), so they never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from devservers import free_port
from release_requests import db, embedded_pg, runtime
from release_requests.audit.service import Actor
from release_requests.cli import main
from release_requests.config import load_config
from release_requests.customers.schemas import CustomerCreate
from release_requests.customers.service import assign_tam, create_customer
from release_requests.people.service import PersonCreate, create_person
from release_requests.requests.schemas import SubmitRequest
from release_requests.routing.service import ShiftCreate, add_shifts
from release_requests.settings import Settings, get_settings
from release_requests.workflows import intake

REPO = Path(__file__).resolve().parent.parent

# The signed bases registered once per session, shared by the release tests and the console's channel pages
# (a fixture imported into two folders would register the same version twice).
pytest_plugins = ["tests.releases.fixtures"]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RR_PASSWORD_MEMORY_KIB", "19456")  # OWASP's floor: sign-ins in tests cost milliseconds


@pytest.fixture(scope="session")
def pg_server():
    # Not under pytest's tmp dirs: those are 0700 for root, and the server runs as its own system user.
    root = Path(tempfile.mkdtemp(prefix="rr-test-pg-"))
    server = embedded_pg.start_server(root / "data")
    yield server
    embedded_pg.prune_dead_handles(root / "data")  # subprocesses killed by crash tests must not keep it alive
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


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
    """The session's data directory, with the signing key `relreq serve` creates on its first start."""
    from artifacts.signing import create_signing_key

    path = tmp_path_factory.mktemp("data")
    create_signing_key(data_dir=path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _own_data_dir(data_dir) -> Iterator[None]:
    """No test reaches the default data directory (the developer's own database): RR_DATA_DIR is the session's
    unless the environment names one."""
    if "RR_DATA_DIR" in os.environ:
        yield
        return
    os.environ["RR_DATA_DIR"] = str(data_dir)
    get_settings.cache_clear()
    yield
    os.environ.pop("RR_DATA_DIR", None)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings(db_url, data_dir) -> Settings:
    return Settings(database_url=db_url, data_dir=data_dir, config_dir=REPO / "config")


SIGNATURE_TEAM = "Signature Team <signatures@example.com>"


@pytest.fixture(scope="session")
def starter_template(tmp_path_factory) -> Path:
    """The starter signature repository (300 rules, one commit), generated once per session: copy it
    (`copy_repo`, a few milliseconds) into a test's own place, never change it."""
    from artifacts.starter import init_sigrepo

    path = tmp_path_factory.mktemp("starter") / "sigrepo"
    init_sigrepo(path=path, author=SIGNATURE_TEAM)
    return path


def copy_repo(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_product_repo(root: Path, *, padding_lines: int = 0):
    """The product repository of private hotfixes, `root/endpoint-agent`: tag v11.2.0, then on main a clean
    fix, a core change and a fix that conflicts with 11.2.0. Returns its ProductSpec and the commits
    `clean_fix` and `conflicting_fix`. `padding_lines` makes the fix (and so the built agent) bigger."""
    from artifacts.products import ProductSpec

    repo = root / "endpoint-agent"
    (repo / "src").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main", str(repo))
    git(repo, "config", "user.name", "Dev One")
    git(repo, "config", "user.email", "dev1@example.com")
    (repo / "src" / "core.c").write_text("int version = 1;\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "release 11.2.0")
    git(repo, "tag", "-a", "v11.2.0", "-m", "11.2.0")
    (repo / "src" / "fix.c").write_text("int fixed_crash = 1;\n" + "/* padding */\n" * padding_lines)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "fix crash on scan")
    commits = {"clean_fix": git(repo, "rev-parse", "HEAD")}
    (repo / "src" / "core.c").write_text("int version = 2;\n")
    git(repo, "commit", "-qam", "core v2")
    (repo / "src" / "core.c").write_text("int version = 3;\n")
    git(repo, "commit", "-qam", "core v3 (conflicts with 11.2.0)")
    commits["conflicting_fix"] = git(repo, "rev-parse", "HEAD")
    spec = ProductSpec(
        name="endpoint-agent",
        repo=repo,
        build=["sh", "-c", "mkdir -p dist && cat src/*.c > dist/agent.bin && echo built agent"],
        timeout_seconds=30,
        output="dist/*.bin",
    )
    return spec, commits


@contextmanager
def serve_app(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free port for the duration of the block: real HTTP, real sockets."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture(scope="session")
def api_url(settings, config, app_engine) -> Iterator[str]:
    from release_requests.api.app import create_app

    with serve_app(create_app(settings=settings, config=config, sessions=db.make_sessionmaker(app_engine))) as url:
        yield url


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
            "id": f"cust-{suffix}",
            "name": f"Customer {suffix}",
            "tier": "enterprise",
            "timezone": "Europe/Moscow",
            "country": "RU",
            "email_contacts": [f"soc-{suffix}@example.com"],
        }
        values.update(overrides)
        with db.transaction(self.sessions) as s:
            return create_customer(s, actor=Actor.system("tests"), data=CustomerCreate(**values)).id

    def user(self, role: str, customer_id: str | None = None, *, tam_for: list[str] = (), **extra) -> User:
        from release_requests.audit.service import Actor
        from release_requests.customers.service import assign_tam
        from release_requests.people.service import PersonCreate, create_person, issue_token

        suffix = uuid.uuid4().hex[:8]
        data = PersonCreate(
            name=f"{role.title()} {suffix}",
            role=role,
            email=f"{role}-{suffix}@example.com",
            customer_id=customer_id if role == "customer" else None,
            **extra,
        )
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


def run_relreq(monkeypatch, capsys, args: tuple[str, ...], env: dict[str, str | None]) -> tuple[int, str, str]:
    """`relreq ARGS` in-process through the real entry point with these RR_* variables (None: unset);
    returns (exit code, stdout, stderr)."""
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runtime.session_factory.cache_clear()
    monkeypatch.setattr(sys, "argv", ["relreq", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture
def relreq(monkeypatch, capsys, settings, api_url):
    """Run `relreq ARGS` in-process against the test database and API; returns (exit code, stdout, stderr)."""

    def run(*args: str, token: str | None = None) -> tuple[int, str, str]:
        env = {
            "RR_DATABASE_URL": settings.database_url,
            "RR_DATA_DIR": str(settings.data_dir),
            "RR_API_URL": api_url,
            "RR_TOKEN": token,
        }
        return run_relreq(monkeypatch, capsys, args, env)

    yield run
    get_settings.cache_clear()
    runtime.session_factory.cache_clear()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def prefect_api(db_url, tmp_path_factory) -> Iterator[str]:
    """One real Prefect server per test session, on the test Postgres (its own database), like `relreq serve`."""
    from release_requests.server import _stop, start_prefect_server

    home = tmp_path_factory.mktemp("prefect")
    process, api_url = start_prefect_server(
        settings=Settings(database_url=db_url, data_dir=home),
        app_url=db_url,
        port=free_port(),
        log_file=home / "server.log",
    )
    yield api_url
    _stop(process)


@pytest.fixture
def prefect_client_env(prefect_api, monkeypatch):
    """Flows in this process talk to the session's Prefect server; no heartbeats (no runner to lose)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_api, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield prefect_api


SYSTEM = Actor.system("tests")


class Builder:
    """Creates people, customers, shifts and requests through the real services in one session."""

    def __init__(self, session, config) -> None:
        self.session, self.config = session, config
        # tests file requests at fixed dates (a Sunday night, a holiday) that age: no back-dating limit here
        requests = config.intake.requests.model_copy(update={"max_backdate_hours": 10**7})
        intake = config.intake.model_copy(update={"requests": requests})
        self.intake_config = config.model_copy(update={"intake": intake})

    def customer(self, *, tier="enterprise", timezone="Europe/Moscow", country="RU", **extra):
        suffix = uuid.uuid4().hex[:8]
        data = CustomerCreate(
            id=f"c-{suffix}",
            name=f"C {suffix}",
            tier=tier,
            timezone=timezone,
            country=country,
            email_contacts=[f"soc-{suffix}@example.com"],
            slack_channel=f"c-{suffix}",
            **extra,
        )
        return create_customer(self.session, actor=SYSTEM, data=data)

    def person(self, role: str, *, customer_id=None, tam_for=(), **extra):
        suffix = uuid.uuid4().hex[:8]
        data = PersonCreate(
            name=f"{role} {suffix}",
            role=role,
            email=f"{role}-{suffix}@vendor.example",
            customer_id=customer_id,
            **extra,
        )
        person = create_person(self.session, actor=SYSTEM, data=data)
        for cid in tam_for:
            assign_tam(self.session, actor=SYSTEM, customer_id=cid, person=person)
        return person

    def shift(self, person, start: datetime, end: datetime):
        return add_shifts(self.session, actor=SYSTEM, person=person, data=ShiftCreate(starts_at=start, ends_at=end))

    def request(
        self,
        *,
        by,
        customer,
        severity=1,
        received_at: datetime | None = None,
        kind="false_positive",
        title="Payroll flagged",
        **extra,
    ):
        data = SubmitRequest(
            customer_id=customer.id,
            kind=kind,
            severity=severity,
            channel="phone",
            title=title,
            received_at=received_at,
            **extra,
        )
        return intake.submit(self.session, actor=by, data=data, config=self.intake_config)


@pytest.fixture
def build(session, config) -> Builder:
    return Builder(session, config)
