"""Pipeline decisions over HTTP: fix inputs, stage sign-offs, closing, and the pipeline status."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.people.models import Person
from release_requests.pipeline import diff, line, service
from release_requests.pipeline.schemas import CloseIn, FixInput, PipelineOut, RevertFixIn, SignoffIn, SplitIn
from release_requests.requests import lifecycle, presentation
from release_requests.requests.schemas import RequestOut

router = APIRouter(prefix="/api/v1/requests", tags=["pipeline"])


@router.get("/{request_id}/pipeline", response_model=PipelineOut, openapi_extra=needs("request.read"))
def pipeline_status(request_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """The current build, its verification, and every stage with its sign-offs and what is missing."""
    with ctx.unit_of_work() as session:
        return service.status(session, actor=me, request_id=request_id, config=ctx.config)


@router.get("/{request_id}/pipeline/diff", response_model=diff.BaseDiff, openapi_extra=needs("pipeline.diff"))
def pipeline_diff(request_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """What the current base changes against what the channel it goes to next serves: allowlist entries and
    rules added or removed, and the commits between (staff: the allowlist holds every customer's fixes)."""
    with ctx.unit_of_work() as session:
        return diff.base_diff(
            session, actor=me, request_id=request_id, config=ctx.config, repo_path=ctx.settings.signature_repo
        )


@router.post("/{request_id}/approvals", response_model=PipelineOut, openapi_extra=needs("stage.sign", "stage.override"))
def sign_off(request_id: str, body: SignoffIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Approve, reject, revoke your approval, or (emergency role, with a reason) override a stage."""
    with ctx.unit_of_work() as session:
        service.sign(
            session,
            actor=me,
            request_id=request_id,
            data=body,
            config=ctx.config,
            repo_path=ctx.settings.signature_repo,
        )
    with ctx.unit_of_work() as session:
        return service.status(session, actor=me, request_id=request_id, config=ctx.config)


@router.post("/{request_id}/fix", response_model=PipelineOut, status_code=202, openapi_extra=needs("fix.provide"))
def provide_fix(request_id: str, body: FixInput, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Give the build its fix (analyst rule, pushed ref, hotfix commits) or ask for a rebuild; the build starts."""
    with ctx.unit_of_work() as session:
        service.provide_fix(session, actor=me, request_id=request_id, data=body)
    with ctx.unit_of_work() as session:
        return service.status(session, actor=me, request_id=request_id, config=ctx.config)


@router.post("/{request_id}/revert-fix", response_model=RequestOut, openapi_extra=needs("fix.revert"))
def revert_fix(request_id: str, body: RevertFixIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Take this request's fix off the release line (a revert commit naming it); other fixes stay."""
    with ctx.unit_of_work() as session:
        line.revert_fix(
            session,
            actor=me,
            request_id=request_id,
            reason=body.reason,
            repo_path=ctx.settings.signature_repo,
            config=ctx.config,
        )
    with ctx.unit_of_work() as session:
        request = lifecycle.get_visible(session, actor=me, request_id=request_id)
        return presentation.present(session, requests=[request], config=ctx.config, viewer=me)[0]


@router.post("/{request_id}/split", response_model=RequestOut, openapi_extra=needs("request.split"))
def split(request_id: str, body: SplitIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Take a request out of the build it shares (duty manager): it is accepted on its own, with its own build."""
    with ctx.unit_of_work() as session:
        request = service.split(session, actor=me, request_id=request_id, reason=body.reason, config=ctx.config)
        return presentation.present(session, requests=[request], config=ctx.config, viewer=me)[0]


@router.post("/{request_id}/close", response_model=RequestOut, openapi_extra=needs("request.close"))
def close(request_id: str, body: CloseIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """The customer has the fix: close the request."""
    with ctx.unit_of_work() as session:
        request = service.close(session, actor=me, request_id=request_id, data=body, config=ctx.config)
        return presentation.present(session, requests=[request], config=ctx.config, viewer=me)[0]
