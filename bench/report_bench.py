"""The customer report over a big log: 100,000 requests and 1,000,000 audit events, target ≤ 1 s.

    .venv/bin/python bench/report_bench.py [--requests 100000] [--events 1000000] [--runs 5] [--data DIR]

Sets up an embedded Postgres with the real schema and fills it quickly with COPY: `--requests` requests of
10 customers of very different sizes (the biggest files a quarter of them; zones from Moscow to New York and
Tokyo, so severities 3–4 run on business clocks with holidays) received over 8 quarters (2025Q1–2026Q4),
and their life in the audit log, `--events` events in all, in time order as the service writes them (so
one request's events lie far apart in the table, as in production): submission, routing, needs-info and
answers, responses, severity changes, triage decisions, the pipeline's transitions, channel publications,
notifications; the chain is valid (hashes by `audit.service.compute_hash`, exactly as `record` makes them;
`audit verify` runs at the end unless `--skip-verify`). Released requests get their release row and
publications in `channel_history`; every customer has Health Checks and a TAM's note.

Then, with the app role and a fixed `as_of`: `build_customer_report` for a median-size customer's quarter,
the biggest customer's quarter, and the biggest customer's whole year — `--runs` times each after one cold
run; prints each run, the median, and what the report found (requests, events read, breaches, releases).
`--data DIR` keeps the cluster and reuses it when it already holds that data (building takes ~1–2 min).
Figures: docs/reports.md ("Performance").
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

REQUEST_COLUMNS = (
    "id",
    "customer_id",
    "kind",
    "severity",
    "channel",
    "title",
    "description",
    "product",
    "product_version",
    "status",
    "submitted_by_id",
    "owner_id",
    "version",
    "received_at",
    "created_at",
    "updated_at",
)
# id, share of the requests, zone, country
CUSTOMERS = (
    ("bigbank", 25, "Europe/Moscow", "RU"),
    ("retail", 18, "Europe/Berlin", "DE"),
    ("telecom", 14, "America/New_York", "US"),
    ("energy", 10, "Europe/Moscow", "RU"),
    ("insurer", 8, "Asia/Tokyo", "JP"),
    ("airline", 7, "Europe/London", "GB"),
    ("pharma", 6, "Europe/Paris", "FR"),
    ("metals", 5, "Asia/Yekaterinburg", "RU"),
    ("logistics", 4, "America/Chicago", "US"),
    ("university", 3, "Europe/Moscow", "RU"),
)
START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
AS_OF = datetime(2027, 1, 15, tzinfo=UTC)
PIPELINE = ("building", "verifying", "awaiting_approval", "releasing", "released")
TITLES = (
    "Payroll flagged as Trojan.Win32.Generic",
    "Ложное срабатывание на 1С",
    "Missed dropper in e-mail",
    "Agent crash",
)


def own_channel(request: dict) -> str:
    """The customer's own channel (stages.toml): `customer-<id>` for bases, `hotfix-<id>-<product>` for hotfixes."""
    if request["product"]:
        return f"hotfix-{request['customer_id']}-{request['product']}"
    return f"customer-{request['customer_id']}"


def life(rng: random.Random, request: dict) -> list[tuple]:
    """The request's events, (at, action, entity_type, entity_id, before, after, reason): a plausible life."""
    rid, received = request["id"], request["received_at"]
    at = received + timedelta(minutes=rng.randint(0, 20))
    iso = lambda t: t.isoformat()  # noqa: E731
    snapshot = {k: v for k, v in request.items() if k not in ("received_at", "release")}
    events = [
        (
            at,
            "request.submitted",
            "request",
            rid,
            None,
            {**snapshot, "received_at": iso(received), "status": "submitted"},
            None,
        ),
        (
            at + timedelta(seconds=1),
            "request.routed",
            "request",
            rid,
            None,
            {"owner_id": 2, "owner": "Duty"},
            "on duty",
        ),
    ]
    version, status, severity = 1, "submitted", request["severity"]
    # how long the first answer takes: mostly on time, a tail of late ones (minutes)
    answer = at + timedelta(minutes=rng.lognormvariate(3.2, 1.1))

    def move(when, action, target, reason=None, **extra):
        nonlocal version, status
        before = {"status": status, "version": version, **{k: None for k in extra}}
        version += 1
        events.append((when, action, "request", rid, before, {"status": target, "version": version, **extra}, reason))
        status = target

    if rng.random() < 0.05:
        new = max(1, severity - 1) if severity > 1 else 2
        version += 1
        change = {"severity": new, "version": version, "updated_at": iso(at + timedelta(minutes=5))}
        events.append(
            (
                at + timedelta(minutes=5),
                "request.severity_changed",
                "request",
                rid,
                {"severity": severity},
                change,
                "impact",
            )
        )
        severity = new
    if rng.random() < 0.15:
        asked = at + timedelta(minutes=rng.randint(2, 30))
        move(asked, "request.needs_info", "needs_info", question="Which version?")
        move(asked + timedelta(hours=rng.uniform(0.2, 30)), "request.answered", "submitted", answer="4.2.1")
        answer = max(answer, events[-1][0] + timedelta(minutes=rng.randint(5, 60)))
    if rng.random() < 0.2:
        events.append((answer, "request.responded", "request", rid, None, {"message": "We are on it"}, None))
        answer += timedelta(minutes=rng.randint(10, 120))
    outcome = rng.random()
    if outcome < 0.04:
        if rng.random() < 0.5:  # some stay open: their clock still runs at the end
            move(answer, "request.cancelled", "cancelled", reason="solved")
        return events
    if outcome < 0.14:
        move(answer, "request.rejected", "rejected", reason="not a false positive")
        return events
    move(answer, "request.accepted", "accepted", assignee_id=3)
    when = answer
    for target in PIPELINE:
        when += timedelta(minutes=rng.randint(20, 600))
        move(when, f"request.{target}", target)
        if target == "releasing":
            channel = own_channel(request)
            events.append(
                (
                    when,
                    "channel.published",
                    "channel",
                    channel,
                    {"version": None},
                    {"version": request["release"]},
                    None,
                )
            )
    if rng.random() < 0.5:
        move(when + timedelta(days=rng.uniform(1, 10)), "request.closed", "closed")
    return events


def build(url: str, n_requests: int, n_events: int) -> None:
    import psycopg
    from psycopg.types.json import Jsonb
    from sqlalchemy import text

    from release_requests import db
    from release_requests.audit.service import Actor
    from release_requests.customers.schemas import CustomerCreate
    from release_requests.customers.service import create_customer
    from release_requests.people.service import PersonCreate, create_person

    rng = random.Random(14)
    actor = Actor.system("bench")
    sessions = db.make_sessionmaker(db.make_engine(url, as_app_role=False))
    with db.transaction(sessions) as s:
        for cid, _, zone, country in CUSTOMERS:
            create_customer(
                s,
                actor=actor,
                data=CustomerCreate(id=cid, name=cid.title(), tier="enterprise", timezone=zone, country=country),
            )
        people = [
            create_person(s, actor=actor, data=PersonCreate(name=n, role=r)).id
            for n, r in (
                ("Filer", "tam"),
                ("Duty", "duty_manager"),
                ("Triage", "triage"),
                ("Engineer", "build_engineer"),
            )
        ]
        existing = s.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
    weights = [share for _, share, _, _ in CUSTOMERS]
    span = (END - START).total_seconds()
    requests = []
    for n in range(n_requests):
        cid = rng.choices(CUSTOMERS, weights)[0][0]
        received = START + timedelta(seconds=rng.uniform(0, span))
        kind = rng.choices(("false_positive", "false_negative", "private_hotfix"), (70, 20, 10))[0]
        requests.append(
            {
                "id": f"RR-{received.year}-{n + 1:06d}",
                "customer_id": cid,
                "kind": kind,
                "severity": rng.choices((1, 2, 3, 4), (10, 25, 35, 30))[0],
                "channel": rng.choice(("portal", "phone", "email", "tam")),
                "title": rng.choice(TITLES),
                "product": "endpoint-agent" if kind == "private_hotfix" else None,
                "received_at": received,
                "release": f"{received:%Y.%m.%d}.{n + 1}"
                if kind != "private_hotfix"
                else f"{cid}/endpoint-agent/11.2.0-{n + 1}",
            }
        )
    started = time.perf_counter()
    timeline = []
    final = {}
    for request in requests:
        events = life(rng, request)
        final[request["id"]] = events
        timeline.extend((e[0], request["id"], i) for i, e in enumerate(events))
    missing = n_events - len(timeline) - existing  # the customers' and people's events are in the chain already
    if missing < 0:
        raise SystemExit(f"{n_requests} requests make {len(timeline)} events, more than --events {n_events}")
    for _ in range(missing):  # delivery notices, to the exact count
        request = rng.choice(requests)
        events = final[request["id"]]
        at = events[-1][0] + timedelta(seconds=rng.randint(1, 3600))
        events.append(
            (at, "notification.sent", "notification", request["id"], None, {"event": "request.response"}, None)
        )
        timeline.append((at, request["id"], len(events) - 1))
    timeline.sort()
    print(f"planned {len(timeline):,} request events in {time.perf_counter() - started:.1f} s", flush=True)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        seq, prev = cur.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
        by_id = {r["id"]: r for r in requests}
        with cur.copy(f"COPY release_requests ({', '.join(REQUEST_COLUMNS)}) FROM STDIN") as copy:
            for r in requests:
                events = final[r["id"]]
                status = next(
                    e[5]["status"] for e in reversed(events) if e[2] == "request" and e[5] and "status" in e[5]
                )
                severity = next(e[5]["severity"] for e in reversed(events) if e[5] and "severity" in e[5])
                created = events[0][0]
                copy.write_row(
                    [r["id"], r["customer_id"], r["kind"], severity, r["channel"], r["title"], "", r["product"]]
                    + ["11.2.0" if r["product"] else None, status, people[0], people[1], 1, r["received_at"]]
                    + [created, events[-1][0]]
                )
        with cur.copy(COPY_AUDIT) as copy:
            chain = Chain(copy, seq, prev)
            for _, rid, index in timeline:
                at, action, entity_type, entity_id, before, after, reason = final[rid][index]
                who = (
                    "system:pipeline"
                    if action.startswith(("request.b", "request.v", "request.re", "channel"))
                    else "Duty"
                )
                chain.add(at, who, action, entity_type, entity_id, rid, before, after, reason)
        published = [(by_id[rid], e[0]) for rid, events in final.items() for e in events if e[1] == "channel.published"]
        with cur.copy(
            "COPY releases (version, kind, request_id, private_to, product, manifest, manifest_json, manifest_sha256,"
            " signature, signing_key_id, files, allowlist, registered_by) FROM STDIN"
        ) as copy:
            for r, _ in published:
                hotfix = r["kind"] == "private_hotfix"
                copy.write_row(
                    [r["release"], "hotfix" if hotfix else "base", r["id"], r["customer_id"] if hotfix else None]
                    + [r["product"], Jsonb({}), "{}", "0" * 64, "sig", "key", Jsonb({}), Jsonb([]), "bench"]
                )
        with cur.copy(
            "COPY channel_history (channel, from_version, to_version, action, rollout_percent, actor, request_id, at)"
            " FROM STDIN"
        ) as copy:
            for r, at in published:
                internal = "hotfix-internal-endpoint-agent" if r["product"] else "internal"
                for channel in (internal, own_channel(r)):
                    copy.write_row([channel, None, r["release"], "publish", 100, "system:pipeline", r["id"], at])
        for number, (cid, *_) in enumerate(CUSTOMERS):
            for year in (2024, 2025, 2026):
                day = date(year, rng.randint(2, 11), number + 1)  # one engineer: one check a day
                cur.execute(
                    "INSERT INTO healthchecks (customer_id, engineer_id, scheduled_on, certificate_year_start, status,"
                    " booked_by_id, booked_at, updated_at, version) VALUES (%s, %s, %s, %s, %s, %s, now(), now(), 1)"
                    " RETURNING id",
                    (cid, people[3], day, date(year, 1, 1), "report_delivered", people[0]),
                )
                check = cur.fetchone()[0]
                for severity in rng.choices(("critical", "high", "medium", "low"), k=rng.randint(1, 6)):
                    cur.execute(
                        "INSERT INTO healthcheck_findings (healthcheck_id, product, area, setting, found, severity,"
                        " recommendation) VALUES (%s, 'Endpoint', 'scan', 'heuristics', 'off', %s, 'turn it on')",
                        (check, severity),
                    )
            cur.execute(
                "INSERT INTO report_notes (customer_id, period_start, period_end, body, author_id)"
                " VALUES (%s, '2026-10-01', '2026-12-31', 'Fewer false positives since the November base.', %s)",
                (cid, people[0]),
            )
        cur.execute("ANALYZE")


def measure(label: str, sessions, config, customer_id: str, period, runs: int) -> float:
    from release_requests import db
    from release_requests.reports.service import build_customer_report

    times = []
    for run in range(runs + 1):
        with db.transaction(sessions) as s:
            started = time.perf_counter()
            report = build_customer_report(s, customer_id=customer_id, period=period, config=config, as_of=AS_OF)
            elapsed = time.perf_counter() - started
        if run:
            times.append(elapsed)
        print(f"  {label} {'cold' if run == 0 else f'run {run}'}: {elapsed * 1000:7.1f} ms", flush=True)
    median = statistics.median(times)
    print(
        f"{label}: median {median * 1000:.0f} ms over {runs} runs — {report.requests_total:,} requests, "
        f"{report.sla_met:,} met / {report.sla_breached:,} breached / {report.sla_running} running "
        f"({report.sla_attainment_pct} %), p50 {report.first_response_p50_minutes} min, "
        f"{len(report.breaches):,} breaches, {len(report.releases):,} releases, "
        f"{len(report.healthchecks)} Health Checks"
    )
    from release_requests.reports.rendering import report_pdf

    started = time.perf_counter()
    pdf = report_pdf(report, language="en")
    print(f"{label}: PDF {len(pdf) / 1024:.0f} KiB in {time.perf_counter() - started:.2f} s (WeasyPrint, warm)")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data", type=Path, help="keep the cluster here and reuse it")
    parser.add_argument("--skip-verify", action="store_true", help="do not run `audit verify` on the built chain")
    args = parser.parse_args()

    from sqlalchemy import func, select, text

    from release_requests import db
    from release_requests.audit.service import verify_chain
    from release_requests.config import load_config
    from release_requests.reports.periods import quarter
    from release_requests.reports.schemas import Period
    from release_requests.requests.models import ReleaseRequest

    name = f"report_{args.requests}_{args.events}"
    with bench_database(args.data, name, prefix="rr-report-bench-") as (url, fresh):
        if fresh:
            started = time.perf_counter()
            build(url, args.requests, args.events)
            print(
                f"built {args.requests:,} requests and {args.events:,} events in {time.perf_counter() - started:.0f} s"
            )
        sessions = db.make_sessionmaker(db.make_engine(url))
        config = load_config(REPO / "config")
        with db.transaction(sessions) as s:
            counts = s.execute(
                text("SELECT (SELECT count(*) FROM release_requests), (SELECT count(*) FROM audit_events)")
            ).one()
            per_customer = dict(
                s.execute(select(ReleaseRequest.customer_id, func.count()).group_by(ReleaseRequest.customer_id)).all()
            )
        if tuple(counts) != (args.requests, args.events):
            raise SystemExit(f"{name} holds {tuple(counts)}, not {(args.requests, args.events)}: remove {args.data}")
        print(
            f"{counts[0]:,} requests, {counts[1]:,} audit events; {platform.python_implementation()} "
            f"{platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"
        )
        ranked = sorted(per_customer, key=per_customer.get)
        biggest, middle = ranked[-1], ranked[len(ranked) // 2]
        measure(
            f"{middle} ({per_customer[middle]:,} requests) 2026Q4",
            sessions,
            config,
            middle,
            quarter("2026Q4"),
            args.runs,
        )
        measure(
            f"{biggest} ({per_customer[biggest]:,} requests) 2026Q4",
            sessions,
            config,
            biggest,
            quarter("2026Q4"),
            args.runs,
        )
        year = Period(start=date(2026, 1, 1), end=date(2026, 12, 31), label="2026")
        measure(f"{biggest} 2026 (whole year)", sessions, config, biggest, year, args.runs)
        if not args.skip_verify:
            with db.transaction(sessions) as s:
                started = time.perf_counter()
                chain = verify_chain(s)
            rate = chain.checked / (time.perf_counter() - started)
            print(f"audit verify: {'intact' if chain.ok else chain.problem}, {chain.checked:,} events, {rate:,.0f}/s")
            if not chain.ok:
                raise SystemExit(1)


if __name__ == "__main__":
    main()
