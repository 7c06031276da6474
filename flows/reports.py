"""`reports_due`: every five minutes, queue the digests, regular reports and Health Check reminders now due.

The work is `release_requests.reports.delivery.send_due`; each delivery is claimed once (a unique row in the
same transaction as its outbox messages), so overlapping or repeated runs send nothing twice. Five minutes is
as fine as a "09:00 local time" digest needs, and keeps an idle server quiet.
"""

from __future__ import annotations

from prefect import flow

from flows import run_logger
from release_requests.config import get_config
from release_requests.reports.delivery import send_due
from release_requests.runtime import session_factory


@flow(name="reports_due", log_prints=False, retries=0)
def reports_due() -> list[str]:
    sent = send_due(session_factory(), config=get_config())
    logger = run_logger(__name__)
    for item in sent:
        logger.info(
            "%s for %s (%s): %d items, %d messages",
            item.kind,
            item.recipient,
            item.period_start,
            item.items,
            item.messages,
        )
    return [f"{s.kind}:{s.recipient}:{s.period_start}" for s in sent]
