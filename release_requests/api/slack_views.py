"""POST /slack/interactions: Slack button presses, verified on the raw body before anything is parsed.

A request whose signature does not match `RR_SLACK_SIGNING_SECRET`, whose timestamp is more than five
minutes away from now, or whose signature headers are malformed is refused with 401; a signed body
that is not a well-formed button press with 400 (see `notifications.slack_requests`); replays and
unknown Slack users with 403 (see `workflows.slack_decisions`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.errors import ServiceUnavailable
from release_requests.notifications.slack_requests import parse_interaction, verify
from release_requests.workflows.slack_decisions import handle_interaction

router = APIRouter(tags=["slack"])


@router.post("/slack/interactions", openapi_extra=needs("slack.interaction"))
async def interactions(request: Request, ctx: AppContext = Depends(context)) -> dict:
    secret = ctx.settings.slack_signing_secret
    if not secret:
        raise ServiceUnavailable("Slack interactions are not configured on this server (RR_SLACK_SIGNING_SECRET)")
    body = await request.body()
    signature = verify(
        signing_secret=secret,
        body=body,
        timestamp=request.headers.get("X-Slack-Request-Timestamp"),
        signature_header=request.headers.get("X-Slack-Signature"),
    )
    press = parse_interaction(body)

    def decide() -> dict:
        with ctx.unit_of_work() as session:
            decided = handle_interaction(
                session,
                signature=signature,
                press=press,
                config=ctx.config,
                repo_path=ctx.settings.signature_repo,
            )
            return {"ok": True, "request_id": decided.id, "status": decided.status}

    return await run_in_threadpool(decide)  # the database work must not block the event loop
