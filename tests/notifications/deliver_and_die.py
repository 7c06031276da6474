"""A deliverer process for the crash test: with `RR_CRASH_AT=notify:…` it SIGKILLs itself at that point,
otherwise it delivers until nothing is pending.

    RR_CRASH_AT=notify:after_slack python -m tests.notifications.deliver_and_die DB_URL SLACK_URL SMTP_URL LEASE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from release_requests import db
from release_requests.config import load_config
from release_requests.notifications.delivery import Deliverer
from release_requests.notifications.transports import SlackTransport, SmtpTransport

REPO = Path(__file__).resolve().parents[2]


def main(db_url: str, slack_url: str, smtp_url: str, lease: str) -> None:
    config = load_config(REPO / "config")
    deliverer = Deliverer(
        engine=db.make_engine(db_url),
        config=config,
        transports=[
            SlackTransport(token="xoxb-local", base_url=slack_url),
            SmtpTransport(smtp_url, sender=config.notifications.email.from_address),
        ],
        lease_seconds=float(lease),
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
