"""`relreq serve` as a newcomer starts it (`make serve`): everything comes up, answers, and goes away on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from devservers import free_port
from tests.platform.test_first_run import RELREQ, _env


def _wait_for(url: str, serve: subprocess.Popen, log: Path, *, timeout: float = 180) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert serve.poll() is None, f"relreq serve exited with {serve.returncode}:\n{log.read_text()[-3000:]}"
        try:
            answer = httpx.get(url, timeout=2)
            if answer.status_code == 200:
                return answer
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


def _descendants(root: int) -> dict[int, str]:
    """Every process `root` started, however deep and whatever session it made: {pid: command line}."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo += children.get(pid, [])
    return found


def _alive(pids) -> list[int]:
    """Those of `pids` still running (a zombie waiting for its reaper has ended)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def test_serve_starts_the_api_the_prefect_server_and_a_flow_worker_and_stops_them_all():
    # not under pytest's tmp dirs: those are 0700 for root, and the embedded server runs as its own system user
    root = Path(tempfile.mkdtemp(prefix="rr-test-serve-"))
    port, prefect_port = free_port(), free_port()
    log = root / "serve.log"
    env = _env(RR_DATA_DIR=str(root / "data"), RR_PREFECT_PORT=str(prefect_port))
    serve = subprocess.Popen(
        [RELREQ, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/healthz", serve, log).json()
        assert health["status"] == "ok"
        # the API answers from its processes, and checks the caller there
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/requests", timeout=10).status_code == 401
        _wait_for(f"http://127.0.0.1:{prefect_port}/api/health", serve, log)
        # the flow worker registered the installation's work pool on the Prefect server serve started
        pool = _wait_for(
            f"http://127.0.0.1:{prefect_port}/api/work_pools/release-requests@release_requests", serve, log
        )
        assert pool.json()["type"] == "process"
        # the worker logs as every process of ours does: to its file, as JSON there (RR_LOG_FORMAT=auto)
        worker_log = root / "data" / "logs" / "flows.log"
        deadline = time.monotonic() + 30
        while not (started := [line for line in worker_log.read_text().splitlines() if "polling work pool" in line]):
            assert time.monotonic() < deadline, worker_log.read_text()[-3000:]
            time.sleep(0.2)
        assert json.loads(started[0])["logger"] == "flows.worker"

        # two API processes, the Prefect server and the flow worker: forked, so they share serve's command line
        # (the embedded Postgres is not among them: pg_ctl detaches it; its postmaster.pid is checked below)
        started = _descendants(serve.pid)
        assert len(started) >= 4, started

        serve.send_signal(signal.SIGTERM)  # as systemd or Ctrl-C would: serve stops what it started
        assert serve.wait(90) == 0, log.read_text()[-3000:]
        deadline = time.monotonic() + 10
        while (left := _alive(started)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, {pid: started[pid] for pid in left}
        assert not (root / "data" / "postgres" / "postmaster.pid").exists(), "the embedded Postgres still runs"
        for stopped in (port, prefect_port):
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{stopped}/", timeout=2)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def test_a_child_of_a_killed_serve_ends_with_it():
    """`serve` SIGKILLed (the OOM killer, kill -9) runs no clean-up: its forked children end anyway, instead of
    running on unsupervised in sessions of their own and holding their ports."""
    program = (
        "import os, sys, time\n"
        "from release_requests.server import Child, Children\n"
        "def main():\n"
        "    os.setsid()\n"  # as the Prefect server and the flow worker do: out of reach of serve's group
        "    time.sleep(600)\n"
        "print(Children().start(Child('sleeper', main)), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive([child]) == [child]
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive([child]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive([child]), "the forked child outlived its killed parent"
    finally:
        parent.kill()
        parent.wait(10)
