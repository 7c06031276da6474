"""A false-positive storm: many customers report the same detection at once; one build must serve them all.

    .venv/bin/python bench/storm_bench.py [--requests 1000] [--customers 50] [--threads 8]

Sets up an embedded Postgres and the real API under uvicorn in its own process (as `relreq serve` runs
it). The first report of a wrongly detected file is filed with the file and accepted: its build opens.
Then `--requests - 1` more reports of the same file (its sha256 as evidence) arrive from `--customers`
customers through `POST /api/v1/requests`, from `--threads` client threads at once. Measured: the
time the storm took, submissions per second, latency p50 / p95 / max. Checked afterwards, from the
database: exactly one build, every report acknowledged (its `request.received` notice queued), every
report joined to the build under one advisory id with its own SLA clock met, nothing lost.
"""

from __future__ import annotations

import argparse
import hashlib
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.updates_bench import serve_api, wait_for  # noqa: E402
from devservers import free_port  # noqa: E402


def post(conn: http.client.HTTPConnection, path: str, body: dict, token: str) -> tuple[int, dict, float]:
    started = time.perf_counter()
    conn.request(
        "POST",
        path,
        body=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    data = json.loads(response.read() or b"{}")
    return response.status, data, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--serve-api", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        serve_api(args.serve_api)
        return

    import io

    import git
    from sqlalchemy import func, select

    from artifacts.corpus import load_corpus
    from artifacts.signing import create_signing_key
    from artifacts.starter import init_sigrepo
    from release_requests import db, embedded_pg
    from release_requests.audit.service import Actor
    from release_requests.clock import db_now
    from release_requests.config import load_config
    from release_requests.customers.schemas import CustomerCreate
    from release_requests.customers.service import create_customer
    from release_requests.notifications.models import Notification
    from release_requests.people.service import PersonCreate, create_person, issue_token
    from release_requests.pipeline.models import Build
    from release_requests.requests.models import ReleaseRequest
    from release_requests.requests.schemas import Accept, SubmitRequest
    from release_requests.sla.service import status_of_many
    from release_requests.workflows import intake

    tmp = Path(tempfile.mkdtemp(prefix="rr-storm-bench-", dir="/tmp"))
    server = embedded_pg.start_server(tmp / "pg")
    api = None
    try:
        db.ensure_database(embedded_pg.server_url(server, "postgres"), "bench")
        url = embedded_pg.server_url(server, "bench")
        db.upgrade(url)
        data_dir = tmp / "data"
        create_signing_key(data_dir=data_dir)
        init_sigrepo(path=data_dir / "sigrepo", author="Signature Team <signatures@example.com>")
        config = load_config(REPO / "config")
        actor = Actor.system("bench")
        sessions = db.make_sessionmaker(db.make_engine(url))
        corpus = load_corpus(git.Repo(data_dir / "sigrepo").head.commit)
        sample = b"MZ payroll 4.2.1 " + next(s for s in corpus.malicious if s.expect).render()
        sha = hashlib.sha256(sample).hexdigest()
        tokens: list[tuple[str, str]] = []  # (customer id, a TAM's token): TAMs file for their customers
        with db.transaction(sessions) as s:
            triager = create_person(s, actor=actor, data=PersonCreate(name="Bench Triage", role="triage"))
            for n in range(args.customers):
                customer = create_customer(
                    s,
                    actor=actor,
                    data=CustomerCreate(
                        id=f"storm-{n:03d}",
                        name=f"Storm Customer {n}",
                        tier="enterprise" if n % 2 else "standard",
                        timezone="Europe/Moscow",
                        country="RU",
                        email_contacts=[f"soc@storm-{n:03d}.example"],
                    ),
                ).id
                user = create_person(
                    s, actor=actor, data=PersonCreate(name=f"IT {n}", role="customer", customer_id=customer)
                )
                tokens.append((customer, issue_token(s, actor=actor, person=user)))
            first = create_person(
                s, actor=actor, data=PersonCreate(name="First IT", role="customer", customer_id="storm-000")
            )
            primary = intake.submit(
                s,
                actor=first,
                data=SubmitRequest(
                    customer_id="storm-000",
                    kind="false_positive",
                    severity=1,
                    channel="portal",
                    title="Payroll flagged",
                ),
                config=config,
            )
            intake.add_sample(
                s,
                actor=first,
                request_id=primary.id,
                config=config,
                samples_dir=data_dir / "samples",
                stream=io.BytesIO(sample),
                filename="payroll.exe",
                declared_sha256=None,
            )
            intake.triage(s, actor=triager, request_id=primary.id, decision=Accept(decision="accept"), config=config)
            primary_id = primary.id
        port = free_port()
        env = os.environ | {"RR_DATABASE_URL": url, "RR_DATA_DIR": str(data_dir), "RR_CONFIG_DIR": str(REPO / "config")}
        api = subprocess.Popen([sys.executable, __file__, "--serve-api", str(port)], env=env)
        wait_for(port, "/healthz")

        storm = args.requests - 1
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        counter = iter(range(storm))

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for n in counter:
                customer, token = tokens[n % len(tokens)]
                body = {
                    "kind": "false_positive",
                    "severity": 1 + n % 2,
                    "channel": "portal",
                    "title": f"Payroll app quarantined on host {n}",
                    "detection_name": "Trojan.Win32.Dropper",
                    "sample_sha256": [sha],
                }
                status, data, seconds = post(conn, "/api/v1/requests", body, token)
                with lock:
                    latencies.append(seconds)
                    if status != 201:
                        failures.append(f"{status}: {data}")

        threads = [threading.Thread(target=client) for _ in range(args.threads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

        with db.transaction(sessions) as s:
            reports = s.scalars(select(ReleaseRequest).where(ReleaseRequest.id != primary_id)).all()
            builds = s.scalar(select(func.count()).select_from(Build))
            advisory = s.get(ReleaseRequest, primary_id).advisory_id
            joined = sum(1 for r in reports if r.duplicate_of_id == primary_id and r.advisory_id == advisory)
            acknowledged = s.scalar(
                select(func.count(func.distinct(Notification.request_id))).where(
                    Notification.event == "request.received", Notification.request_id != primary_id
                )
            )
            told = s.scalar(
                select(func.count(func.distinct(Notification.request_id))).where(
                    Notification.event == "request.triaged", Notification.request_id != primary_id
                )
            )
            slas = status_of_many(s, requests=reports, config=config, now=db_now(s))
            met = sum(1 for sla in slas.values() if sla is not None and sla.state == "met")
        latencies.sort()
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "reports": storm,
            "customers": args.customers,
            "client_threads": args.threads,
            "storm_seconds": round(elapsed, 2),
            "submissions_per_second": round(storm / elapsed, 1),
            "latency_ms": {
                "p50": round(statistics.median(latencies) * 1000, 1),
                "p95": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
                "max": round(latencies[-1] * 1000, 1),
            },
            "failed_submissions": len(failures),
            "builds": builds,
            "reports_stored": len(reports),
            "joined_under_one_advisory": joined,
            "acknowledged": acknowledged,
            "told_of_the_shared_fix": told,
            "sla_met": met,
        }
        print(json.dumps(result, indent=2))
        if failures:
            print("first failures:", failures[:3], file=sys.stderr)
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        server.cleanup()


if __name__ == "__main__":
    main()
