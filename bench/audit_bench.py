"""`relreq audit verify` on a long chain: events per second, before (ORM rows) and after (raw COPY rows).

    .venv/bin/python bench/audit_bench.py [--events 1000000] [--runs 3] [--data DIR]

Sets up an embedded Postgres with the real schema and writes `--events` valid audit events into it
with COPY (hashes computed in Python by `audit.service.compute_hash`, exactly as `record` does;
payloads shaped like the real ones: request snapshots, transitions with a reason, customer records
with nested lists, Cyrillic and CJK titles, quotes, control characters, U+2028, big ints, empty
dicts). Then, on that same data, `--runs` times each: the implementation before issue 14 (ORM
objects in batches of 5,000, `compute_hash` per event) and today's `verify_chain`. Prints events/s
for each run and the median, and checks both agree the chain is intact. `--data DIR` keeps the
cluster in DIR and reuses it when it already holds that many events (building 1,000,000 takes ~1 min).
Figures: docs/operations.md ("Audit verification").
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.chains import COPY_AUDIT, Chain, bench_database  # noqa: E402

STATUSES = ("submitted", "accepted", "in_progress", "fix_built", "verified", "signed_off", "released", "closed")
TITLES = (
    "FP on payroll.exe 4.2.1",
    "Ложное срабатывание на бухгалтерии",
    "誤検知: 会計ソフト",
    'quoted "name" and back\\slash',
    "tab\there, newline\nthere, bell\x07, unit sep\x1f",
    "line sep\u2028para sep\u2029 and DEL\x7f",
    "emoji 🛡️ in a title",
)


def payload(rng: random.Random, seq: int) -> tuple[str, str, str, str | None, dict | None, dict | None, str | None]:
    """(action, entity_type, entity_id, request_id, before, after, reason) of one plausible event."""
    request_id = f"RR-{seq // 7:06d}"
    kind = seq % 10
    if kind < 5:
        status = rng.randrange(len(STATUSES) - 1)
        return (
            "request.transition",
            "request",
            request_id,
            request_id,
            {"status": STATUSES[status], "version": status + 1},
            {"status": STATUSES[status + 1], "version": status + 2},
            rng.choice((None, "customer confirmed", "SLA breach: escalated to duty manager\nsee call notes")),
        )
    if kind < 8:
        return (
            "request.submitted",
            "request",
            request_id,
            request_id,
            None,
            {
                "id": request_id,
                "kind": rng.choice(("false_positive", "false_negative", "private_hotfix")),
                "severity": rng.randint(1, 4),
                "status": "submitted",
                "title": rng.choice(TITLES),
                "customer_id": f"cust-{rng.randrange(500):03d}",
                "channel": rng.choice(("portal", "email", "phone")),
                "due_at": f"2025-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:30:00+00:00",
                "sample_sha256": f"{rng.getrandbits(256):064x}",
                "version": 1,
            },
            None,
        )
    if kind < 9:
        quota = 2**70 + seq if seq % 1000 == 8 else 5000  # beyond 64 bits: the exact (json) path, now and then
        return (
            "customer.updated",
            "customer",
            f"cust-{seq % 500:03d}",
            None,
            {"tier": "standard", "email_contacts": [], "settings": {}},
            {
                "tier": "enterprise",
                "email_contacts": [f"soc{n}@cust-{seq % 500:03d}.example" for n in range(rng.randint(0, 3))],
                "settings": {"digest": {"weekly": True, "hours": [9, 17]}, "quota": quota, "none": None},
            },
            rng.choice((None, "renewal")),
        )
    return ("token.issued", "person", str(seq % 900), None, None, {"prefix": "rr_abcd", "token": "[redacted]"}, None)


def build(url: str, events: int) -> None:
    """Write `events` valid events with COPY, hashing each exactly as `record` does."""
    import psycopg

    rng = random.Random(14)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur, cur.copy(COPY_AUDIT) as copy:
        chain = Chain(copy)
        for seq in range(1, events + 1):
            action, entity_type, entity_id, request_id, before, after, reason = payload(rng, seq)
            micro = 0 if seq % 10 == 0 else rng.randrange(1, 1_000_000)  # isoformat drops ".000000"
            chain.add(
                start + timedelta(seconds=seq * 3, microseconds=micro),
                rng.choice(("system:sla_watch", "Анна Петрова", "Duty Manager", "local-admin:root@host")),
                action,
                entity_type,
                entity_id,
                request_id,
                before,
                after,
                reason,
                actor_id=rng.choice((None, rng.randrange(1, 900))),
            )
    with psycopg.connect(conninfo, autocommit=True) as conn:  # as a long-lived log is: hint bits set, visible
        conn.execute("VACUUM (FREEZE, ANALYZE) audit_events")


def orm_verify(session):
    """The implementation before issue 14, kept as the baseline: ORM objects in batches, `compute_hash` each."""
    from sqlalchemy import select

    from release_requests.audit.models import AuditEvent
    from release_requests.audit.service import GENESIS_HASH, ChainReport, compute_hash

    expected_prev, expected_seq, checked, last_seq = GENESIS_HASH, 1, 0, 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(5000)
        ).all()
        if not rows:
            return ChainReport(checked)
        for event in rows:
            if event.seq != expected_seq:
                return ChainReport(checked, expected_seq, f"row {expected_seq} is missing (next row is {event.seq})")
            if event.prev_hash != expected_prev:
                return ChainReport(
                    checked, event.seq, f"row {event.seq}: prev_hash does not link to row {event.seq - 1}"
                )
            if compute_hash(event) != event.hash:
                return ChainReport(checked, event.seq, f"row {event.seq}: content does not match its hash")
            expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
        last_seq = rows[-1].seq
        session.expunge_all()


def machine_idle(seconds: float = 1.0) -> str:
    """How idle the cores were just before a run: other work on the machine skews the figures."""
    with open("/proc/stat") as stat:
        before = [int(n) for n in stat.readline().split()[1:]]
    time.sleep(seconds)
    with open("/proc/stat") as stat:
        after = [int(n) for n in stat.readline().split()[1:]]
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return f"cores {100 * (spent[3] + spent[4]) / sum(spent):.0f}% idle before"


def measure(label: str, verify, sessions, events: int, runs: int) -> float:
    from release_requests import db

    rates = []
    for run in range(1, runs + 1):
        idle = machine_idle()
        with db.transaction(sessions) as s:
            started = time.perf_counter()
            report = verify(s)
            elapsed = time.perf_counter() - started
        if not report.ok or report.checked != events:
            raise SystemExit(f"{label}: expected {events} intact events, got {report}")
        rates.append(events / elapsed)
        print(f"  {label} run {run}: {elapsed:6.2f} s  {events / elapsed:>9,.0f} events/s  ({idle})", flush=True)
    median = statistics.median(rates)
    print(f"{label}: median {median:,.0f} events/s over {runs} runs")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, help="keep the cluster here and reuse it")
    parser.add_argument("--skip-baseline", action="store_true", help="measure only today's verify_chain")
    args = parser.parse_args()

    from sqlalchemy import text

    from release_requests import db
    from release_requests.audit.service import verify_chain

    with bench_database(args.data, f"audit_{args.events}", prefix="rr-audit-bench-") as (url, fresh):
        if fresh:
            started = time.perf_counter()
            build(url, args.events)
            print(f"built {args.events:,} events in {time.perf_counter() - started:.1f} s", flush=True)
        sessions = db.make_sessionmaker(db.make_engine(url))
        with db.transaction(sessions) as s:
            count = s.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
        if count != args.events:
            raise SystemExit(f"the kept database holds {count} events, not {args.events}: remove {args.data}")
        print(f"{date.today()}, {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores")
        before = None if args.skip_baseline else measure("ORM (before)", orm_verify, sessions, count, args.runs)
        after = measure("verify_chain", verify_chain, sessions, count, args.runs)
        if before:
            print(f"speed-up: {after / before:.1f}x")


if __name__ == "__main__":
    main()
