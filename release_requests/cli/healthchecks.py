"""`relreq healthcheck`: book the yearly Health Check, move it through its life, record findings, get the report
(API clients). Ids are shown as HC-12 and accepted as HC-12 or 12."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from release_requests.cli.client import api_call
from release_requests.cli.output import CliError, attachment_name, console, fields, local_time, print_json, table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Ref = Annotated[str, typer.Argument(help="Health Check id: HC-12 or 12.")]
healthcheck_app = typer.Typer(
    help="The yearly Health Check: booking, life cycle, findings, report.", no_args_is_help=True
)

FINDING_FIELDS = ("product", "area", "setting", "found", "severity", "recommendation")
COLUMNS = ["id", "customer", "date", "engineer", "status", "certificate year", "findings"]


def _path(ref: str) -> str:
    """The API path of a Health Check; the API reads HC-12 and 12 alike."""
    return f"/api/v1/healthchecks/{ref.strip()}"


def _year(hc: dict) -> str:
    return f"{hc['certificate_year_start']}..{hc['certificate_year_end'] or '(open-ended)'}"


def _row(hc: dict) -> list:
    return [
        hc["label"],
        hc["customer"],
        f"{hc['scheduled_on']} ({hc['timezone']})",
        hc["engineer"],
        hc["status"],
        _year(hc),
        hc["findings"],
    ]


def _say(hc: dict, what: str, json_out: bool) -> None:
    if json_out:
        print_json(hc)
    else:
        console.print(
            f"{hc['label']} {what}: {hc['customer']} on {hc['scheduled_on']} ({hc['timezone']}), {hc['status']}"
        )


@healthcheck_app.command("book")
def book(
    customer: Annotated[str, typer.Option(help="Customer id.")],
    date: Annotated[str, typer.Option(help="The day, YYYY-MM-DD: a business day of the customer, 14+ days ahead.")],
    engineer: Annotated[str, typer.Option(help="The engineer's e-mail or person id.")],
    json_out: JsonFlag = False,
) -> None:
    """Book a Health Check (one per certificate year); the customer, their TAMs and the engineer are told."""
    hc = api_call("POST", "/api/v1/healthchecks", json={"customer_id": customer, "date": date, "engineer": engineer})
    _say(hc, f"booked, engineer {hc['engineer']}, certificate year {_year(hc)}", json_out)


@healthcheck_app.command("list")
def list_healthchecks(
    customer: Annotated[str | None, typer.Option(help="Only this customer's.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Health Checks you can see, latest date first."""
    items = api_call("GET", "/api/v1/healthchecks", params={"customer_id": customer} if customer else {})
    if json_out:
        print_json(items)
        return
    table(f"Health Checks ({len(items)})", COLUMNS, [_row(hc) for hc in items])


@healthcheck_app.command("show")
def show(ref: Ref, json_out: JsonFlag = False) -> None:
    """One Health Check and its findings."""
    hc = api_call("GET", _path(ref))
    items = api_call("GET", f"{_path(ref)}/findings")
    if json_out:
        print_json({**hc, "findings": items})
        return
    fields(
        f"Health Check {hc['label']}",
        [
            ("customer", f"{hc['customer']} ({hc['customer_id']})"),
            ("date", f"{hc['scheduled_on']} ({hc['timezone']})"),
            ("engineer", hc["engineer"]),
            ("status", hc["status"]),
            ("certificate year", _year(hc)),
            ("booked", f"{local_time(hc['booked_at'])} by {hc['booked_by']}"),
            ("version", hc["version"]),
        ],
    )
    if items:
        table(
            f"Findings ({len(items)})",
            ["severity", "product", "area", "setting", "found", "recommendation"],
            [[f["severity"], f["product"], f["area"], f["setting"], f["found"], f["recommendation"]] for f in items],
        )


def _transition(action: str, ref: str, json_out: bool) -> None:
    hc = api_call("POST", f"{_path(ref)}/{action}", json={})
    _say(hc, {"confirm": "confirmed", "start": "started", "deliver": "report delivered"}[action], json_out)


@healthcheck_app.command("confirm")
def confirm(ref: Ref, json_out: JsonFlag = False) -> None:
    """Record that the customer agreed the date."""
    _transition("confirm", ref, json_out)


@healthcheck_app.command("start")
def start(ref: Ref, json_out: JsonFlag = False) -> None:
    """Begin the audit (on its day or later)."""
    _transition("start", ref, json_out)


@healthcheck_app.command("deliver")
def deliver(ref: Ref, json_out: JsonFlag = False) -> None:
    """E-mail the report, PDF attached, to the customer's contacts."""
    _transition("deliver", ref, json_out)


@healthcheck_app.command("reschedule")
def reschedule(
    ref: Ref,
    reason: Annotated[str, typer.Option(help="Why (told to the customer, kept in the audit log).")],
    date: Annotated[str | None, typer.Option(help="The new day, YYYY-MM-DD.")] = None,
    engineer: Annotated[str | None, typer.Option(help="The new engineer's e-mail or id.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Move a Health Check to another day and/or engineer, under the booking rules; it waits for confirmation."""
    if date is None and engineer is None:
        raise CliError("give --date, --engineer, or both")
    body = {"reason": reason, **({"date": date} if date else {}), **({"engineer": engineer} if engineer else {})}
    hc = api_call("POST", f"{_path(ref)}/reschedule", json=body)
    _say(hc, f"rescheduled, engineer {hc['engineer']}", json_out)


@healthcheck_app.command("cancel")
def cancel(
    ref: Ref,
    reason: Annotated[str, typer.Option(help="Why (told to the customer, kept in the audit log).")],
    json_out: JsonFlag = False,
) -> None:
    """Cancel a Health Check; its certificate year is free for another booking."""
    _say(api_call("POST", f"{_path(ref)}/cancel", json={"reason": reason}), "cancelled", json_out)


def read_findings(path: Path) -> list:
    """A findings file as a list of rows: JSON (a list of objects) or CSV (a header row naming the fields), by
    its extension. Rows are checked by the API, which names the first bad one."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--file: cannot read {path}: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"--file: {path} is not valid JSON ({exc})") from None
        if not isinstance(rows, list):
            raise CliError(f"--file: {path} must hold a JSON list of findings")
        return rows
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [name for name in FINDING_FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise CliError(f"--file: the CSV header lacks {', '.join(missing)} (needs: {', '.join(FINDING_FIELDS)})")
        rows = []
        for number, row in enumerate(reader, start=1):
            if None in row:
                raise CliError(f"--file: finding row {number}: more cells than the header has columns")
            rows.append(row)
        return rows
    raise CliError(f"--file: {path.name}: give a .json or .csv file")


@healthcheck_app.command("findings")
def findings(
    ref: Ref,
    file: Annotated[Path, typer.Option("--file", help="Findings: .json (a list of objects) or .csv (with a header).")],
    json_out: JsonFlag = False,
) -> None:
    """Record the findings of a Health Check from a file: all rows or none (the first bad row is named)."""
    hc = api_call("POST", f"{_path(ref)}/findings", json=read_findings(file))
    _say(hc, f"has {hc['findings']} findings", json_out)


@healthcheck_app.command("report")
def report(
    ref: Ref,
    fmt: Annotated[str, typer.Option("--format", help="html | pdf.")] = "html",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here (default: HTML to stdout, PDF to HC-N.pdf).")
    ] = None,
) -> None:
    """The Health Check's report (nonconformities and recommendations) in the customer's language."""
    if fmt not in ("html", "pdf"):
        raise CliError(f"--format: '{fmt}' is not one of html, pdf")
    response = api_call("GET", f"{_path(ref)}/report", params={"format": fmt}, raw=True)
    if out is None and fmt == "html":
        sys.stdout.write(response.text)
        return
    target = out or Path(attachment_name(response.headers.get("content-disposition", "")))
    target.write_bytes(response.content)
    console.print(f"wrote {target} ({len(response.content)} bytes)")
