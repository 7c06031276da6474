"""`relreq report prefs|digest|note|notes`: what a customer receives, your own digest, the TAM's notes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from release_requests.cli.client import api_call
from release_requests.cli.output import CliError, fields, local_time, print_json, table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
report_prefs_app = typer.Typer(
    help="What a customer's regular report and daily digest look like.", no_args_is_help=True
)


def _prefs_path(customer: str) -> str:
    return f"/api/v1/customers/{customer}/report-preferences"


def _show_prefs(p: dict) -> None:
    fields(
        f"Report preferences of {p['customer_id']}",
        [
            ("report", f"{p['frequency']}, {p['format']}" if p["frequency"] != "none" else "none"),
            ("sections", ", ".join(p["sections"])),
            ("recipients", ", ".join(p["effective_recipients"]) or "none (no contacts)"),
            ("recipients override", ", ".join(p["recipients"]) or "— (the customer's contacts)"),
            ("language", f"{p['effective_language']}{'' if p['language'] else ' (notification default)'}"),
            (
                "daily digest",
                f"at {p['digest_at']} {p['timezone']}{', also in Slack' if p['digest_slack'] else ''}"
                if p["digest_enabled"]
                else "off",
            ),
            ("updated", local_time(p["updated_at"])),
        ],
    )


@report_prefs_app.command("show")
def prefs_show(customer: Annotated[str, typer.Argument(help="Customer id.")], json_out: JsonFlag = False) -> None:
    """Show a customer's report preferences."""
    p = api_call("GET", _prefs_path(customer))
    print_json(p) if json_out else _show_prefs(p)


@report_prefs_app.command("set")
def prefs_set(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    frequency: Annotated[str | None, typer.Option(help="weekly | monthly | quarterly | none.")] = None,
    report_format: Annotated[str | None, typer.Option("--format", help="pdf | html | csv.")] = None,
    section: Annotated[
        list[str] | None,
        typer.Option(
            help="Section to include (repeatable; replaces the list): summary, sla, response_times, "
            "breaches, releases, healthcheck, notes."
        ),
    ] = None,
    recipient: Annotated[
        list[str] | None, typer.Option(help="E-mail recipient (repeatable; replaces the list).")
    ] = None,
    contacts: Annotated[
        bool, typer.Option("--contacts", help="Send to the customer's contacts (drop the recipients override).")
    ] = False,
    language: Annotated[str | None, typer.Option(help="en | ru, or 'default'.")] = None,
    digest: Annotated[bool | None, typer.Option("--digest/--no-digest", help="The daily critical digest.")] = None,
    digest_at: Annotated[str | None, typer.Option(help="HH:MM in the customer's zone.")] = None,
    digest_slack: Annotated[
        bool | None, typer.Option("--digest-slack/--no-digest-slack", help="Also post the digest to their channel.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change some report preferences; the others keep their current values."""
    current = api_call("GET", _prefs_path(customer))
    names = ("recipients", "frequency", "sections", "language", "format", "digest_enabled", "digest_at", "digest_slack")
    body = {k: current[k] for k in names}
    changes = {
        "frequency": frequency,
        "format": report_format,
        "sections": section or None,
        "recipients": [] if contacts else (recipient or None),
        "language": None if language == "default" else language,
        "digest_enabled": digest,
        "digest_at": digest_at,
        "digest_slack": digest_slack,
    }
    body |= {k: v for k, v in changes.items() if v is not None}
    if language == "default":
        body["language"] = None
    p = api_call("PUT", _prefs_path(customer), json=body)
    print_json(p) if json_out else _show_prefs(p)


def digest(
    send_at: Annotated[str | None, typer.Option("--at", help="HH:MM in your own zone.")] = None,
    enabled: Annotated[bool | None, typer.Option("--on/--off", help="Receive the daily digest or not.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Show or change when you receive the daily critical digest (by e-mail, in your own zone)."""
    path = "/api/v1/reports/digest/subscription"
    current = api_call("GET", path)
    if send_at is not None or enabled is not None:
        body = {"enabled": current["enabled"] if enabled is None else enabled, "send_at": send_at or current["send_at"]}
        current = api_call("PUT", path, json=body)
    if json_out:
        print_json(current)
        return
    state = f"every day at {current['send_at']} {current['timezone']}" if current["enabled"] else "off"
    fields(
        "Your daily digest",
        [("digest", state), ("setting", "default for your role" if current["default"] else "yours")],
    )


def _period(quarter: str | None, start: str | None, end: str | None) -> dict:
    """The period options as the API takes them (it checks them and names what is wrong)."""
    return {k: v for k, v in (("quarter", quarter), ("from", start), ("to", end)) if v is not None}


def note(
    customer: Annotated[str, typer.Option(help="Customer id.")],
    quarter: Annotated[str | None, typer.Option(help="The quarter the note is about, e.g. 2026Q4.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (YYYY-MM-DD).")] = None,
    text: Annotated[str | None, typer.Option(help="The note.")] = None,
    file: Annotated[Path | None, typer.Option(help="Read the note from this file ('-' for stdin).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Add the TAM's note to a customer's report of a period (notes are added, never edited)."""
    if (text is None) == (file is None):
        raise CliError("give the note with exactly one of --text or --file")
    if file is not None:
        try:
            text = typer.get_text_stream("stdin").read() if str(file) == "-" else file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--file: cannot read {file}: {exc}") from None
    period = _period(quarter, start, end)
    if not period:
        raise CliError("give --quarter, or --from and --to")
    body = {"customer_id": customer, "body": text} | {
        {"from": "period_start", "to": "period_end"}.get(k, k): v for k, v in period.items()
    }
    created = api_call("POST", "/api/v1/reports/notes", json=body)
    if json_out:
        print_json(created)
    else:
        span = f"{created['period_start']}..{created['period_end']}"
        print(f"note {created['id']} added to {customer}'s report for {span}")


def notes(
    customer: Annotated[str, typer.Option(help="Customer id.")],
    quarter: Annotated[str | None, typer.Option(help="Only notes about this quarter, e.g. 2026Q4.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Only notes about days from (YYYY-MM-DD)…")] = None,
    end: Annotated[str | None, typer.Option("--to", help="…to (YYYY-MM-DD).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """The TAM's notes for a customer (those about one period with --quarter, or --from and --to)."""
    params = {"customer_id": customer} | _period(quarter, start, end)
    rows = api_call("GET", "/api/v1/reports/notes", params=params)
    if json_out:
        print_json(rows)
        return
    table(
        f"Notes for {customer}",
        ["id", "period", "author", "written", "note"],
        [
            [n["id"], f"{n['period_start']}..{n['period_end']}", n["author"], local_time(n["created_at"]), n["body"]]
            for n in rows
        ],
    )
