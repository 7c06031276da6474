"""The `sla_watch` flow against a real Prefect server and the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from release_requests import db, runtime
from release_requests.config import get_config
from release_requests.settings import get_settings
from tests.conftest import Builder


def test_sla_watch_flow_records_crossings_and_is_visible_in_prefect(committed_db, prefect_client_env, monkeypatch):
    monkeypatch.setenv("RR_DATABASE_URL", committed_db)
    for cache in (get_settings, runtime.session_factory, get_config):
        cache.cache_clear()
    from flows.sla_watch import sla_watch

    now = datetime.now(UTC)
    sessions = runtime.session_factory()
    with db.transaction(sessions) as s:
        b = Builder(s, get_config())
        customer = b.customer()
        duty = b.person("duty_manager")
        b.shift(duty, now - timedelta(hours=1), now + timedelta(hours=1))
        request_id = b.request(by=duty, customer=customer, severity=1, received_at=now - timedelta(minutes=40)).id

    assert sorted(sla_watch()) == sorted(f"{request_id}:{t}" for t in ("50%", "80%", "breach"))
    assert sla_watch() == []  # a second run finds nothing new

    runs = httpx.post(f"{prefect_client_env}/flow_runs/filter", json={"limit": 10}).json()
    assert sum(1 for r in runs if r["state_type"] == "COMPLETED") >= 2
    for cache in (get_settings, runtime.session_factory, get_config):
        cache.cache_clear()
