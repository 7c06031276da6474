"""E-mail intake under Prefect: a scheduled pass over the support mailbox and the IDLE listener.

Both only call `release_requests.workflows.mailbox`; the cursor in Postgres decides what is taken, so the
two running at once (or a pass after a crash) take no message twice and lose none.

- `mail_intake` — a flow, swept every minute by a worker (flows/worker.py): one pass (a safety net for a
  listener that is down, and the whole job with a server that offers no IDLE). Without RR_IMAP_URL it does
  nothing (the workers then skip it), and a run's log says so in one line.
- `listen_for_mail` — a long-running function for a worker's thread (only when RR_IMAP_URL is set):
  takes a new message within seconds of its arrival, over IMAP IDLE.
"""

from __future__ import annotations

import logging
import threading

from prefect import flow

from flows import run_logger
from release_requests.config import get_config
from release_requests.errors import ConfigError
from release_requests.runtime import session_factory
from release_requests.settings import get_settings
from release_requests.workflows.mailbox import listen, poll_once

log = logging.getLogger("flows.mail")


@flow(name="mail_intake", log_prints=False, retries=0)
def mail_intake() -> dict[str, int]:
    """One pass over the mailbox; returns how many messages ended filed / threaded / held / … / duplicate."""
    settings, logger = get_settings(), run_logger(__name__)
    if not settings.imap_url:
        logger.info("RR_IMAP_URL is not set: no mailbox to read")
        return {}
    result = poll_once(session_factory(), settings=settings, config=get_config())
    if result.busy:
        logger.info("mailbox %s: another poller is taking its messages", result.mailbox)
    elif result.uids:
        logger.info("mailbox %s: took UIDs %s: %s", result.mailbox, list(result.uids), result.outcomes)
    return result.outcomes


def listen_for_mail(stop: threading.Event) -> None:
    """Run until `stop` is set (a worker starts it in a thread when RR_IMAP_URL is set). A wrong
    RR_IMAP_URL is said once, at error level, and the thread ends: retrying cannot fix it."""
    try:
        listen(stop, sessions=session_factory(), settings=get_settings(), config=get_config())
    except ConfigError as exc:
        log.error("the mailbox is not read: %s", exc)
