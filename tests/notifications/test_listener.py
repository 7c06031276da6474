"""The low-latency path: a committed outbox row wakes the listener (LISTEN/NOTIFY), no poll needed — and it
keeps doing so across a lost connection and a real Postgres restart (`release_requests.listening`)."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
from sqlalchemy import text

from release_requests import db
from release_requests.listening import libpq_url, listen_forever
from tests.flows.dedicated_pg import Recorded, dedicated_postgres
from tests.notifications.conftest import Scene


def wait_for(condition, *, timeout: float, what: str) -> float:
    """Poll `condition` until true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


def listener_warnings(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "release_requests.listening" and r.levelname == "WARNING"
    ]


def delivered(scene: Scene, request_ids: list[str]) -> bool:
    rows = [r for request_id in request_ids for r in scene.rows(request_id=request_id)]
    return bool(rows) and {r.status for r in rows} == {"sent"}


def test_listener_delivers_on_commit_not_on_poll(scene, slack, smtp, make_deliverer):
    from flows.notifications import listen_and_deliver

    customer = scene.customer()
    engineer = scene.person("triage")
    stop = threading.Event()
    thread = threading.Thread(
        target=listen_and_deliver, args=(stop,), kwargs={"poll_seconds": 30, "deliverer": make_deliverer()}
    )
    thread.start()
    try:
        time.sleep(0.3)  # the listener is idle, waiting on its 30 s poll
        request_id = scene.request(customer, by=engineer)
        # sent, and recorded as sent (the far side has it a moment before the row says so)
        wait_for(lambda: delivered(scene, [request_id]), timeout=10, what="the NOTIFY wake-up")
        assert len(smtp.received) >= 2 and len(slack.all_messages()) >= 2
    finally:
        stop.set()
        with db.transaction(scene.sessions) as s:  # wake it so that it sees `stop` now
            s.execute(text("NOTIFY rr_outbox"))
        thread.join(10)
    assert not thread.is_alive()


def test_a_terminated_connection_is_replaced_at_once_caught_up_and_exceptions_never_kill_it(db_url):
    """On the shared server only the listener's own backend is terminated (other tests keep theirs)."""
    channel = f"rr_test_{uuid.uuid4().hex[:12]}"
    wakes: list[float] = []

    def on_wake() -> None:
        wakes.append(time.monotonic())
        if len(wakes) == 3:
            raise RuntimeError("the work failed once")

    stop = threading.Event()
    thread = threading.Thread(
        target=listen_forever, args=(channel, on_wake, stop), kwargs={"poll_seconds": 30, "url": db_url}
    )
    with Recorded("release_requests.listening") as logged, psycopg.connect(libpq_url(db_url), autocommit=True) as admin:
        thread.start()
        try:
            wait_for(lambda: len(wakes) == 1, timeout=5, what="the first wake-up, at start")
            [pid] = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE query = %s", (f'LISTEN "{channel}"',)
            ).fetchone()
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            # no NOTIFY, and the poll is 30 s away: only reconnecting wakes it (to catch up on what it missed)
            assert wait_for(lambda: len(wakes) == 2, timeout=5, what="the catch-up after reconnecting") < 2
            warnings = logged.warnings()
            assert len(warnings) == 2, warnings  # one for the outage, one for its end: not one per attempt
            assert "connection lost" in warnings[0] and "reconnected after" in warnings[1]
            admin.execute(f'NOTIFY "{channel}"')  # the new LISTEN works; this wake-up raises
            wait_for(lambda: len(wakes) == 3, timeout=5, what="a wake-up on NOTIFY after reconnecting")
            admin.execute(f'NOTIFY "{channel}"')  # and the exception did not kill the thread
            wait_for(lambda: len(wakes) == 4, timeout=5, what="a wake-up after a failed one")
            assert thread.is_alive()
        finally:
            stop.set()
            thread.join(5)
    assert not thread.is_alive(), "stop is honoured within a second, without a NOTIFY"
    assert any("handling a wake-up failed" in r.getMessage() for r in logged.records)
    assert len(logged.warnings()) == 2


def test_listener_survives_a_postgres_restart_and_delivers_what_is_committed_after_it(
    config, slack, smtp, make_deliverer
):
    """A real restart of a cluster of the test's own: the listener, waiting on a 30 s poll, reconnects and
    delivers a row committed after the restart within seconds — not at its next poll or sweep."""
    from flows.notifications import listen_and_deliver

    with dedicated_postgres() as pg, Recorded("release_requests.listening") as logged:
        engine = db.make_engine(pg.url)
        scene = Scene(db.make_sessionmaker(engine), config, slack)
        customer, engineer = scene.customer(), scene.person("triage")
        stop = threading.Event()
        thread = threading.Thread(
            target=listen_and_deliver,
            args=(stop,),
            kwargs={"poll_seconds": 30, "deliverer": make_deliverer(engine=engine)},
        )
        thread.start()
        try:
            before = scene.request(customer, by=engineer)
            wait_for(lambda: delivered(scene, [before]), timeout=10, what="delivery before the restart")

            pg.restart(down_for=1.0)
            wait_for(lambda: any("reconnected" in m for m in logged.warnings()), timeout=10, what="reconnect")
            after = scene.request(customer, by=engineer)  # committed after the restart, on a fresh connection
            assert wait_for(lambda: delivered(scene, [after]), timeout=10, what="delivery after the restart") < 5
            warnings = logged.warnings()  # one for the outage, one for its end: not one per attempt
            assert len(warnings) == 2 and "connection lost" in warnings[0], warnings
            assert thread.is_alive()
        finally:
            stop.set()
            thread.join(5)
            engine.dispose()
        assert not thread.is_alive()
