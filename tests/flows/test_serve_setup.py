"""What the flow runner sets up on the Prefect server: the zombie automation and the deployments."""

from __future__ import annotations

from prefect.automations import Automation


def test_zombie_automation_is_created_once_and_spares_paused_and_suspended_runs(prefect_client_env):
    from flows.serve import ZOMBIE_AUTOMATION, deployments, ensure_zombie_automation

    ensure_zombie_automation()
    ensure_zombie_automation()  # idempotent: restarts of `relreq serve` do not pile automations up
    automation = Automation.read(name=ZOMBIE_AUTOMATION)
    assert {"prefect.flow-run.Suspended", "prefect.flow-run.Paused"} <= set(automation.trigger.expect)
    assert automation.actions[0].state.value == "CRASHED"
    names = {f"{d.flow_name}/{d.name}" for d in deployments("rr_staging")}
    assert names == {
        "sla_watch/every-minute@rr_staging",
        "deliver-outbox/every-minute@rr_staging",
        "reconcile/every-minute@rr_staging",
        "mail_intake/every-minute@rr_staging",
        "reports_due/every-5-minutes@rr_staging",
        "build_and_verify/segment@rr_staging",
        "publish_stage/segment@rr_staging",
    }
