"""Notification delivery under Prefect: a scheduled sweep and the low-latency listener.

Both only call `release_requests.notifications.delivery`; the outbox in Postgres is the source of truth,
so running either twice at once, or after a crash, delivers nothing twice (see that module).

- `deliver_outbox` — a flow, swept every minute by a worker (flows/worker.py): delivers everything due (a
  safety net for a listener that is down, and the whole job where latency does not matter).
- `listen_and_deliver` — a long-running function for a worker's thread: wakes on every committed
  outbox row (LISTEN rr_outbox) and delivers it within a fraction of a second. It logs one warning per
  transport that is not configured when it starts (its notices are skipped, never retried or alerted about).
"""

from __future__ import annotations

import logging
import threading

from prefect import flow

from flows import run_logger
from release_requests.config import get_config
from release_requests.listening import listen_forever
from release_requests.notifications.delivery import CHANNEL, Deliverer
from release_requests.notifications.transports import unconfigured_warnings
from release_requests.settings import get_settings

log = logging.getLogger("flows.notifications")


@flow(name="deliver-outbox")
def deliver_outbox() -> dict[str, int]:
    """Deliver every due outbox row; returns how many ended sent / failed / dead / skipped."""
    deliverer = Deliverer.from_settings(get_settings(), get_config())
    try:
        outcomes = dict(deliverer.deliver_due())
    finally:
        deliverer.engine.dispose()
    run_logger(__name__).info("outbox sweep: %s", outcomes or "nothing due")
    return outcomes


def listen_and_deliver(stop: threading.Event, *, poll_seconds: float = 2.0, deliverer: Deliverer | None = None) -> None:
    """Run until `stop` is set (a worker starts it in a thread): deliver each row as soon as it is
    committed, and whatever falls due later (retries, quiet hours, expired leases) when it falls due or
    within `poll_seconds`. Survives database restarts (`listening.listen_forever`: it reconnects and then
    delivers what was committed meanwhile)."""
    deliverer = deliverer or Deliverer.from_settings(get_settings(), get_config())
    for warning in unconfigured_warnings(deliverer.transports):
        log.warning(warning)

    def deliver() -> float | None:
        deliverer.deliver_due()
        return deliverer.seconds_until_due()

    try:
        listen_forever(
            CHANNEL,
            deliver,
            stop,
            poll_seconds=poll_seconds,
            url=deliverer.engine.url.render_as_string(hide_password=False),
        )
    finally:
        deliverer.engine.dispose()
