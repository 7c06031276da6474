"""POST /slack/interactions: Slack button presses, verified on the raw body before anything is parsed.

A request whose signature does not match `RR_SLACK_SIGNING_SECRET`, or whose timestamp is more than five
minutes away from now, is refused with 401; replays and unknown Slack users with 403 (see
`notifications.slack`).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool

from release_requests.api.deps import AppContext, context
from release_requests.errors import InvalidInput, ServiceUnavailable, Unauthenticated
from release_requests.notifications.slack import handle_interaction

router = APIRouter(tags=["slack"])


@router.post("/slack/interactions")
async def interactions(request: Request, ctx: AppContext = Depends(context)) -> dict:
    secret = ctx.settings.slack_signing_secret
    if not secret:
        raise ServiceUnavailable("Slack interactions are not configured on this server (RR_SLACK_SIGNING_SECRET)")
    body = await request.body()
    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    signature = request.headers.get("X-Slack-Signature")
    if not (timestamp or "").isdigit() or not SignatureVerifier(secret).is_valid(body, timestamp, signature):
        raise Unauthenticated("Slack signature invalid or request older than 5 minutes")
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
    except (KeyError, IndexError, ValueError):
        raise InvalidInput("expected a form field 'payload' holding JSON", field="payload") from None

    def decide() -> dict:
        with ctx.unit_of_work() as session:
            decided = handle_interaction(session, signature=signature, payload=payload, config=ctx.config)
            return {"ok": True, "request_id": decided.id, "status": decided.status}

    return await run_in_threadpool(decide)  # the database work must not block the event loop
