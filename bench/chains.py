"""What the benchmarks that need a long audit log share: an embedded Postgres with the real schema, and a
writer that appends valid hash-chained events through COPY (hashes by `audit.service.compute_hash`,
exactly as `record` makes them), so `audit verify` passes on what they build."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

AUDIT_COLUMNS = (
    "seq",
    "occurred_at",
    "actor",
    "actor_id",
    "action",
    "entity_type",
    "entity_id",
    "request_id",
    "before",
    "after",
    "reason",
    "prev_hash",
    "hash",
)
COPY_AUDIT = f"COPY audit_events ({', '.join(AUDIT_COLUMNS)}) FROM STDIN"


class Chain:
    """Appends events with valid hashes to one COPY into `audit_events` (see COPY_AUDIT), after `seq`/`prev`."""

    def __init__(self, copy, seq: int = 0, prev: str | None = None) -> None:
        from release_requests.audit.service import GENESIS_HASH

        self.copy, self.seq, self.prev = copy, seq, prev or GENESIS_HASH

    def add(
        self, at, actor, action, entity_type, entity_id, request_id, before, after, reason=None, actor_id=None
    ) -> None:
        from psycopg.types.json import Jsonb

        from release_requests.audit.service import compute_hash

        self.seq += 1
        event = SimpleNamespace(
            seq=self.seq,
            occurred_at=at,
            actor=actor,
            actor_id=actor_id,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            request_id=request_id,
            before=before,
            after=after,
            reason=reason,
            prev_hash=self.prev,
        )
        event.hash = self.prev = compute_hash(event)
        row = [getattr(event, c) for c in AUDIT_COLUMNS]
        row[8:10] = [None if v is None else Jsonb(v) for v in (before, after)]
        self.copy.write_row(row)


@contextmanager
def bench_database(keep: Path | None, name: str, *, prefix: str) -> Iterator[tuple[str, bool]]:
    """An embedded Postgres (in `keep`, reused, or a temporary folder removed afterwards) with database `name`
    migrated; yields its URL and whether it was just created (empty)."""
    from release_requests import db, embedded_pg

    root = keep or Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    server = embedded_pg.start_server(root / "pg")
    try:
        admin = embedded_pg.server_url(server, "postgres")
        fresh = not db.database_exists(admin, name)
        db.ensure_database(admin, name)
        url = embedded_pg.server_url(server, name)
        if fresh:
            db.upgrade(url)
        yield url, fresh
    finally:
        server.cleanup()
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
