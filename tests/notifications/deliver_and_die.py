"""A deliverer process for the crash tests: with `RR_CRASH_AT=notify:…` it SIGKILLs itself at that point,
otherwise it delivers until nothing is pending. Each TRANSPORT argument gives it one transport:

- `slack=URL` (a LocalSlack) and `smtp=URL` (a LocalSmtp);
- `pager=CAFILE`: the paging service, from RR_PAGING_WEBHOOK_URL and RR_PAGING_ROUTING_KEY (the key never on a
  command line), trusting the local server's certificate in CAFILE.

    RR_CRASH_AT=notify:after_slack python -m tests.notifications.deliver_and_die DB_URL LEASE slack=URL smtp=URL
    RR_CRASH_AT=notify:after_pager python -m tests.notifications.deliver_and_die DB_URL LEASE pager=CAFILE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from release_requests import db
from release_requests.config import AppConfig, load_config
from release_requests.notifications.delivery import Deliverer
from release_requests.notifications.transports import PagerTransport, SlackTransport, SmtpTransport, Transport
from release_requests.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def transport(spec: str, config: AppConfig) -> Transport:
    kind, _, value = spec.partition("=")
    if kind == "slack":
        return SlackTransport(token="xoxb-local", base_url=value)
    if kind == "smtp":
        return SmtpTransport(value, sender=config.notifications.email.from_address)
    if kind == "pager":
        settings = Settings()
        return PagerTransport(settings.paging_webhook_url, settings.paging_routing_key, cafile=value)
    sys.exit(f"unknown transport {spec!r}: slack=URL, smtp=URL or pager=CAFILE")


def main(db_url: str, lease: str, *transports: str) -> None:
    config = load_config(REPO / "config")
    deliverer = Deliverer(
        engine=db.make_engine(db_url),
        config=config,
        transports=[transport(spec, config) for spec in transports],
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
