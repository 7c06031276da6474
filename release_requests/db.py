"""Database access: engines, sessions, the app role, and migrations.

The app works as the `rr_app` role (`SET ROLE` on every connection): it owns the business tables but
may only SELECT and INSERT on the audit log, so no bug or injection in the app can rewrite history.
Migrations run as the connecting (administrative) user.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from release_requests.settings import Settings

APP_ROLE = "rr_app"
APP_DATABASE = "release_requests"
ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"

_naming = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_naming)


_embedded_servers: dict[Path, object] = {}
_embedded_lock = threading.Lock()  # threads of one process (API, dispatcher, deliverer) share one server handle


def resolve_database_url(settings: Settings) -> str:
    """`RR_DATABASE_URL` if given, else the embedded server under `RR_DATA_DIR` (started on demand)."""
    if settings.database_url:
        return settings.database_url
    from release_requests import embedded_pg

    pgdata = settings.postgres_dir.resolve()
    with _embedded_lock:
        server = _embedded_servers.get(pgdata)
        if server is None:
            server = embedded_pg.start_server(pgdata)
            ensure_database(embedded_pg.server_url(server, "postgres"), APP_DATABASE)
            _embedded_servers[pgdata] = server
    return embedded_pg.server_url(server, APP_DATABASE)


def ensure_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    """Create database `name` if it does not exist (CREATE DATABASE cannot run inside a transaction)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=_null_pool())
    try:
        with engine.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:
                suffix = f' TEMPLATE "{template}"' if template else ""
                conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    finally:
        engine.dispose()


def _null_pool():
    from sqlalchemy.pool import NullPool

    return NullPool


def make_engine(url: str, *, as_app_role: bool = True, **kwargs) -> Engine:
    """An engine whose connections act as the app role (unless building the schema)."""
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    if as_app_role:

        @event.listens_for(engine, "connect")
        def _set_role(dbapi_conn, _record) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET ROLE {APP_ROLE}")
            dbapi_conn.commit()

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: a state change, its audit event and its outbox rows commit together or not at all."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    rendered = make_url(url).render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # configparser interpolation
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    engine = create_engine(url, poolclass=_null_pool())
    try:
        with engine.connect() as conn:
            has_table = conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
            return conn.scalar(text("SELECT version_num FROM alembic_version")) if has_table else None
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
