"""Database access: engines, sessions, the app role, and migrations.

The app works as the `rr_app` role (`SET ROLE` on every connection): it owns the business tables but
may only SELECT and INSERT on the audit log, so no bug or injection in the app can rewrite history.
Migrations run as the connecting (administrative) user.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData, bindparam, create_engine, event, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.util import identity_key
from sqlalchemy.pool import NullPool

from release_requests import embedded_pg
from release_requests.errors import ConfigError
from release_requests.settings import SOURCE_ROOT, Settings

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


class NoDatabase(ConfigError):
    """No embedded database where this process looked; only set-up commands (`serve`, `db upgrade`) create one."""

    code = "no_database"


def resolve_database_url(settings: Settings, *, create: bool = False) -> str:
    """`RR_DATABASE_URL` if given, else the embedded server under `RR_DATA_DIR` (started on demand).

    Only with `create` (`relreq serve`, `relreq db upgrade`) is a missing embedded cluster or app database
    created; every other process raises `NoDatabase` naming where it looked, instead of quietly working on
    a new, empty database that is not the one the server uses.
    """
    if settings.database_url:
        return settings.database_url
    pgdata = settings.postgres_dir.resolve()
    with _embedded_lock:
        server = _embedded_servers.get(pgdata)
        if server is None:
            if not create and not embedded_pg.cluster_exists(pgdata):
                raise NoDatabase(missing_database_message(settings))
            server = embedded_pg.start_server(pgdata)
            admin_url = embedded_pg.server_url(server, "postgres")
            if create:
                ensure_database(admin_url, APP_DATABASE)
            elif not database_exists(admin_url, APP_DATABASE):
                raise NoDatabase(missing_database_message(settings))
            _embedded_servers[pgdata] = server
    return embedded_pg.server_url(server, APP_DATABASE)


def legacy_data_dirs(settings: Settings) -> list[Path]:
    """Data directories an earlier version left in `./.data` (of the repository or the current folder)."""
    here = settings.data_dir.resolve()
    found = []
    for candidate in (SOURCE_ROOT / ".data", Path.cwd() / ".data"):
        candidate = candidate.resolve()
        if candidate != here and candidate not in found and embedded_pg.cluster_exists(candidate / "postgres"):
            found.append(candidate)
    return found


def missing_database_message(settings: Settings) -> str:
    where = "RR_DATA_DIR" if "data_dir" in settings.model_fields_set else "RR_DATA_DIR unset: the default"
    message = (
        f"no database at {settings.data_dir.resolve()} ({where}): start `relreq serve` once, "
        "or set RR_DATA_DIR/RR_DATABASE_URL"
    )
    legacy = legacy_data_dirs(settings)
    if legacy:
        message += f" (an earlier version kept its data in {legacy[0]}: RR_DATA_DIR={legacy[0]} uses it)"
    return message


def database_exists(admin_url: str, name: str) -> bool:
    engine = create_engine(admin_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return bool(conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}))
    finally:
        engine.dispose()


def ensure_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    """Create database `name` if it does not exist (CREATE DATABASE cannot run inside a transaction)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:
                suffix = f' TEMPLATE "{template}"' if template else ""
                conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    finally:
        engine.dispose()


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


def get_many(session: Session, model: type[Base], ids) -> dict:
    """{primary key: row} for `ids`: rows this session holds already cost nothing, the rest one query.

    `select(...).where(id.in_(...))` asks the database even for rows in the identity map; on a write path
    that has just loaded the customer and the owner, that is a round trip for nothing.
    """
    found, missing = {}, []
    for key in dict.fromkeys(ids):
        row = session.identity_map.get(identity_key(model, key))
        if row is None:
            missing.append(key)
        else:
            found[key] = row
    if missing:
        (column,) = model.__mapper__.primary_key
        found.update((getattr(row, column.key), row) for row in session.scalars(_by_keys(model), {"keys": missing}))
    return found


@functools.cache
def _by_keys(model: type[Base]):
    """`model`'s rows by primary key, built once per model (building a statement costs more than running it)."""
    (column,) = model.__mapper__.primary_key
    return select(model).where(column.in_(bindparam("keys", expanding=True)))


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: a state change, its audit event and its outbox rows commit together or not at all."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str):
    # deferred: Alembic costs ~0.4 s to import and only migrations need it, not every API or CLI process
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    rendered = make_url(url).render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # configparser interpolation
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    # deferred: Alembic costs ~0.4 s to import and only migrations need it
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            has_table = conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
            return conn.scalar(text("SELECT version_num FROM alembic_version")) if has_table else None
    finally:
        engine.dispose()


def head_revision() -> str:
    # deferred: Alembic costs ~0.4 s to import and only schema checks need it
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
