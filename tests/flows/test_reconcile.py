"""`reconcile` and the dispatcher against the session's real Prefect server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from release_requests import db, runtime
from release_requests.config import get_config
from release_requests.installation import deployment_name, installation_name
from release_requests.pipeline.models import SegmentTrigger
from release_requests.pipeline.service import enqueue
from release_requests.settings import get_settings
from tests.conftest import Builder


def test_lost_segment_runs_are_dispatched_again_with_a_fresh_idempotency_key(
    committed_db, prefect_client_env, monkeypatch
):
    monkeypatch.setenv("RR_DATABASE_URL", committed_db)
    for cache in (get_settings, runtime.session_factory, get_config):
        cache.cache_clear()
    from flows.pipeline import build_and_verify, dispatch_pending, reconcile

    installation = installation_name(committed_db)
    # registered; no runner: runs stay scheduled
    build_and_verify.to_deployment(name=deployment_name("segment", installation)).apply()
    sessions = runtime.session_factory()
    with db.transaction(sessions) as s:
        b = Builder(s, get_config())
        customer = b.customer()
        request = b.request(by=b.person("duty_manager"), customer=customer, severity=2)
        trigger = enqueue(s, request_id=request.id, step="build:1", decision_id="test")
        key = trigger.key

    assert dispatch_pending() == [key]
    assert dispatch_pending() == []  # dispatched once
    with db.transaction(sessions) as s:
        first = s.scalar(select(SegmentTrigger).where(SegmentTrigger.key == key))
        first_run = first.flow_run_id
        # the run is lost: Prefect says it crashed, long enough ago for the reconciler to act
        first.dispatched_at = datetime.now(UTC) - timedelta(minutes=10)
    httpx.post(
        f"{prefect_client_env}/flow_runs/{first_run}/set_state",
        json={"state": {"type": "CRASHED", "name": "Crashed"}, "force": True},
    ).raise_for_status()

    summary = reconcile()
    assert summary["redispatched"] == [key] and summary["dispatched"] == [key]
    # and the static update tree is made to match the database (here: no public channel yet, the key)
    assert summary["tree"]["failed"] == []
    assert (get_settings().update_tree / "updates" / "public-key.pem").is_file()
    with db.transaction(sessions) as s:
        again = s.scalar(select(SegmentTrigger).where(SegmentTrigger.key == key))
        assert again.dispatches == 2 and again.flow_run_id != first_run and again.status == "dispatched"
    run = httpx.get(f"{prefect_client_env}/flow_runs/{again.flow_run_id}").json()
    assert run["parameters"] == {"request_id": request.id, "attempt": 1, "trigger_key": key}
    assert run["idempotency_key"] == f"{installation}:{key}#2"
    for cache in (get_settings, runtime.session_factory, get_config):
        cache.cache_clear()
