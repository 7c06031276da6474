"""Pipeline flows: the segments between human decisions, the dispatcher and the reconciler.

A decision recorded by the API writes a segment trigger; the dispatcher (woken by Postgres NOTIFY,
with a short poll as a fallback) turns it into a deployment run with an idempotency key; `reconcile`
(swept every minute by a worker, flows/worker.py) re-dispatches triggers whose run was lost, starts stages
whose soak has elapsed, advances canary rollouts and halts rollouts that telemetry condemns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from flows import run_logger
from release_requests.clock import db_now
from release_requests.config import get_config
from release_requests.db import transaction
from release_requests.installation import installation_name
from release_requests.listening import listen_forever
from release_requests.pipeline import line, segments, sharing, triggers
from release_requests.pipeline.queue import SEGMENTS_CHANNEL
from release_requests.releases import static_tree
from release_requests.runtime import migrated_url, session_factory
from release_requests.settings import get_settings
from release_requests.workflows.rollout import watch_rollouts

log = logging.getLogger("flows.pipeline")
LOST_STATES = {StateType.CRASHED, StateType.FAILED, StateType.CANCELLED}


def _segment() -> segments.Segment:
    return segments.Segment(sessions=session_factory(), settings=get_settings(), config=get_config())


@flow(name="build_and_verify")
def build_and_verify(request_id: str, attempt: int, trigger_key: str) -> str:
    """Fix commit, base or hotfix build, verification; then the first stage waits for sign-off."""
    result = segments.run_build(_segment(), request_id=request_id, attempt=attempt, trigger_key=trigger_key)
    run_logger(__name__).info(result)
    return result


@flow(name="publish_stage")
def publish_stage(request_id: str, stage: str, build_id: int, trigger_key: str) -> str:
    """Publish one signed-off stage to its channels; open the next stage or mark the request released."""
    result = segments.run_publish(
        _segment(), request_id=request_id, stage=stage, build_id=build_id, trigger_key=trigger_key
    )
    run_logger(__name__).info(result)
    return result


def dispatch_pending() -> list[str]:
    """Create a deployment run for every pending trigger (idempotency key per dispatch and installation)."""
    dispatched = []
    with transaction(session_factory()) as session:
        installation = installation_name(session.get_bind().url)
        for trigger in triggers.pending(session):
            call = triggers.segment_call(trigger, installation=installation)
            run = run_deployment(
                call.deployment, parameters=call.parameters, timeout=0, idempotency_key=call.idempotency_key
            )
            triggers.mark_dispatched(session, trigger=trigger, flow_run_id=str(run.id))
            dispatched.append(call.key)
    return dispatched


def _lost(flow_run_id: str | None) -> bool:
    if flow_run_id is None:
        return True
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(flow_run_id)
        except Exception:  # the run vanished from the Prefect server (e.g. a reset): treat as lost
            return True
    return run.state is None or run.state.type in LOST_STATES


@flow(name="reconcile")
def reconcile() -> dict:
    """Restart whatever a lost trigger, a crash or the passage of time left undone."""
    logger = run_logger(__name__)
    config, settings = get_config(), get_settings()
    sessions = session_factory()
    redispatched = []
    with transaction(sessions) as session:
        cutoff = db_now(session) - triggers.STALE_DISPATCH
        for trigger in triggers.dispatched_before(session, cutoff=cutoff):
            if _lost(trigger.flow_run_id):
                triggers.redispatch(session, trigger=trigger)
                redispatched.append(trigger.key)
    with transaction(sessions) as session:
        soaked = triggers.stages_ready_by_time(session, config=config)
    rollouts = watch_rollouts(sessions, config=config, settings=settings)
    with transaction(sessions) as session:
        line_kept = line.housekeeping(session, repo_path=settings.signature_repo, config=config)
    with transaction(sessions) as session:
        joined = sharing.sweep_unjoined(session, config=config)
    dispatched = dispatch_pending()
    # the static update tree follows every move after its commit; this heals what a crash in between (or a
    # busy or failing disk) left behind. A tree that cannot be written must not stop the pipeline's work.
    try:
        tree = static_tree.sync_all(sessions, settings).as_dict()
    except OSError as exc:
        log.error("static update tree not synced: %s", exc)
        tree = {"failed": ["*"]}
    summary = {
        "redispatched": redispatched,
        "soaked": soaked,
        "dispatched": dispatched,
        "joined": joined,
        **rollouts.as_dict(),
        **line_kept,
        "tree": {key: tree.get(key, []) for key in ("written", "removed", "failed")},
    }
    logger.info("reconcile: %s", summary)
    return summary


def _dispatch_logged() -> None:
    try:
        dispatch_pending()
    except ObjectNotFound:  # at start-up, before a worker has registered the deployments
        log.warning("segment deployments not registered yet; retrying at the next wake-up")


def listen_and_dispatch(
    stop: threading.Event,
    *,
    poll_seconds: float = 2.0,
    url: str | None = None,
    dispatch: Callable[[], None] = _dispatch_logged,
) -> None:
    """Dispatch triggers the moment they are committed (LISTEN rr_segments), polling as a fallback, until
    `stop` is set. Survives database and Prefect restarts (`listening.listen_forever`: it reconnects, then
    dispatches whatever was committed meanwhile; a failed dispatch is logged and tried at the next wake-up).
    `url` defaults to the app database; `dispatch` to `dispatch_pending` (tests may count the wake-ups)."""
    listen_forever(SEGMENTS_CHANNEL, dispatch, stop, poll_seconds=poll_seconds, url=url or migrated_url)
