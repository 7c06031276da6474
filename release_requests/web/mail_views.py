"""The support mailbox in the console: what reached it and what became of each message, one message read
safely, and the duty manager's form to file a held (or ignored) message for a customer or add it to a request
— what `relreq intake list|show|assign` does, in the browser.

Thin like the API's handlers: `workflows.mail_intake` decides every rule. A message is outsiders' text: the
subject, sender and reason are escaped like everything else, the body is shown as its text part in a <pre>
(never its HTML), and the original is only a download, with the API's own headers (`eml_download`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import Depends, Form, Request
from pydantic import ValidationError

from release_requests import access
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.api.intake_views import eml_download
from release_requests.customers.models import Customer
from release_requests.customers.service import customers_for
from release_requests.errors import Conflict, InvalidInput, NotFound
from release_requests.mail.models import OUTCOMES
from release_requests.mail.schemas import MailAssign
from release_requests.people.models import Person
from release_requests.web.i18n import translate
from release_requests.web.rendering import render
from release_requests.web.session import Viewer, back_to, checked, viewer, web_router
from release_requests.workflows import mail_intake

router = web_router()
LIMIT = 200  # messages on the list at once, newest first

# Words for the stored outcomes and the form's refusals (translated in translations/mail.toml)
OUTCOME_LABELS = {
    "filed": "Filed as a new request",
    "threaded": "Added to a request",
    "answered": "Answered a question",
    "held": "Held",
    "ignored": "Ignored",
    "assigned": "Assigned by hand",
}
MESSAGES = {
    "target": "Choose what to do with the message.",
    "customer_id": "Choose the customer.",
    "request_id": "Give the id of the request, such as {example}.",
    "no_request": "There is no request {id}.",
}
AUTH_METHODS = ("spf", "dkim", "dmarc")


def _(me: Viewer, text: str, **params: object) -> str:
    return translate(me.language, text, **params)


def _example(ctx: AppContext) -> str:
    """A request id as this installation writes them, for the form's hint and its refusal."""
    return f"{ctx.config.intake.requests.id_prefix}-{date.today().year}-000123"


@router.get("/mail", openapi_extra=needs("mail.read"))
def mailbox_page(
    request: Request,
    outcome: Literal["all", "filed", "threaded", "answered", "held", "ignored", "assigned"] = "held",
    me: Viewer = Depends(viewer),
    ctx: AppContext = Depends(context),
):
    with ctx.unit_of_work() as session:
        messages = mail_intake.list_mail(
            session, actor=me.person, outcome=None if outcome == "all" else outcome, limit=LIMIT
        )
    return render(
        request,
        "mailbox.html",
        viewer=me,
        messages=messages,
        outcome=outcome,
        outcomes=OUTCOMES,
        labels=OUTCOME_LABELS,
        limit=LIMIT,
    )


def _mail_page(
    request: Request,
    me: Viewer,
    ctx: AppContext,
    mail_id: int,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
):
    with ctx.unit_of_work() as session:
        mail = mail_intake.read_mail(session, actor=me.person, mail_id=mail_id)
        detail = mail_intake.describe(mail, config=ctx.config)
        customer = session.get(Customer, mail.customer_id) if mail.customer_id else None
        assigned_by = session.get(Person, mail.assigned_by_id) if mail.assigned_by_id else None
        can_assign = mail.outcome in ("held", "ignored") and access.allows(me.person, "mail.assign")
        customers = [(c.id, c.name) for c in customers_for(session, actor=me.person)] if can_assign else []
    return render(
        request,
        "mail.html",
        viewer=me,
        status_code=status_code,
        mail=detail,
        customer=customer,
        assigned_by=assigned_by,
        labels=OUTCOME_LABELS,
        methods=AUTH_METHODS,
        can_assign=can_assign,
        customers=customers,
        example=_example(ctx),
        values=values or {"target": "customer", "customer_id": mail.customer_id or ""},
        errors=errors or {},
    )


@router.get("/mail/{mail_id}", openapi_extra=needs("mail.read"))
def mail_page(request: Request, mail_id: int, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)):
    return _mail_page(request, me, ctx, mail_id)


@router.get("/mail/{mail_id}/raw", openapi_extra=needs("mail.read"))
def mail_download(mail_id: int, me: Viewer = Depends(viewer), ctx: AppContext = Depends(context)):
    """The original as it arrived, a file to save (never shown): the API's own download."""
    with ctx.unit_of_work() as session:
        raw = mail_intake.read_mail(session, actor=me.person, mail_id=mail_id).raw
    return eml_download(mail_id, raw)


@router.post("/mail/{mail_id}/assign", openapi_extra=needs("mail.assign"))
def assign(
    request: Request,
    mail_id: int,
    target: Annotated[str, Form(max_length=20)] = "",
    customer_id: Annotated[str, Form(max_length=40)] = "",
    request_id: Annotated[str, Form(max_length=40)] = "",
    me: Viewer = Depends(checked),
    ctx: AppContext = Depends(context),
):
    """File the message for the customer chosen, or add it to the request named: the radio button says which,
    so only that field is sent on (exactly one, as the service wants)."""
    access.authorize(me.person, "mail.assign")  # who may not assign learns that, not what the form lacks
    values = {"target": target, "customer_id": customer_id, "request_id": request_id}

    def again(errors: dict[str, str], status_code: int):
        return _mail_page(request, me, ctx, mail_id, values=values, errors=errors, status_code=status_code)

    if target not in ("customer", "request"):
        return again({"target": _(me, MESSAGES["target"])}, 422)
    chosen = {"customer_id": customer_id} if target == "customer" else {"request_id": request_id.strip().upper()}
    try:
        data = MailAssign(**{name: value or None for name, value in chosen.items()})
    except ValidationError:
        field = next(iter(chosen))
        return again({field: _(me, MESSAGES[field], example=_example(ctx))}, 422)
    try:
        with ctx.unit_of_work() as session:
            mail = mail_intake.assign_mail(
                session,
                actor=me.person,
                mail_id=mail_id,
                customer_id=data.customer_id,
                request_id=data.request_id,
                config=ctx.config,
                samples_dir=ctx.samples_dir,
            )
            filed_to = mail.request_id
    except NotFound:
        if data.request_id is None:
            raise
        # the request is not there (or not the viewer's to see); were the message gone, the page says 404
        return again({"request_id": _(me, MESSAGES["no_request"], id=data.request_id)}, 404)
    except (InvalidInput, Conflict) as exc:
        field = str(exc.details.get("field") or "")
        return again({field if field in chosen else "form": exc.message}, 422 if isinstance(exc, InvalidInput) else 409)
    if target == "customer":
        return back_to(f"/requests/{filed_to}", "The message is filed as a new request.")
    return back_to(f"/requests/{filed_to}", "The message is added to the request.")
