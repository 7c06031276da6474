"""`sla_watch`: every minute, record SLA threshold crossings (exactly once) and queue the notices, then move
unacknowledged pages up their escalation chain (and resolve the pages of answered requests).

The work is `release_requests.workflows.sla_watch.watch` and `release_requests.paging.service.escalate_due`, at
the database's time; this flow schedules it.
"""

from __future__ import annotations

from prefect import flow

from flows import run_logger
from release_requests.config import get_config
from release_requests.paging.service import escalate_due
from release_requests.runtime import session_factory
from release_requests.workflows.sla_watch import watch


@flow(name="sla_watch", log_prints=False, retries=0)
def sla_watch() -> list[str]:
    """One pass of the watcher; overlapping or repeated runs are harmless (unique crossings)."""
    crossings = watch(session_factory(), config=get_config())
    logger = run_logger(__name__)
    for crossing in crossings:
        logger.info(
            "%s crossed %s at %s%s",
            crossing.request_id,
            crossing.threshold,
            crossing.crossed_at.isoformat(),
            f"; re-routed to {crossing.rerouted_to}" if crossing.rerouted_to else "",
        )
    # the climb of unacknowledged pages rides on the same minute: no process of its own
    escalations = escalate_due(session_factory(), config=get_config())
    for escalation in escalations:
        if escalation.outcome == "exhausted":
            logger.error("%s: page exhausted, nobody acknowledged it", escalation.request_id)
        elif escalation.outcome == "escalated":
            logger.warning(
                "%s: page escalated from %s to %s (step %s)",
                escalation.request_id,
                escalation.from_person,
                escalation.to_person,
                escalation.step,
            )
        else:
            logger.info("%s: page resolved", escalation.request_id)
    return [f"{c.request_id}:{c.threshold}" for c in crossings] + [
        f"{e.request_id}:page.{e.outcome}" for e in escalations
    ]
