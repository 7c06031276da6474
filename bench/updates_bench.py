"""Benchmark the update endpoints: the API, and the static update tree served by nginx (what the fleet uses).

    .venv/bin/python bench/updates_bench.py [--seconds 5] [--threads 8] [--client-processes 2] [--file-mib 100]

Sets up an embedded Postgres, a signed base bundle whose `rules.yarc` is `--file-mib` MiB of random bytes,
registers it and publishes it to `global` and to one customer's channel; publishing writes the static update
tree (`RR_UPDATE_TREE_DIR`) as in production. Then, each in its own process: the API under uvicorn (one
worker, as `relreq serve` runs it), Debian's nginx serving the tree with the server block
`relreq release nginx-config` prints (one worker per core), and `python -m http.server` serving the same
tree (the floor of earlier runs, kept for comparison):
  1. manifest requests per second over keep-alive connections: API (public channel; customer channel with
     a bearer token), nginx, http.server — with the server's CPU time per request (from /proc);
  2. artifact throughput: one stream, and four concurrent streams, of the large file, from each server — with
     the server's CPU seconds per GiB sent.
The same client measures every server: `--threads` connections in all, over `--client-processes` processes (a
single Python process would be the bottleneck in front of nginx). Client and servers share the machine's
cores, so in front of nginx the client is the limit: the CPU columns say what each answer costs the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
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

from devservers import LocalNginx, free_port  # noqa: E402
from devservers.nginx import NGINX  # noqa: E402


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


def nginx_version() -> str:
    version = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    return version.removeprefix("nginx version: ")


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


def _load_process(
    port: int, path: str, seconds: float, threads: int, headers: dict[str, str]
) -> tuple[list[float], float]:
    """One client process: `threads` keep-alive connections requesting `path` until the time is up; the
    latencies and the seconds it ran."""
    latencies: list[float] = []
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds

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

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies, time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a server has used so far: the process and its child processes (nginx's workers)."""

    def own(p: int | str) -> float:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()  # after "(comm)"
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own(pid) + sum(own(c) for c in children)


def load(
    port: int, pid: int, path: str, *, seconds: float, threads: int, processes: int, headers: dict[str, str]
) -> dict:
    """Requests per second, latency percentiles and the server's CPU time per request: `threads` connections
    spread over `processes` client processes."""
    per_process = [threads // processes + (i < threads % processes) for i in range(processes)]
    cpu = cpu_seconds(pid)
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.starmap(_load_process, [(port, path, seconds, n, headers) for n in per_process])
    cpu = cpu_seconds(pid) - cpu
    latencies = sorted(x for part, _ in parts for x in part)
    return {
        "rps": sum(len(part) / elapsed for part, elapsed in parts),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "cpu_us_per_request": cpu * 1e6 / len(latencies),
    }


def download(port: int, pid: int, path: str, *, streams: int, size: int) -> tuple[float, float]:
    """MiB/s of `streams` concurrent full downloads of one file (best of 3), and the server's CPU seconds per
    GiB served (over all 3)."""

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

    best, cpu = float("inf"), cpu_seconds(pid)
    for _ in range(3):
        started = time.perf_counter()
        pool = [threading.Thread(target=one) for _ in range(streams)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        best = min(best, time.perf_counter() - started)
    cpu = cpu_seconds(pid) - cpu
    return streams * size / (1 << 20) / best, cpu / (3 * streams * size / (1 << 30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8, help="client connections in all")
    parser.add_argument("--client-processes", type=int, default=os.cpu_count() or 1)
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
    from release_requests.releases.static_tree import nginx_server_block
    from release_requests.settings import get_settings

    tmp = Path(tempfile.mkdtemp(prefix="rr-updates-bench-", dir="/tmp"))
    tree = Path(tempfile.mkdtemp(prefix="rr-updates-bench-tree-", dir="/tmp"))
    tree.chmod(0o755)  # nginx's workers run as nobody
    server = embedded_pg.start_server(tmp / "pg")
    children: list[subprocess.Popen] = []
    nginx = None
    try:
        db.ensure_database(embedded_pg.server_url(server, "postgres"), "bench")
        url = embedded_pg.server_url(server, "bench")
        db.upgrade(url)
        data_dir = tmp / "data"
        # publishing writes the static tree of this process's settings, as `relreq serve` does
        os.environ.update(RR_DATA_DIR=str(data_dir), RR_UPDATE_TREE_DIR=str(tree))
        get_settings.cache_clear()
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
        if (tree / "updates/global/manifest.json").read_bytes() != body:
            raise RuntimeError(f"the tree in {tree} does not hold what the API serves")
        if (tree / "updates" / f"customer-{customer}").exists():
            raise RuntimeError("a customer's channel is in the static tree")
        nginx_port = free_port()
        nginx = LocalNginx(
            server=nginx_server_block(root=tree, listen=f"127.0.0.1:{nginx_port}"),
            port=nginx_port,
            workers=os.cpu_count() or 1,
        ).start()
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
                    str(tree),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for(static_port, "/updates/global/manifest.json")
        wait_for(api_port, big["url"])  # first download verifies the object's hash once

        print(
            f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {nginx_version()}; {args.threads} client connections in "
            f"{args.client_processes} processes x {args.seconds:g} s; artifact {big['size'] / (1 << 20):.0f} MiB; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        api, static = children[0].pid, children[1].pid
        measure = lambda port, pid, path, headers: load(  # noqa: E731
            port,
            pid,
            path,
            seconds=args.seconds,
            threads=args.threads,
            processes=args.client_processes,
            headers=headers,
        )
        manifest = "/updates/global/manifest.json"
        customer_manifest = f"/updates/customer-{customer}/manifest.json"
        rows = [
            ("GET /healthz (API floor: one DB round trip)", measure(api_port, api, "/healthz", {})),
            ("manifest, public channel (API)", measure(api_port, api, manifest, {"X-Client-Id": "bench-1"})),
            (
                "manifest, customer channel + token (API)",
                measure(api_port, api, customer_manifest, {"Authorization": f"Bearer {token}"}),
            ),
            ("manifest, static tree (nginx)", measure(nginx_port, nginx.pid, manifest, {"X-Client-Id": "bench-1"})),
            ("manifest, static tree (http.server)", measure(static_port, static, manifest, {})),
        ]
        print(
            f"| {'manifest requests':<44} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'server CPU µs/req':>17} |"
        )
        for name, r in rows:
            print(
                f"| {name:<44} | {r['rps']:>7.0f} | {r['p50_ms']:>7.1f} | {r['p99_ms']:>7.1f} "
                f"| {r['cpu_us_per_request']:>17.0f} |"
            )
        print(
            f"| {'artifact download':<44} | {'1 stream MiB/s':>14} | {'4 streams MiB/s':>15} "
            f"| {'server CPU s/GiB':>16} |"
        )
        path = f"/updates/global/artifacts/{big['sha256']}"
        servers = (
            ("API (FileResponse, hash-checked once)", api_port, api),
            ("static tree (nginx, sendfile)", nginx_port, nginx.pid),
            ("static tree (http.server)", static_port, static),
        )
        for name, port, pid in servers:
            one, cpu_one = download(port, pid, path, streams=1, size=big["size"])
            four, cpu_four = download(port, pid, path, streams=4, size=big["size"])
            print(f"| {name:<44} | {one:>14.0f} | {four:>15.0f} | {(cpu_one + cpu_four) / 2:>16.2f} |")
    finally:
        for child in children:
            child.terminate()
            child.wait(10)
        if nginx is not None:
            nginx.cleanup()
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    main()
