"""`relreq intake`: e-mail intake from a mail system's pipe (local), and the support mailbox (through the API)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from release_requests.cli.client import api_call
from release_requests.cli.output import CliError, console, fields, local_time, print_json, table

intake_app = typer.Typer(
    help="E-mail intake: file a raw message, read and assign the support mailbox.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
EX_TEMPFAIL = 75  # sysexits.h: a mail system's pipe keeps the message and tries again later


@intake_app.command("email")
def email(
    source: Annotated[
        str, typer.Argument(metavar="[FILE.eml | -]", help="The raw RFC 822 message; '-' (default) reads stdin.")
    ] = "-",
    json_out: JsonFlag = False,
) -> None:
    """File one raw e-mail message exactly as the mailbox poller would (local: opens the database).

    For other mail systems' pipes (e.g. Postfix `pipe`, procmail, fetchmail's `--mda`). Prints what became of
    it: filed (with the request id), threaded, answered, held, ignored, or a duplicate of a message read
    before. Exit 0 whenever the outcome was recorded, held and ignored included; exit 75 (EX_TEMPFAIL) when
    nothing could be recorded, so the mail system keeps the message and tries again."""
    if source == "-":
        raw = sys.stdin.buffer.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise CliError(f"{source} is not a readable file")
        raw = path.read_bytes()
    if not raw:
        raise CliError("the message is empty")
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.config import load_config
    from release_requests.runtime import local_session
    from release_requests.settings import get_settings
    from release_requests.workflows.mail_intake import ingest

    settings = get_settings()
    try:
        config = load_config(settings.config_dir)
        with local_session() as session:
            result = ingest(
                session, raw=raw, source="pipe", received_at=None, config=config, samples_dir=settings.samples_dir
            )
    except Exception as exc:  # nothing was recorded (the transaction rolled back): the pipe must retry
        raise CliError(f"not recorded ({type(exc).__name__}: {exc})", exit_code=EX_TEMPFAIL) from None
    out = {
        "mail_id": result.mail_id,
        "outcome": result.outcome,
        "reason": result.reason,
        "request_id": result.request_id,
        "duplicate": result.duplicate,
    }
    if json_out:
        print_json(out)
        return
    seen = " (a duplicate: read before, nothing done again)" if result.duplicate else ""
    target = f" {result.request_id}" if result.request_id else ""
    console.print(f"mail {result.mail_id}: {result.outcome}{target}{seen}", markup=False)
    console.print(result.reason, markup=False)


@intake_app.command("list")
def list_mail(
    outcome: Annotated[
        str | None,
        typer.Option(help="Only this outcome: filed | threaded | answered | held | ignored | assigned."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """The support mailbox, newest first; `--outcome held` is what waits for a duty manager."""
    params = {"limit": limit, **({"outcome": outcome} if outcome else {})}
    rows = api_call("GET", "/api/v1/intake/mail", params=params)
    if json_out:
        print_json(rows)
        return
    table(
        "Support mailbox",
        ["id", "received", "from", "subject", "outcome", "request", "reason"],
        [
            [
                m["id"],
                local_time(m["received_at"]),
                m["sender"],
                m["subject"][:60],
                m["outcome"],
                m["request_id"],
                m["reason"].splitlines()[0][:80] if m["reason"] else "",
            ]
            for m in rows
        ],
    )


@intake_app.command("show")
def show_mail(
    mail_id: Annotated[int, typer.Argument(help="The message's id (from `relreq intake list`).")],
    json_out: JsonFlag = False,
) -> None:
    """One message: what became of it and why, who sent it, what the receiving server said, its text."""
    mail = api_call("GET", f"/api/v1/intake/mail/{mail_id}")
    if json_out:
        print_json(mail)
        return
    auth = mail["authentication"] or {}
    fields(
        f"Mail {mail['id']}",
        [
            ("received", local_time(mail["received_at"])),
            ("via", mail["source"]),
            ("from", f"{mail['sender_name'] or ''} <{mail['sender'] or '?'}>".strip()),
            ("subject", mail["subject"]),
            ("message-id", mail["message_id"]),
            ("size", f"{mail['size']} bytes"),
            ("outcome", mail["outcome"]),
            ("request", mail["request_id"]),
            ("customer", mail["customer_id"]),
            ("reason", mail["reason"]),
            ("authentication", " ".join(f"{k}={auth.get(k)}" for k in ("authserv_id", "spf", "dkim", "dmarc"))),
            ("machine-written", mail["noise"]),
            ("attachments", ", ".join(f"{a['filename'] or '(unnamed)'} ({a['size']} B)" for a in mail["attachments"])),
            ("defects", ", ".join(mail["defects"])),
        ],
    )
    console.print(mail["text"], markup=False, highlight=False)


@intake_app.command("assign")
def assign(
    mail_id: Annotated[int, typer.Argument(help="The held (or ignored) message's id.")],
    customer: Annotated[str | None, typer.Option(help="File it as a new request of this customer.")] = None,
    request: Annotated[
        str | None, typer.Option(help="Add it to this request (RR-…) as the customer's message.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """File a held message for a customer (`--customer`), or add it to a request (`--request`): exactly one."""
    if (customer is None) == (request is None):
        raise CliError("give exactly one of --customer and --request")
    body = {"customer_id": customer} if customer else {"request_id": request}
    mail = api_call("POST", f"/api/v1/intake/mail/{mail_id}/assign", json=body)
    if json_out:
        print_json(mail)
        return
    console.print(f"mail {mail['id']}: assigned to {mail['request_id']}", markup=False)
