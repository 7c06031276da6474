"""The flow runner process started by `relreq serve` (`python -m flows.serve`, PREFECT_API_URL set).

Serves this installation's deployments (`<name>@<app database>`, see `release_requests.installation`),
keeps the zombie-run automation in place, and runs listeners in threads: the segment dispatcher
(decisions → deployment runs), the notification deliverer (outbox → Slack and e-mail within seconds) and,
when RR_IMAP_URL is set, the mailbox listener (IMAP IDLE → e-mail intake). All also poll, and scheduled
flows sweep up whatever a restart missed.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from prefect import serve
from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

from flows.mail import listen_for_mail, mail_intake
from flows.notifications import deliver_outbox, listen_and_deliver
from flows.pipeline import build_and_verify, listen_and_dispatch, publish_stage, reconcile
from flows.reports import reports_due
from flows.sla_watch import sla_watch
from release_requests.installation import deployment_name, installation_name
from release_requests.runtime import migrated_url
from release_requests.settings import get_settings

log = logging.getLogger("flows.serve")
ZOMBIE_AUTOMATION = "release-requests: crash zombie flow runs"


def deployments(installation: str) -> list:
    """This installation's deployments, named `<name>@<installation>`: a runner serves only its own, so two
    installations on one Prefect server neither run each other's segments nor pause each other's schedules."""
    every_minute, every_5_minutes, segment = (
        deployment_name(base, installation) for base in ("every-minute", "every-5-minutes", "segment")
    )
    return [
        sla_watch.to_deployment(name=every_minute, interval=60, description="Record SLA threshold crossings."),
        deliver_outbox.to_deployment(name=every_minute, interval=60, description="Sweep the notification outbox."),
        reconcile.to_deployment(name=every_minute, interval=60, description="Restart lost segments; rollouts."),
        mail_intake.to_deployment(name=every_minute, interval=60, description="Take new mail from RR_IMAP_URL."),
        reports_due.to_deployment(
            name=every_5_minutes, interval=300, description="Daily digests, regular reports, Health Check reminders."
        ),
        build_and_verify.to_deployment(name=segment, description="Build and verify a request's fix."),
        publish_stage.to_deployment(name=segment, description="Publish a signed-off release stage."),
    ]


def ensure_zombie_automation() -> None:
    """Mark runs Crashed when their heartbeats stop (a SIGKILLed runner), so `reconcile` re-dispatches them.

    Paused and suspended runs stop heartbeating on purpose; they are in `expect`, so they are left alone.
    """
    try:
        Automation.read(name=ZOMBIE_AUTOMATION)
        return
    except ValueError:
        pass
    Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                "prefect.flow-run.Paused",
                "prefect.flow-run.Suspended",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=90),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="no heartbeat for 90 s: marked Crashed")],
    ).create()


def main() -> None:
    installation = installation_name(migrated_url())
    ensure_zombie_automation()
    stop = threading.Event()
    listeners = [listen_and_dispatch, listen_and_deliver] + ([listen_for_mail] if get_settings().imap_url else [])
    for target in listeners:
        threading.Thread(target=target, args=(stop,), name=target.__name__, daemon=True).start()
    try:
        serve(*deployments(installation), limit=8, name=f"release-requests@{installation}")
    finally:
        stop.set()


if __name__ == "__main__":
    main()
