"""/api/v1/requests: thin handlers; the rules live in `requests.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import FileResponse

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.people.models import Person
from release_requests.requests import lifecycle, presentation, samples, service
from release_requests.requests.schemas import (
    Answer,
    Assign,
    Cancel,
    RequestFilters,
    RequestOut,
    RequestPage,
    Respond,
    SampleOut,
    SeverityChange,
    SubmitRequest,
    TimelineEntry,
    TriageDecision,
)
from release_requests.samples.names import safe_filename
from release_requests.samples.store import verified_sample_path
from release_requests.workflows import intake

router = APIRouter(prefix="/api/v1/requests", tags=["requests"])


def _out(session, request, ctx: AppContext, me: Person) -> RequestOut:
    return presentation.present(session, requests=[request], config=ctx.config, viewer=me)[0]


@router.post("", status_code=201, response_model=RequestOut, openapi_extra=needs("request.file"))
def submit(body: SubmitRequest, me: Person = Depends(caller), ctx: AppContext = Depends(context)) -> RequestOut:
    with ctx.unit_of_work() as session:
        # the whole submission stays referenced while it is presented: its owner is then still in the session
        submission = intake.file_request(session, actor=me, data=body, config=ctx.config)
        return _out(session, submission.request, ctx, me)


@router.get("", response_model=RequestPage, openapi_extra=needs("request.read"))
def list_requests(
    filters: Annotated[RequestFilters, Query()],
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
) -> RequestPage:
    with ctx.unit_of_work() as session:
        rows, total = presentation.list_requests(session, actor=me, filters=filters)
        items = presentation.present(session, requests=rows, config=ctx.config, viewer=me)
        return RequestPage(items=items, total=total, limit=filters.limit, offset=filters.offset)


@router.get("/{request_id}", response_model=RequestOut, openapi_extra=needs("request.read"))
def show(request_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)) -> RequestOut:
    with ctx.unit_of_work() as session:
        return _out(session, lifecycle.read(session, actor=me, request_id=request_id), ctx, me)


@router.get("/{request_id}/timeline", response_model=list[TimelineEntry], openapi_extra=needs("request.read"))
def timeline(request_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return presentation.request_timeline(session, actor=me, request_id=request_id)


@router.post("/{request_id}/triage", response_model=RequestOut, openapi_extra=needs("request.triage"))
def triage(
    request_id: str, body: TriageDecision, me: Person = Depends(caller), ctx: AppContext = Depends(context)
) -> RequestOut:
    with ctx.unit_of_work() as session:
        return _out(
            session, intake.triage(session, actor=me, request_id=request_id, decision=body, config=ctx.config), ctx, me
        )


@router.post("/{request_id}/answers", response_model=RequestOut, openapi_extra=needs("request.answer"))
def answer(request_id: str, body: Answer, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return _out(session, service.answer(session, actor=me, request_id=request_id, data=body), ctx, me)


@router.post("/{request_id}/cancel", response_model=RequestOut, openapi_extra=needs("request.cancel"))
def cancel(request_id: str, body: Cancel, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return _out(session, service.cancel(session, actor=me, request_id=request_id, data=body), ctx, me)


@router.post("/{request_id}/responses", response_model=RequestOut, openapi_extra=needs("request.respond"))
def respond(request_id: str, body: Respond, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """A qualified answer to the customer; it meets the SLA clock and is delivered to them."""
    with ctx.unit_of_work() as session:
        request = service.respond(session, actor=me, request_id=request_id, data=body, config=ctx.config)
        return _out(session, request, ctx, me)


@router.post("/{request_id}/severity", response_model=RequestOut, openapi_extra=needs("request.change_severity"))
def change_severity(
    request_id: str, body: SeverityChange, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    """Change severity with a reason; the SLA clock is re-targeted from the same start."""
    with ctx.unit_of_work() as session:
        return _out(session, service.change_severity(session, actor=me, request_id=request_id, data=body), ctx, me)


@router.post("/{request_id}/assignee", response_model=RequestOut, openapi_extra=needs("request.assign"))
def assign(request_id: str, body: Assign, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Hand an open request to another engineer (vendor staff); audited like every change."""
    with ctx.unit_of_work() as session:
        return _out(session, service.assign(session, actor=me, request_id=request_id, data=body), ctx, me)


@router.post("/{request_id}/samples", status_code=201, response_model=SampleOut, openapi_extra=needs("sample.add"))
def add_sample(
    request_id: str,
    file: Annotated[UploadFile | None, File(description="the sample; stored read-only, never executed")] = None,
    sha256: Annotated[str | None, Form(pattern=r"^[0-9a-fA-F]{64}$", description="declared hash")] = None,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
) -> SampleOut:
    with ctx.unit_of_work() as session:
        sample = intake.add_sample(
            session,
            actor=me,
            request_id=request_id,
            config=ctx.config,
            samples_dir=ctx.samples_dir,
            stream=file.file if file else None,
            filename=safe_filename(file.filename) if file else None,  # stored as it will be shown
            declared_sha256=sha256,
        )
        return SampleOut.model_validate(sample)


@router.get("/{request_id}/samples", response_model=list[SampleOut], openapi_extra=needs("request.read"))
def list_samples(request_id: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        return _out(session, lifecycle.read(session, actor=me, request_id=request_id), ctx, me).samples


@router.get("/{request_id}/samples/{sha256}", response_class=FileResponse, openapi_extra=needs("sample.fetch"))
def fetch_sample(request_id: str, sha256: str, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    with ctx.unit_of_work() as session:
        sample = samples.find_sample(session, actor=me, request_id=request_id, sha256=sha256)
    path = verified_sample_path(ctx.samples_dir, sample.sha256)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{sample.sha256}.sample",  # never the original name: no .exe lands on a desktop
        headers={"X-Content-Type-Options": "nosniff", "X-Sample-SHA256": sample.sha256},
    )
