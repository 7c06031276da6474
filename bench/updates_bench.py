"""Benchmark the update endpoints beside a static file server serving the same bytes (the floor).

    .venv/bin/python bench/updates_bench.py [--seconds 5] [--threads 8] [--file-mib 100]

Sets up an embedded Postgres, a signed base bundle whose `rules.yarc` is `--file-mib` MiB of random bytes,
registers it and publishes it to `global` and to one customer's channel. Then, with the API served by
uvicorn in its own process (one worker, as `relreq serve` runs it) and `python -m http.server` in another
serving a directory with the same URL paths and bytes (the manifest response saved as a file, the artifact
hard-linked from the store):
  1. manifest requests per second (keep-alive connections, `--threads` client threads): public channel,
     customer channel with a bearer token, static file;
  2. artifact throughput: one stream, and four concurrent streams, of the large file.
Client and servers share the machine's cores; the same client code measures both servers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devservers import free_port  # noqa: E402


def wait_for(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer {path}")


def serve_api(port: int) -> None:
    """Child process: the real app under uvicorn, settings from RR_* like `relreq serve`."""
    import uvicorn

    from release_requests import db
    from release_requests.api.app import create_app
    from release_requests.config import load_config
    from release_requests.settings import Settings

    settings = Settings()
    sessions = db.make_sessionmaker(db.make_engine(settings.database_url))
    app = create_app(settings=settings, config=load_config(settings.config_dir), sessions=sessions)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def make_bundle(out: Path, *, signer, store, mib: int):
    """A signed base bundle (real manifest, real signature) with one large random rules file."""
    from artifacts.allowlist import HEADER
    from artifacts.base import ALLOWLIST_FILE, RULES_FILE
    from artifacts.bundle import BaseManifest, manifest_fields, seal, staged_bundle
    from artifacts.yarax import YARA_X_VERSION

    version = "2026.01.01.1"
    with staged_bundle(out / version) as staging:
        with (staging / RULES_FILE).open("wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        (staging / ALLOWLIST_FILE).write_text(HEADER)
        manifest = BaseManifest(
            version=version,
            commit="0" * 40,
            parent_version=None,
            rule_count=0,
            namespaces={},
            allowlist_entries=0,
            yara_x_version=YARA_X_VERSION,
            builder="bench",
            built_at="2026-01-01T00:00:00Z",
            **manifest_fields(staging, signer=signer),
        )
        seal(staging, manifest, signer=signer, store=store)
    return out / version


def load(port: int, path: str, *, seconds: float, threads: int, headers: dict[str, str]) -> dict:
    """Requests per second and latency percentiles over keep-alive connections (reopened when closed)."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        mine = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or not body:
                raise RuntimeError(f"GET {path}: HTTP {response.status}")
            mine.append(time.perf_counter() - start)
        conn.close()
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def download(port: int, path: str, *, streams: int, size: int) -> float:
    """MiB/s of `streams` concurrent full downloads of one file (best of 3)."""

    def one() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", path)
        response = conn.getresponse()
        got = 0
        while chunk := response.read(1 << 20):
            got += len(chunk)
        conn.close()
        if got != size:
            raise RuntimeError(f"GET {path}: {got} bytes, expected {size}")

    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        pool = [threading.Thread(target=one) for _ in range(streams)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        best = min(best, time.perf_counter() - started)
    return streams * size / (1 << 20) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--file-mib", type=int, default=100)
    parser.add_argument("--serve-api", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        serve_api(args.serve_api)
        return

    from artifacts.signing import FileKeySigner
    from artifacts.store import LocalStore
    from release_requests import db, embedded_pg
    from release_requests.audit.service import Actor
    from release_requests.config import load_config
    from release_requests.customers.schemas import CustomerCreate
    from release_requests.customers.service import create_customer
    from release_requests.people.service import PersonCreate, create_person, issue_token
    from release_requests.releases import publishing, registry

    tmp = Path(tempfile.mkdtemp(prefix="rr-updates-bench-", dir="/tmp"))
    server = embedded_pg.start_server(tmp / "pg")
    children: list[subprocess.Popen] = []
    try:
        db.ensure_database(embedded_pg.server_url(server, "postgres"), "bench")
        url = embedded_pg.server_url(server, "bench")
        db.upgrade(url)
        data_dir = tmp / "data"
        config = load_config(REPO / "config")
        signer, _ = FileKeySigner.create(data_dir)
        store = LocalStore(data_dir / "artifacts")
        bundle = make_bundle(tmp / "bundles", signer=signer, store=store, mib=args.file_mib)
        actor = Actor.system("bench")
        sessions = db.make_sessionmaker(db.make_engine(url))
        with db.transaction(sessions) as s:
            customer = create_customer(
                s,
                actor=actor,
                data=CustomerCreate(
                    id="bench-customer",
                    name="Bench Customer",
                    tier="enterprise",
                    timezone="UTC",
                    country="DE",
                    email_contacts=["it@bench.example"],
                ),
            ).id
            person = create_person(
                s, actor=actor, data=PersonCreate(name="Bench IT", role="customer", customer_id=customer)
            )
            token = issue_token(s, actor=actor, person=person)
            release = registry.register_release(
                s, actor=actor, bundle_dir=bundle, store=store, request_id=None, public_key=signer.public_key()
            )
            for channel in ("global", f"customer-{customer}"):
                publishing.publish(
                    s,
                    actor=actor,
                    channel=channel,
                    version=release.version,
                    expected_current=None,
                    request_id=None,
                    config=config,
                    repo_path=data_dir / "sigrepo",
                )
        api_port, static_port = free_port(), free_port()
        env = os.environ | {"RR_DATABASE_URL": url, "RR_DATA_DIR": str(data_dir), "RR_CONFIG_DIR": str(REPO / "config")}
        children.append(subprocess.Popen([sys.executable, __file__, "--serve-api", str(api_port)], env=env))
        wait_for(api_port, "/healthz")

        conn = http.client.HTTPConnection("127.0.0.1", api_port)
        conn.request("GET", "/updates/global/manifest.json")
        body = conn.getresponse().read()
        big = max(json.loads(body)["files"], key=lambda f: f["size"])
        static = tmp / "static"
        (static / "updates/global/artifacts").mkdir(parents=True)
        (static / "updates/global/manifest.json").write_bytes(body)
        with store.open(big["sha256"]) as f:
            os.link(f.name, static / "updates/global/artifacts" / big["sha256"])
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    str(static_port),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    str(static),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for(static_port, "/updates/global/manifest.json")
        wait_for(api_port, big["url"])  # first download verifies the object's hash once

        print(
            f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"{args.threads} client threads x {args.seconds:g} s; artifact {big['size'] / (1 << 20):.0f} MiB"
        )
        measure = lambda port, path, headers: load(  # noqa: E731
            port, path, seconds=args.seconds, threads=args.threads, headers=headers
        )
        rows = [
            ("GET /healthz (API floor: one DB round trip)", measure(api_port, "/healthz", {})),
            (
                "manifest, public channel (API)",
                measure(api_port, "/updates/global/manifest.json", {"X-Client-Id": "bench-1"}),
            ),
            (
                "manifest, customer channel + token (API)",
                measure(api_port, f"/updates/customer-{customer}/manifest.json", {"Authorization": f"Bearer {token}"}),
            ),
            ("manifest, static file (http.server)", measure(static_port, "/updates/global/manifest.json", {})),
        ]
        print(f"| {'manifest requests':<44} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} |")
        for name, r in rows:
            print(f"| {name:<44} | {r['rps']:>7.0f} | {r['p50_ms']:>7.1f} | {r['p99_ms']:>7.1f} |")
        print(f"| {'artifact download':<44} | {'1 stream MiB/s':>14} | {'4 streams MiB/s':>15} |")
        path = f"/updates/global/artifacts/{big['sha256']}"
        for name, port in (("API (FileResponse, hash-checked once)", api_port), ("static (http.server)", static_port)):
            one = download(port, path, streams=1, size=big["size"])
            four = download(port, path, streams=4, size=big["size"])
            print(f"| {name:<44} | {one:>14.0f} | {four:>15.0f} |")
    finally:
        for child in children:
            child.terminate()
            child.wait(10)
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
