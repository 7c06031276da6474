"""/api/v1/intake: hand a raw e-mail message to intake, and the duty manager's view of the support mailbox.

A message is never rendered here: its detail carries the text part (an HTML-only message as text), and the
raw message is only offered as a download (`message/rfc822`, attachment, nosniff).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from release_requests.access import authorize, needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.errors import InvalidInput, PayloadTooLarge
from release_requests.mail.schemas import IngestOut, MailAssign, MailDetail, MailOut, Outcome
from release_requests.people.models import Person
from release_requests.workflows import mail_intake

router = APIRouter(prefix="/api/v1/intake", tags=["intake"])
RFC822 = "message/rfc822"


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes (whatever Content-Length claims)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the message is over {limit} bytes", field="body")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the message is over {limit} bytes", field="body")
    return bytes(body)


@router.post(
    "/email",
    response_model=IngestOut,
    openapi_extra={
        **needs("mail.ingest"),
        "requestBody": {"required": True, "content": {RFC822: {"schema": {"type": "string", "format": "binary"}}}},
    },
)
async def ingest_email(request: Request, me: Person = Depends(caller), ctx: AppContext = Depends(context)) -> IngestOut:
    """File one raw RFC 822 message (Content-Type: message/rfc822) exactly as the mailbox poller would. Messages
    over `max_message_bytes` are kept and held; over twice that, refused with 413. A Message-ID seen before
    returns the earlier result (`duplicate: true`)."""
    authorize(me, "mail.ingest")  # before reading a body of up to twice the message limit
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != RFC822:
        raise InvalidInput("send the message as Content-Type: message/rfc822", field="content-type")
    raw = await _read_capped(request, 2 * ctx.config.intake.email.max_message_bytes)

    def ingest() -> IngestOut:
        with ctx.unit_of_work() as session:
            result = mail_intake.receive(session, actor=me, raw=raw, config=ctx.config, samples_dir=ctx.samples_dir)
        return IngestOut(**vars(result))

    return await run_in_threadpool(ingest)  # the database work must not block the event loop


@router.get("/mail", response_model=list[MailOut], openapi_extra=needs("mail.read"))
def list_mail(
    outcome: Outcome | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    me: Person = Depends(caller),
    ctx: AppContext = Depends(context),
):
    """The support mailbox, newest first; `outcome=held` is the duty manager's to-do list."""
    with ctx.unit_of_work() as session:
        return [
            MailOut.model_validate(m) for m in mail_intake.list_mail(session, actor=me, outcome=outcome, limit=limit)
        ]


@router.get("/mail/{mail_id}", response_model=MailDetail, openapi_extra=needs("mail.read"))
def show_mail(mail_id: int, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """One message: what became of it and why, its text (never its HTML), its attachments' names and sizes."""
    with ctx.unit_of_work() as session:
        return mail_intake.describe(mail_intake.read_mail(session, actor=me, mail_id=mail_id), config=ctx.config)


@router.get("/mail/{mail_id}/raw", response_class=Response, openapi_extra=needs("mail.read"))
def raw_mail(mail_id: int, me: Person = Depends(caller), ctx: AppContext = Depends(context)) -> Response:
    """The message exactly as it arrived, as a download: a browser must never render it."""
    with ctx.unit_of_work() as session:
        raw = mail_intake.read_mail(session, actor=me, mail_id=mail_id).raw
    return eml_download(mail_id, raw)


def eml_download(mail_id: int, raw: bytes) -> Response:
    """A message's bytes as a file to save, here and in the console: never rendered, never sniffed, and
    sandboxed should a browser open it all the same."""
    return Response(
        content=raw,
        media_type=RFC822,
        headers={
            "Content-Disposition": f'attachment; filename="mail-{mail_id}.eml"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


@router.post("/mail/{mail_id}/assign", response_model=MailOut, openapi_extra=needs("mail.assign"))
def assign_mail(mail_id: int, body: MailAssign, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """File a held or ignored message for a customer (a new request), or add it to a request."""
    with ctx.unit_of_work() as session:
        mail = mail_intake.assign_mail(
            session,
            actor=me,
            mail_id=mail_id,
            customer_id=body.customer_id,
            request_id=body.request_id,
            config=ctx.config,
            samples_dir=ctx.samples_dir,
        )
        return MailOut.model_validate(mail)
