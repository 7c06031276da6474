"""Which installation this is, for everything that several installations may share.

Staging beside production on one Postgres cluster, or several installations on one Prefect server,
must not see each other's work: Prefect's own database, the deployments and work pool its workers serve and the
idempotency keys of segment runs are all scoped by the installation's name. The name is the app
database's (`release_requests` for the embedded default, the database of `RR_DATABASE_URL` otherwise):
unique within a cluster by construction, stable across restarts, needing no extra setting or table,
and readable in Prefect's UI (`build_and_verify/segment@rr_staging`). Installations on different
clusters that share one Prefect server (`PREFECT_API_URL`) must use different database names.
"""

from __future__ import annotations

import hashlib
import re

from sqlalchemy.engine import URL, make_url

from release_requests.errors import ConfigError

PREFECT_SUFFIX = "_prefect"
_MAX_IDENTIFIER_BYTES = 63  # Postgres silently truncates longer names; the URL would then name another database
_NOT_IN_PREFECT_NAMES = re.compile(r"[/%&<>]")  # Prefect refuses these in deployment and runner names


def database_name(url: str | URL) -> str:
    """The database a SQLAlchemy URL connects to; a URL without one cannot name an installation."""
    name = make_url(url).database
    if not name:
        raise ConfigError("the database URL names no database (postgresql+psycopg://user@host/DBNAME)")
    return name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def installation_name(url: str | URL) -> str:
    """The installation's name from its app database URL, usable in Prefect names.

    A database name with characters Prefect refuses gets them replaced and a digest of the original
    appended, so two such names cannot collapse into one.
    """
    name = database_name(url)
    safe = _NOT_IN_PREFECT_NAMES.sub("_", name)
    return safe if safe == name else f"{safe}-{_digest(name)}"


def prefect_database(app_database: str) -> str:
    """Prefect's database beside the app's: `<app database>_prefect`, one per installation.

    Shortened with a digest when the name would exceed Postgres's 63-byte identifier limit.
    """
    name = app_database + PREFECT_SUFFIX
    if len(name.encode()) <= _MAX_IDENTIFIER_BYTES:
        return name
    tail = f"-{_digest(app_database)}{PREFECT_SUFFIX}"
    head = app_database
    while len((head + tail).encode()) > _MAX_IDENTIFIER_BYTES:
        head = head[:-1]
    return head + tail


def deployment_name(base: str, installation: str) -> str:
    """`segment` → `segment@rr_staging`: each installation's workers run only its own deployments."""
    return f"{base}@{installation}"


def idempotency_key(installation: str, key: str) -> str:
    """A Prefect idempotency key scoped to the installation: request ids repeat across installations."""
    return f"{installation}:{key}"
