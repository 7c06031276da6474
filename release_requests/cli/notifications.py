"""`relreq notifications …`: customer preferences and the outbox, over the API like every working command."""

from __future__ import annotations

from typing import Annotated

import typer

from release_requests.cli.client import api_call
from release_requests.cli.output import console, fields, local_time, print_json, table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

notifications_app = typer.Typer(help="Slack and e-mail notices: preferences, outbox, retries.", no_args_is_help=True)
prefs_app = typer.Typer(help="How a customer wants to hear from us.", no_args_is_help=True)
notifications_app.add_typer(prefs_app, name="prefs")


def _prefs_path(customer: str) -> str:
    return f"/api/v1/customers/{customer}/notification-preferences"


def _show_prefs(p: dict) -> None:
    fields(
        f"Notification preferences of {p['customer_id']}",
        [
            ("slack", f"{'on' if p['slack_enabled'] else 'off'} ({p['slack_channel'] or 'no channel'})"),
            ("e-mail", "on" if p["email_enabled"] else "off"),
            ("recipients", ", ".join(p["effective_email_recipients"])),
            ("recipients override", ", ".join(p["email_recipients"]) or "— (customer's contacts)"),
            ("language", f"{p['effective_language']}{'' if p['language'] else ' (customer default)'}"),
            ("quiet hours", f"{p['quiet_hours']} (severity 3–4 wait)" if p["quiet_hours"] else None),
            ("updated", local_time(p["updated_at"])),
        ],
    )


@prefs_app.command("show")
def prefs_show(customer: Annotated[str, typer.Argument(help="Customer id.")], json_out: JsonFlag = False) -> None:
    """Show a customer's notification preferences."""
    p = api_call("GET", _prefs_path(customer))
    print_json(p) if json_out else _show_prefs(p)


@prefs_app.command("set")
def prefs_set(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    slack: Annotated[bool | None, typer.Option("--slack/--no-slack", help="Notices in the shared channel.")] = None,
    email: Annotated[bool | None, typer.Option("--email/--no-email", help="Notices by e-mail.")] = None,
    recipient: Annotated[
        list[str] | None, typer.Option(help="E-mail recipient (repeatable); replaces the list.")
    ] = None,
    contacts: Annotated[
        bool, typer.Option("--contacts", help="Send e-mail to the customer's contacts (drop the override).")
    ] = False,
    language: Annotated[str | None, typer.Option(help="en | ru, or 'default' for the customer's own.")] = None,
    quiet_hours: Annotated[
        str | None, typer.Option(help="HH:MM-HH:MM in the customer's zone, or 'off'; severity 3–4 notices wait.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change some preferences; the others keep their current values."""
    current = api_call("GET", _prefs_path(customer))
    body = {k: current[k] for k in ("slack_enabled", "email_enabled", "email_recipients", "language", "quiet_hours")}
    if slack is not None:
        body["slack_enabled"] = slack
    if email is not None:
        body["email_enabled"] = email
    if recipient:
        body["email_recipients"] = recipient
    if contacts:
        body["email_recipients"] = []
    if language is not None:
        body["language"] = None if language == "default" else language
    if quiet_hours is not None:
        body["quiet_hours"] = None if quiet_hours == "off" else quiet_hours
    p = api_call("PUT", _prefs_path(customer), json=body)
    print_json(p) if json_out else _show_prefs(p)


@notifications_app.command("list")
def list_notifications(
    request: Annotated[str | None, typer.Option(help="Only notices about this request.")] = None,
    status: Annotated[str | None, typer.Option(help="queued | sending | sent | failed | dead | skipped.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    json_out: JsonFlag = False,
) -> None:
    """List outbox rows (staff)."""
    params = {k: v for k, v in {"request_id": request, "status": status, "limit": limit}.items() if v is not None}
    rows = api_call("GET", "/api/v1/notifications", params=params)
    if json_out:
        print_json(rows)
        return
    table(
        f"Notifications ({len(rows)})",
        ["id", "request", "event", "to", "status", "tries", "next / sent", "error"],
        [
            [
                n["id"],
                n["request_id"],
                n["event"],
                f"{n['channel']}:{n['recipient']}",
                n["status"],
                n["attempts"],
                local_time(n["sent_at"] or n["next_attempt_at"]),
                (n["last_error"] or "")[:80],
            ]
            for n in rows
        ],
    )


@notifications_app.command("retry")
def retry(notification_id: Annotated[str, typer.Argument(help="Notification id.")], json_out: JsonFlag = False) -> None:
    """Queue a dead (or failing) notice again with fresh attempts (admin, duty manager)."""
    n = api_call("POST", f"/api/v1/notifications/{notification_id}/retry")
    print_json(n) if json_out else console.print(f"{n['id']}: {n['status']}")
