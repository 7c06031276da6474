"""The low-latency path: a committed outbox row wakes the listener (LISTEN/NOTIFY), no poll needed."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from release_requests import db


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
        deadline = time.monotonic() + 10
        while len(smtp.received) < 2 or len(slack.all_messages()) < 2:
            assert time.monotonic() < deadline, "not delivered: the NOTIFY wake-up did not work"
            time.sleep(0.02)
        assert {r.status for r in scene.rows(request_id=request_id)} == {"sent"}
    finally:
        stop.set()
        with db.transaction(scene.sessions) as s:  # wake it so that it sees `stop` now
            s.execute(text("NOTIFY rr_outbox"))
        thread.join(10)
    assert not thread.is_alive()
