"""`relreq worker` processes for tests: started for real (subprocesses), stopped or killed like a host dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from tests.conftest import REPO

RELREQ = str(Path(sys.executable).parent / "relreq")


def wait_for(condition, *, timeout: float, what: str) -> float:
    """Wait until `condition()` is true; returns how long that took (fails the test after `timeout`)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, whatever session or process group they are in."""
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children[int(stat[stat.rindex(")") + 2 :].split()[1])].append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def kill(self, pids: list[int] | None = None) -> None:
        """SIGKILL the worker and everything it started (its segment runs' processes have sessions of their
        own): the host is gone, nobody reports anything."""
        for pid in pids or descendants(self.process.pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """Stop it as systemd or `relreq serve` would (SIGTERM), then make sure nothing of it is left."""
        pids = descendants(self.process.pid)  # before: once it exits, its orphans are nobody's children
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(20)
        self.kill(pids)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(env: dict[str, str], log: Path, *, limit: int = 1) -> Worker:
    """`relreq worker` with `env` (the installation's RR_* and PREFECT_API_URL); output into `log`."""
    process = subprocess.Popen(
        [RELREQ, "worker", "--limit", str(limit)],
        env={"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_HOME": str(log.parent / "prefect-home"), **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=REPO,
    )
    return Worker(process, log)


@contextmanager
def zombie_window(seconds: float):
    """The zombie-run automation with a shorter window than production's 90 s, for this block; removed
    afterwards, so the next worker creates the default one. Needs the test's Prefect client settings
    (`prefect_client_env`).

    Heartbeats stay at 30 s (the least Prefect accepts) and a run heartbeats as it starts, so a window under
    30 s would crash a healthy run that outlives it: keep it well above the longest run the block starts."""
    # deferred: importing Prefect costs a second, only the tests that start workers need it
    from prefect.automations import Automation

    from flows.worker import ZOMBIE_AUTOMATION, ensure_zombie_automation

    def remove() -> None:
        with suppress(ValueError):
            Automation.read(name=ZOMBIE_AUTOMATION).delete()

    remove()
    ensure_zombie_automation(after=timedelta(seconds=seconds))
    try:
        yield
    finally:
        remove()
