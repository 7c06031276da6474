"""What a flow worker sets up on the Prefect server: the zombie automation, the work pool, the segment
deployments on it — and the scheduled deployments of earlier versions gone."""

from __future__ import annotations

from datetime import timedelta

import httpx
from prefect.automations import Automation

from release_requests import runtime
from release_requests.config import get_config
from release_requests.installation import installation_name
from release_requests.settings import get_settings

CACHES = (get_settings, runtime.session_factory, get_config)


def test_zombie_automation_is_created_once_and_spares_paused_and_suspended_runs(prefect_client_env):
    from flows.worker import ZOMBIE_AUTOMATION, ensure_zombie_automation

    ensure_zombie_automation()
    ensure_zombie_automation()  # idempotent: restarts of workers do not pile automations up
    named = httpx.post(f"{prefect_client_env}/automations/filter", json={}).json()
    assert [a["name"] for a in named].count(ZOMBIE_AUTOMATION) == 1
    automation = Automation.read(name=ZOMBIE_AUTOMATION)
    assert {"prefect.flow-run.Suspended", "prefect.flow-run.Paused"} <= set(automation.trigger.expect)
    assert "prefect.flow-run.Running" in automation.trigger.after  # a run killed before its first heartbeat
    assert automation.actions[0].state.value == "CRASHED"


def test_registering_puts_the_segments_on_the_installations_pool_and_removes_the_old_schedules(
    committed_db, prefect_client_env, monkeypatch
):
    from flows.sla_watch import sla_watch
    from flows.worker import register

    installation = installation_name(committed_db)
    # an earlier version's runner served this on a schedule; nothing would serve it any more
    sla_watch.to_deployment(name=f"every-minute@{installation}", interval=60).apply()
    monkeypatch.setenv("RR_DATABASE_URL", committed_db)
    for cache in CACHES:
        cache.cache_clear()
    try:
        pool = register(committed_db)
        assert register(committed_db) == pool == f"release-requests@{installation}"  # idempotent
    finally:
        for cache in CACHES:
            cache.cache_clear()

    assert httpx.get(f"{prefect_client_env}/work_pools/{pool}").json()["type"] == "process"
    deployments = httpx.post(
        f"{prefect_client_env}/deployments/filter", json={"deployments": {"name": {"like_": installation}}}
    ).json()
    assert {(d["name"], d["entrypoint"], d["work_pool_name"], tuple(d["pull_steps"] or ())) for d in deployments} == {
        (f"segment@{installation}", "flows.pipeline.build_and_verify", pool, ()),
        (f"segment@{installation}", "flows.pipeline.publish_stage", pool, ()),
    }  # module entrypoints, nothing to pull: every host runs its installed package
    assert all(not d["schedules"] for d in deployments)


def test_the_prefect_server_serve_starts_checks_its_background_queue_every_five_seconds(monkeypatch):
    from docket import Docket, Worker

    from flows.prefect_server import CHECK_EVERY, check_less_often

    monkeypatch.setattr(Worker, "__init__", Worker.__init__)  # the class is this process's too: restored after
    assert check_less_often()
    worker = Worker(Docket(name="test", url="memory://"))
    assert worker.minimum_check_interval == worker.scheduling_resolution == CHECK_EVERY
    explicit = Worker(Docket(name="test", url="memory://"), minimum_check_interval=timedelta(seconds=1))
    assert explicit.minimum_check_interval == timedelta(seconds=1)  # what Prefect sets itself still wins
