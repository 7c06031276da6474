"""The pipeline panel of a request page, an htmx fragment under the page's heading.

Staff read the build and its verification (which samples, which corpora, the ClamAV cross-check), the diff of
the base against what the channel it goes to next serves, and every stage with its sign-off rule, who signed and
who may still sign; the sign-off buttons are disabled with the reason the pipeline's own policy gives
(`service.why_not_sign`: the same checks `sign` makes). Customers read instead the release that fixes their
request — only on channels they may read — and download their own private hotfixes.

Decisions post to `/requests/{id}/signoffs` and go back to the request page (POST → 303 → GET).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import FileResponse

from artifacts.store import LocalStore
from release_requests import access, errors
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.pipeline import diff, service
from release_requests.pipeline.schemas import SignoffIn
from release_requests.releases import serving
from release_requests.web.i18n import translate
from release_requests.web.rendering import render
from release_requests.web.session import Viewer, back_to, checked, valid, viewer, web_router

router = web_router()

DECISIONS = ("approve", "reject", "revoke", "override")
NOTICES = {  # shown on the request page after a decision (texts of translations/pipeline.toml)
    "approve": "Your sign-off is recorded.",
    "reject": "The stage is rejected: the request has failed and its fix leaves the release line.",
    "revoke": "Your approval is revoked.",
    "override": "The override is recorded and announced to the team.",
}


@router.get("/requests/{request_id}/pipeline", openapi_extra=needs("request.read"))
def pipeline_panel(request: Request, request_id: str, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        if not me.staff:
            releases = service.fixing_releases(
                session,
                actor=me.person,
                request_id=request_id,
                config=ctx.config,
                repo_path=ctx.settings.signature_repo,
            )
            return render(request, "pipeline_release.html", viewer=me, request_id=request_id, releases=releases)
        status = service.status(session, actor=me.person, request_id=request_id, config=ctx.config)
        report = diff.verification(session, actor=me.person, request_id=request_id)
        base, no_diff = None, None
        if not access.allows(me.person, "pipeline.diff"):
            no_diff = translate(me.language, "The diff is shown to the engineers who review and sign the build.")
        elif status.build is not None:
            try:
                base = diff.base_diff(
                    session,
                    actor=me.person,
                    request_id=request_id,
                    config=ctx.config,
                    repo_path=ctx.settings.signature_repo,
                )
            except (errors.Conflict, errors.ServiceUnavailable) as exc:
                no_diff = exc.message
        awaiting = next((run for run in status.stage_runs if run.status == "awaiting"), None)
        refusals, may_sign = {}, []
        if awaiting is not None:
            refusals = {
                decision: service.why_not_sign(
                    session,
                    actor=me.person,
                    request_id=request_id,
                    stage=awaiting.stage,
                    decision=decision,
                    config=ctx.config,
                )
                for decision in DECISIONS
            }
            may_sign = [
                (p.name, p.role)
                for p in service.eligible_signers(
                    session, actor=me.person, request_id=request_id, stage=awaiting.stage, config=ctx.config
                )
            ]
    return render(
        request,
        "pipeline_panel.html",
        viewer=me,
        request_id=request_id,
        pipeline=status,
        runs={run.stage: run for run in status.stage_runs},
        report=report,
        diff=base,
        no_diff=no_diff,
        rules={stage: ctx.config.stages.stage[stage] for stage in status.stages},
        awaiting=awaiting.stage if awaiting else None,
        refusals=refusals,
        may_sign=may_sign,
    )


@router.post("/requests/{request_id}/signoffs", openapi_extra=needs("stage.sign", "stage.override"))
def sign_off(
    request_id: str,
    stage: Annotated[str, Form(max_length=20)] = "",
    decision: Annotated[str, Form(max_length=10)] = "approve",
    reason: Annotated[str, Form(max_length=2000)] = "",
    commit: Annotated[str, Form(max_length=40)] = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    """Approve, reject (with a reason), revoke one's own approval, or override (emergency role, with a reason).

    Every form of the panel carries the commit of the build it showed: a decision on a page loaded before a
    rebuild or a rebase is refused (409) instead of signing a build whose diff the signer never saw."""
    data = valid(
        SignoffIn, stage=stage, decision=decision, reason=reason.strip() or None, commit=commit.strip() or None
    )
    with ctx.unit_of_work() as session:
        service.sign(
            session,
            actor=me.person,
            request_id=request_id,
            data=data,
            config=ctx.config,
            repo_path=ctx.settings.signature_repo,
            via="web",
        )
    return back_to(f"/requests/{request_id}", NOTICES[data.decision])


@router.get("/requests/{request_id}/downloads/{channel}/{name:path}", openapi_extra=needs("request.read"))
def download(
    request_id: str, channel: str, name: str, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)
):
    """A file of the customer's own private hotfix that fixes this request, from a channel of theirs that serves
    it: checked as the update endpoint checks a token (`serving.served_file`), for the signed-in person."""
    with ctx.unit_of_work() as session:
        releases = service.fixing_releases(
            session, actor=me.person, request_id=request_id, config=ctx.config, repo_path=ctx.settings.signature_repo
        )
        wanted = next((f for r in releases if r.channel == channel for f in r.files if f.name == name), None)
        if wanted is None:
            raise errors.NotFound(f"no file '{name}' of {request_id} on channel '{channel}'")
        serving.served_file(session, channel=channel, sha256=wanted.sha256, viewer=me.person)
    path = LocalStore(ctx.settings.artifacts_dir).local_path(wanted.sha256)  # checked against its digest
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=PurePosixPath(name).name,
        headers={"X-Content-SHA256": wanted.sha256},
    )
