"""Opening the database for a process: find it, make sure its schema is current, hand out sessions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from release_requests import db
from release_requests.errors import ConfigError
from release_requests.settings import get_settings

log = logging.getLogger(__name__)


def migrated_url(*, create: bool = False) -> str:
    """The app database URL, migrated to head.

    The embedded database is upgraded on the spot (after a code update, the next command just works); an
    external one is only checked, because its upgrades are an operator's decision (`relreq db upgrade`).
    A missing embedded database is created only with `create` (`relreq serve`): any other process stops
    with `db.NoDatabase`, naming where it looked.
    """
    settings = get_settings()
    url = db.resolve_database_url(settings, create=create)
    current, head = db.current_revision(url), db.head_revision()
    if current != head:
        if settings.database_url:
            raise ConfigError(
                f"database schema is at {current or 'nothing'}, this code needs {head}: run `relreq db upgrade`"
            )
        db.upgrade(url)
        log.info("database schema upgraded from %s to %s", current or "nothing", head)
    return url


@lru_cache
def session_factory() -> sessionmaker[Session]:
    return db.make_sessionmaker(db.make_engine(migrated_url()))


@contextmanager
def local_session() -> Iterator[Session]:
    """One transaction for a local (non-API) command."""
    with db.transaction(session_factory()) as session:
        yield session
