"""Segment runs on a pool of real `relreq worker` processes against the session's real Prefect server: they
are shared between the workers, none runs twice, and a worker killed mid-build (the host gone: worker and
run process SIGKILLed, nobody reports anything) loses nothing — the zombie automation marks the run Crashed,
`reconcile` (a sweep of the surviving worker) dispatches it again, and the other worker completes the build
without repeating any of its effects."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import git
import httpx
from sqlalchemy import select, update

from release_requests import db, runtime
from release_requests.config import get_config
from release_requests.installation import installation_name
from release_requests.pipeline import service
from release_requests.pipeline.models import SegmentTrigger
from release_requests.pipeline.service import enqueue
from release_requests.requests.states import Status
from release_requests.settings import get_settings
from tests.conftest import Builder
from tests.flows.workers import start_worker, wait_for, zombie_window
from tests.pipeline.conftest import fp_request, world_pipeline  # noqa: F401 (fixtures)
from tests.pipeline.test_segments import notices_per_recipient, state

CACHES = (get_settings, runtime.session_factory, get_config)
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def segment_runs(api: str, installation: str) -> list[dict]:
    """Every run of the installation's segment deployments, oldest first."""
    runs = httpx.post(
        f"{api}/flow_runs/filter",
        json={"deployments": {"name": {"any_": [f"segment@{installation}"]}}, "sort": "EXPECTED_START_TIME_ASC"},
    ).json()
    return sorted(runs, key=lambda r: r["created"])


def run_state(api: str, run_id: str) -> str:
    return httpx.get(f"{api}/flow_runs/{run_id}").json()["state_type"]


def reconcile_installation(url: str, monkeypatch) -> dict:
    """One `reconcile` of the installation whose database is `url`, in this process (as a worker's sweep)."""
    from flows.pipeline import reconcile  # deferred: Prefect's import is paid only by the tests that run flows

    monkeypatch.setenv("RR_DATABASE_URL", url)
    for cache in CACHES:
        cache.cache_clear()
    try:
        return reconcile()
    finally:
        for cache in CACHES:
            cache.cache_clear()


def worker_name(worker) -> str:
    return f"{socket.gethostname()}-{worker.process.pid}"  # `relreq worker` execs: the same pid


def test_a_worker_killed_mid_build_loses_nothing_and_the_build_runs_once(
    world_pipeline,  # noqa: F811
    fp_request,  # noqa: F811
    prefect_client_env,
    tmp_path,
    monkeypatch,
):
    w, rid = world_pipeline, fp_request["id"]
    installation = installation_name(w.url)
    env = w.env(PREFECT_API_URL=prefect_client_env)

    def build_status() -> str | None:
        with db.transaction(w.seg.sessions) as s:
            build = service.latest_build(s, request_id=rid)
            return build.status if build else None

    # the test waits this window out, so it is shorter than a heartbeat (30 s): safe here because the only run
    # that lives on, worker b's build, takes about a second from start to end (10 s is the least Prefect accepts)
    with zombie_window(20):
        # the crash point is a backstop: however late the kill below, this build cannot finish on worker a
        a = start_worker({**env, "RR_CRASH_AT": "build:built"}, tmp_path / "a.log")
        try:
            wait_for(lambda: build_status() == "building", timeout=90, what="worker a claims the build")
        finally:
            a.kill()
        b = start_worker(env, tmp_path / "b.log")
        try:
            first = w.trigger(rid, "build:")
            assert first.status == "dispatched" and first.dispatches == 1
            wait_for(
                lambda: run_state(prefect_client_env, first.flow_run_id) == "CRASHED",
                timeout=90,
                what="the zombie automation marks the run of the dead worker Crashed",
            )
            # `reconcile` looks at a run once triggers.STALE_DISPATCH has passed; here it has, and rather than
            # wait for worker b's next sweep, the test runs the reconciler itself
            with db.transaction(w.seg.sessions) as s:
                s.execute(
                    update(SegmentTrigger)
                    .where(SegmentTrigger.id == first.id)
                    .values(dispatched_at=datetime.now(UTC) - timedelta(minutes=10))
                )
            assert reconcile_installation(w.url, monkeypatch)["redispatched"] == [first.key]
            wait_for(lambda: w.trigger(rid, "build:").status == "done", timeout=90, what="worker b finishes the build")
        finally:
            b.stop()

    runs = segment_runs(prefect_client_env, installation)
    assert [(r["state_type"], r["labels"].get("prefect.worker.name")) for r in runs] == [
        ("CRASHED", worker_name(a)),
        ("COMPLETED", worker_name(b)),
    ], a.text() + b.text()
    assert runs[0]["id"] == first.flow_run_id and runs[1]["idempotency_key"] == f"{installation}:{first.key}#2"
    status, build, stages = state(w, rid)
    assert status == Status.awaiting_approval and build.passed and stages == {"internal": "awaiting"}
    repo = git.Repo(w.settings.signature_repo)
    fix_commits = [c for c in repo.iter_commits(f"fix/{rid}") if f"Request: {rid}" in c.message]
    base_tags = [t for t in repo.tags if t.commit.hexsha == build.commit]
    assert len(fix_commits) == 1 and len(base_tags) == 1  # the fix and the base were made once
    assert all(n == 1 for n in notices_per_recipient(w, rid).values())  # and nobody was told twice


def test_two_workers_share_the_segment_runs_and_run_none_twice(world_pipeline, prefect_client_env, tmp_path):  # noqa: F811
    w = world_pipeline
    installation = installation_name(w.url)
    env = w.env(PREFECT_API_URL=prefect_client_env)
    # one run at a time each: while one worker starts a run's process (seconds), the other takes the next run
    workers = [start_worker(env, tmp_path / f"{name}.log") for name in ("a", "b")]
    try:
        with db.transaction(w.seg.sessions) as s:
            b = Builder(s, w.config)
            customer, duty = b.customer(), b.person("duty_manager")
            requests = [b.request(by=duty, customer=customer, severity=2).id for _ in range(4)]
        with db.transaction(w.seg.sessions) as s:
            # publishing a stage of a build that does not exist: a real segment run that finds nothing to do
            keys = {enqueue(s, request_id=r, step="publish:internal:0", decision_id="t").key for r in requests}

        def done() -> bool:
            with db.transaction(w.seg.sessions) as s:
                statuses = s.scalars(select(SegmentTrigger.status).where(SegmentTrigger.key.in_(keys))).all()
            return statuses == ["done"] * len(keys)

        wait_for(done, timeout=90, what="the workers run every segment")
        # a run marks its trigger done before it reports its own end to Prefect: stopped now, a worker could take
        # that report with it (the run would stay Running until the zombie automation came)
        wait_for(
            lambda: {r["state_type"] for r in segment_runs(prefect_client_env, installation)} <= FINAL,
            timeout=30,
            what="every segment run reports its end",
        )
    finally:
        for worker in workers:
            worker.stop()

    runs = segment_runs(prefect_client_env, installation)
    logs = "".join(worker.text() for worker in workers)
    assert sorted(r["parameters"]["trigger_key"] for r in runs) == sorted(keys), logs  # one run per segment
    assert {r["state_type"] for r in runs} == {"COMPLETED"}
    assert {r["labels"]["prefect.worker.name"] for r in runs} == {worker_name(x) for x in workers}, logs
    with db.transaction(w.seg.sessions) as s:
        assert s.scalars(select(SegmentTrigger.dispatches).where(SegmentTrigger.key.in_(keys))).all() == [1] * 4
