"""A deliverer process for the pager crash test: with `RR_CRASH_AT=notify:after_pager` it SIGKILLs itself right
after the paging service accepted an event, before the delivery is recorded. Its only transport is the pager,
configured from RR_PAGING_WEBHOOK_URL and RR_PAGING_ROUTING_KEY (the key never on a command line).

    RR_CRASH_AT=notify:after_pager python -m tests.paging.pager_deliver_and_die DB_URL CAFILE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from release_requests import db
from release_requests.config import load_config
from release_requests.notifications.delivery import Deliverer
from release_requests.notifications.transports import PagerTransport
from release_requests.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def main(db_url: str, cafile: str) -> None:
    settings = Settings()
    deliverer = Deliverer(
        engine=db.make_engine(db_url),
        config=load_config(REPO / "config"),
        transports=[
            PagerTransport(settings.paging_webhook_url, routing_key=settings.paging_routing_key, cafile=cafile)
        ],
        lease_seconds=1,
        backoff_seconds=[0.1],
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        deliverer.deliver_due()
        due_in = deliverer.seconds_until_due()
        if due_in is None:
            return
        time.sleep(min(due_in, 0.1))
    sys.exit("outbox did not drain")


if __name__ == "__main__":
    main(*sys.argv[1:])
