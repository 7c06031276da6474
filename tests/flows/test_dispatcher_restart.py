"""The segment dispatcher outlives a Postgres restart: a trigger committed after it is dispatched within
seconds, not at the next minute's `reconcile` (the dispatcher's thread used to die with its connection)."""

from __future__ import annotations

import contextvars
import threading

from sqlalchemy import select

from release_requests import db, runtime
from release_requests.config import get_config
from release_requests.installation import deployment_name, installation_name
from release_requests.pipeline.models import SegmentTrigger
from release_requests.pipeline.service import enqueue
from release_requests.settings import get_settings
from tests.conftest import Builder
from tests.flows.dedicated_pg import Recorded, dedicated_postgres
from tests.flows.workers import wait_for

CACHES = (get_settings, runtime.session_factory, get_config)


def new_trigger(sessions) -> str:
    with db.transaction(sessions) as s:
        b = Builder(s, get_config())
        request = b.request(by=b.person("duty_manager"), customer=b.customer(), severity=2)
        return enqueue(s, request_id=request.id, step="build:1", decision_id="test").key


def dispatched(sessions, key: str) -> bool:
    with db.transaction(sessions) as s:
        return s.scalar(select(SegmentTrigger.status).where(SegmentTrigger.key == key)) == "dispatched"


def test_dispatcher_reconnects_after_a_postgres_restart_and_dispatches_at_once(prefect_client_env, monkeypatch, caplog):
    from flows.pipeline import build_and_verify, listen_and_dispatch

    with dedicated_postgres() as pg, Recorded("release_requests.listening") as logged:
        monkeypatch.setenv("RR_DATABASE_URL", pg.url)
        for cache in CACHES:
            cache.cache_clear()
        # registered, no runner: the runs stay scheduled, the trigger is marked dispatched
        build_and_verify.to_deployment(name=deployment_name("segment", installation_name(pg.url))).apply()
        sessions = runtime.session_factory()
        stop = threading.Event()
        # the thread sees the test's Prefect settings (a context variable) like the serving process its own
        run = contextvars.copy_context().run
        thread = threading.Thread(target=run, args=(listen_and_dispatch, stop), kwargs={"poll_seconds": 30})
        thread.start()
        try:
            before = new_trigger(sessions)
            wait_for(lambda: dispatched(sessions, before), timeout=15, what="dispatch before the restart")

            pg.restart(down_for=1.0)
            wait_for(lambda: any("reconnected" in m for m in logged.warnings()), timeout=15, what="reconnect")
            after = new_trigger(sessions)  # the poll is 30 s away, reconcile a minute: only NOTIFY can wake it
            took = wait_for(lambda: dispatched(sessions, after), timeout=15, what="dispatch after the restart")
            assert took < 5
            assert thread.is_alive()
            warnings = logged.warnings()  # one for the outage, one for its end: not one per attempt
            assert len(warnings) == 2 and "connection lost" in warnings[0], warnings
        finally:
            stop.set()
            thread.join(5)
            for cache in CACHES:
                cache.cache_clear()
        assert not thread.is_alive()
