"""The choreography between domains: what one domain's decision sets off in another.

Domains (requests, pipeline, releases, notifications, ...) import only downward and never call back up;
when a decision in one must start work in another, the sequence is written here, once, and the API, the
CLI, Slack and the Prefect flows call it:

- `intake` — a report joins the shared build of its sample; an accepted request opens its build;
- `slack_decisions` — a Slack button press is a stage sign-off, by the person behind the Slack user;
- `rollout` — canary steps, telemetry halts, and the halted fix taken off the release line (`reconcile`);
- `sla_watch` — SLA threshold crossings: recorded, re-routed away from an absent owner, announced.

Named `workflows` so it is not confused with the Prefect flows in `flows/`, which schedule these.
The layers and who may import whom: docs/architecture.md (enforced by tests/platform/test_architecture.py).
"""
