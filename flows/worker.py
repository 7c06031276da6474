"""`relreq worker` (`python -m flows.worker`): runs this installation's flows on this host.

Any number of workers, on this host or others, share the work of one installation (the same `RR_DATABASE_URL`
and `PREFECT_API_URL`, the same package installed). Each worker:

- **registers** the installation's work pool `release-requests@<installation>` (Prefect's `process` type),
  the segment deployments on it and the zombie-run automation — idempotent, one worker at a time (an advisory
  lock) — and removes the scheduled deployments of earlier versions, which nothing serves any more;
- **polls that pool** (a Prefect process worker in this process): each segment run gets a process of its
  own. The deployments' entrypoints are module paths (`flows.pipeline.build_and_verify`) and nothing is
  pulled: every host runs the code of the package it has installed. Which worker takes a run is Prefect's
  business; that a run happens at most once per dispatch is the dispatcher's idempotency key; that a
  segment re-run after a crash repeats no effect is the segments' own claims in Postgres (pipeline/segments);
- **listens** in threads: the segment dispatcher (decisions → deployment runs), the notification deliverer
  (outbox → Slack and e-mail within a fraction of a second) and, with RR_IMAP_URL, the mailbox (IMAP IDLE).
  Several workers listening at once is safe: each takes rows with `FOR UPDATE SKIP LOCKED`;
- **sweeps**, in a thread, the frequent scheduled work (`SWEEPS`: SLA watch, outbox, reconcile, mailbox,
  reports) by calling the scheduled flows' functions — no process start, no Prefect scheduler, and no
  flow run either: a sweep as a flow run costs about 130 ms of CPU between this process and the Prefect
  server, the same sweep as a call about 2 ms (measured idle; their log lines go to this process's log).
  Only the worker holding the installation's sweep lock (a session-level advisory lock on a connection of
  its own) sweeps; the others try to take it once a minute, so a dead worker's turn passes to another
  within a minute. Every sweep is idempotent, so the rare moment two workers both believe they hold the
  lock costs work, not correctness.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from prefect import Flow
from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.types.entrypoint import EntrypointType
from prefect.workers.process import ProcessWorker

from flows.mail import listen_for_mail, mail_intake
from flows.notifications import deliver_outbox, listen_and_deliver
from flows.pipeline import build_and_verify, listen_and_dispatch, publish_stage, reconcile
from flows.reports import reports_due
from flows.sla_watch import sla_watch
from release_requests.installation import deployment_name, installation_name
from release_requests.listening import KEEPALIVES, libpq_url
from release_requests.logs import configure_logging
from release_requests.runtime import migrated_url
from release_requests.settings import get_settings

log = logging.getLogger("flows.worker")
ZOMBIE_AUTOMATION = "release-requests: crash zombie flow runs"
ZOMBIE_AFTER = timedelta(seconds=90)  # three missed heartbeats at 30 s (PREFECT_FLOWS_HEARTBEAT_FREQUENCY)
LISTEN_POLL_SECONDS = 60.0  # the listeners wake on NOTIFY; the poll is only their fallback, beside the sweeps
LOCK_CLASS = 0x5252574B  # "RRWK": the first key of this module's advisory locks (two-key form)
SWEEP_LOCK, REGISTER_LOCK = 1, 2
# deployments that earlier versions served with `prefect.serve` on a schedule; the sweeps replace them
LEGACY_DEPLOYMENTS = (
    "sla_watch/every-minute",
    "deliver-outbox/every-minute",
    "reconcile/every-minute",
    "mail_intake/every-minute",
    "reports_due/every-5-minutes",
)


def work_pool(installation: str) -> str:
    """The installation's work pool: every worker of the installation polls it, whatever its host."""
    return deployment_name("release-requests", installation)


def deployments(installation: str) -> list:
    """The segment deployments, named `<flow>/segment@<installation>`, on the installation's work pool.

    Module-path entrypoints: a worker's run process imports the flow from the installed package, so no code
    is pulled and no working directory has to exist on every host.
    """
    segment, pool = deployment_name("segment", installation), work_pool(installation)
    return [
        flow.to_deployment(
            name=segment, work_pool_name=pool, entrypoint_type=EntrypointType.MODULE_PATH, description=description
        )
        for flow, description in (
            (build_and_verify, "Build and verify a request's fix."),
            (publish_stage, "Publish a signed-off release stage."),
        )
    ]


def ensure_work_pool(name: str) -> None:
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):  # made by another worker
        client.create_work_pool(
            WorkPoolCreate(name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template())
        )


def remove_legacy_deployments(installation: str) -> list[str]:
    """Delete the scheduled deployments earlier versions served: left alone, Prefect's scheduler would keep
    creating runs of them that no worker takes."""
    removed = []
    with get_client(sync_client=True) as client:
        for base in LEGACY_DEPLOYMENTS:
            name = deployment_name(base, installation)
            try:
                client.delete_deployment(client.read_deployment_by_name(name).id)
            except ObjectNotFound:
                continue
            removed.append(name)
    return removed


def ensure_zombie_automation(*, after: timedelta = ZOMBIE_AFTER) -> None:
    """Mark runs Crashed when their heartbeats stop (a SIGKILLed worker, a host gone), so `reconcile`
    re-dispatches them. Created once per Prefect server; an existing one is left as it is.

    The clock starts at a run's start too, not only at its first heartbeat, so a run killed at once is caught.
    Paused and suspended runs stop heartbeating on purpose; they are in `expect`, so they are left alone.
    """
    try:
        Automation.read(name=ZOMBIE_AUTOMATION)
        return
    except ValueError:
        pass
    Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Running"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                "prefect.flow-run.Paused",
                "prefect.flow-run.Suspended",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=after,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED, message=f"no heartbeat for {after.total_seconds():.0f} s: marked Crashed"
            )
        ],
    ).create()


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5, **KEEPALIVES)


@contextmanager
def _advisory_lock(url: str, key: int) -> Iterator[None]:
    """Hold the installation-wide lock `key` (waiting for it) for the duration of the block."""
    with _connect(url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, key))
        yield  # the lock goes with the connection


def register(url: str) -> str:
    """Make the installation's pool, deployments and automation exist; returns the pool's name."""
    installation = installation_name(url)
    pool = work_pool(installation)
    with _advisory_lock(url, REGISTER_LOCK):  # two workers starting at once would create two automations
        ensure_work_pool(pool)
        for deployment in deployments(installation):
            deployment.apply()
        for name in remove_legacy_deployments(installation):
            log.warning("removed the deployment %s of an earlier version: the workers' sweeps replace it", name)
        ensure_zombie_automation()
    return pool


# --------------------------------------------------------------------------------------------------
# The sweeps


@dataclass(frozen=True)
class Sweep:
    flow: Flow  # run as a plain call of its function: see the module's docstring
    every: float  # seconds
    wanted: Callable[[], bool] = lambda: True


SWEEPS = (
    Sweep(sla_watch, 60),  # SLA crossings and page escalations: a minute is the finest any threshold needs
    Sweep(deliver_outbox, 60),  # the listener delivers within a second; this catches what it missed
    Sweep(reconcile, 60),  # lost segment runs, elapsed soaks, canary steps and halts
    Sweep(mail_intake, 60, lambda: bool(get_settings().imap_url)),  # IDLE's safety net; nothing to read without
    Sweep(reports_due, 300),  # digests at "09:00 local time" need no finer grain
)


class SweepLock:
    """The installation's sweep lock, held on a connection of its own for as long as this worker sweeps."""

    def __init__(self, url: str) -> None:
        self.url, self.conn, self.held = url, None, False

    def take(self) -> bool:
        """True while this worker holds the lock: checks the connection that holds it, or tries to take it."""
        try:
            if self.conn is None or self.conn.closed:
                self.conn, self.held = _connect(self.url), False
            if self.held:
                self.conn.execute("SELECT 1")  # a lost connection is a lost lock
            else:
                self.held = self.conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, SWEEP_LOCK)
                ).fetchone()[0]
        except psycopg.Error as exc:
            if self.held:
                log.warning("sweeps: lost the sweep lock (%s); trying to take it again", exc)
            self.release()
        return self.held

    def release(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn, self.held = None, False


def run_sweeps(
    stop: threading.Event, *, url: str, sweeps: tuple[Sweep, ...] = SWEEPS, retry_seconds: float = 60
) -> None:
    """Until `stop` is set: while holding the sweep lock, run each sweep when due (all of them at once on taking
    the lock: a new holder catches up on what the last one may have missed); otherwise try for the lock
    every `retry_seconds`."""
    lock = SweepLock(url)
    due: dict[int, float] = {}
    try:
        while not stop.is_set():
            if not lock.take():
                due.clear()
                stop.wait(retry_seconds)
                continue
            for index, sweep in enumerate(sweeps):
                if stop.is_set() or due.get(index, 0) > time.monotonic():
                    continue
                due[index] = time.monotonic() + sweep.every
                if sweep.wanted():
                    _sweep(sweep)
            stop.wait(max(0.0, min(due.values()) - time.monotonic()))
    finally:
        lock.release()


def _sweep(sweep: Sweep) -> None:
    try:
        sweep.flow.fn()
    except Exception:
        log.exception("sweep %s failed; it runs again at its next turn", sweep.flow.name)


# --------------------------------------------------------------------------------------------------
# The process


async def _poll(pool: str, *, limit: int) -> None:
    """Poll until SIGTERM or SIGINT; then Prefect's worker stops the segment runs it started: the zombie
    automation marks them Crashed once their heartbeats stop, and `reconcile` dispatches them again."""
    worker = ProcessWorker(work_pool_name=pool, name=f"{socket.gethostname()}-{os.getpid()}", limit=limit)
    task, loop = asyncio.current_task(), asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with suppress(asyncio.CancelledError):
        await worker.start(printer=log.info)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.worker")
    parser.add_argument("--limit", type=int, default=4, help="segment runs at once on this worker")
    args = parser.parse_args(argv)
    configure_logging()  # RR_LOG_FORMAT and RR_LOG_LEVEL, secrets redacted: as every other process of ours logs
    url = migrated_url()
    pool = register(url)
    stop = threading.Event()
    work: list[tuple[Callable, dict]] = [
        (listen_and_dispatch, {"poll_seconds": LISTEN_POLL_SECONDS}),
        (listen_and_deliver, {"poll_seconds": LISTEN_POLL_SECONDS}),
        (run_sweeps, {"url": url}),
    ]
    if get_settings().imap_url:
        work.append((listen_for_mail, {}))
    threads = [
        threading.Thread(target=target, args=(stop,), kwargs=kwargs, name=target.__name__, daemon=True)
        for target, kwargs in work
    ]
    for thread in threads:
        thread.start()
    log.info(
        "worker for %s: polling work pool %s (at most %d segment runs at once)",
        installation_name(url),
        pool,
        args.limit,
    )
    try:
        asyncio.run(_poll(pool, limit=args.limit))
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)


if __name__ == "__main__":
    main()
