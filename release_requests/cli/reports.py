"""`relreq report daily` and `relreq report customer` (over the API): the daily critical digest and a customer's
report, as a readable summary, JSON, or the rendered HTML, PDF, CSV or text."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from release_requests.cli.client import api_call
from release_requests.cli.output import attachment_name, console, fields, local_time, print_json, table

report_app = typer.Typer(help="Reports: the daily critical digest and a customer's report.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (same as --format json).")]
At = Annotated[str | None, typer.Option(help="As of this time, ISO 8601 with zone (default: now).")]


class DigestFormat(StrEnum):
    text = "text"
    html = "html"
    json = "json"


class ReportFormat(StrEnum):
    html = "html"
    pdf = "pdf"
    csv = "csv"
    json = "json"


@report_app.command("daily")
def daily(
    at: At = None,
    format: Annotated[DigestFormat, typer.Option("--format", help="text, html or json.")] = DigestFormat.text,
    json_out: JsonFlag = False,
) -> None:
    """Severity 1–2 requests open or changed in the last 24 h (your customers; staff: every customer you see)."""
    chosen = DigestFormat.json if json_out else format
    params = {"format": chosen.value, **({"at": at} if at else {})}
    if chosen == DigestFormat.json:
        print_json(api_call("GET", "/api/v1/reports/daily", params=params))
        return
    sys.stdout.write(api_call("GET", "/api/v1/reports/daily", params=params, raw=True).text)


@report_app.command("customer")
def customer(
    customer_id: Annotated[str, typer.Option("--customer", help="Customer id.")],
    quarter: Annotated[str | None, typer.Option(help="A quarter, e.g. 2026Q4 (or --from and --to).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (the customer's zone).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD, inclusive.")] = None,
    format: Annotated[
        ReportFormat | None, typer.Option("--format", help="html, pdf, csv or json [default: a summary].")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write to this file (PDF default: report-<customer>-<period>.pdf).")
    ] = None,
    language: Annotated[str | None, typer.Option(help="en or ru [default: yours, else the customer's].")] = None,
    as_of: At = None,
    json_out: JsonFlag = False,
) -> None:
    """A customer's report for a quarter or any run of days: SLA attainment, first responses, breaches and their
    reasons, releases delivered, Health Checks, the TAM's notes."""
    chosen = ReportFormat.json if json_out else format
    params = {
        "customer_id": customer_id,
        "format": (chosen or ReportFormat.json).value,
        **{k: v for k, v in {"quarter": quarter, "from": start, "to": end, "language": language}.items() if v},
        **({"as_of": as_of} if as_of else {}),
    }
    response = api_call("GET", "/api/v1/reports/customer", params=params, raw=True)
    if chosen is None:
        _summary(response.json())
    elif chosen == ReportFormat.pdf:
        path = out or Path(attachment_name(response.headers.get("content-disposition", "")))
        path.write_bytes(response.content)
        console.print(f"wrote {path.resolve()} ({len(response.content)} bytes)")
    elif out is not None:
        out.write_bytes(response.content)
        console.print(f"wrote {out.resolve()} ({len(response.content)} bytes)")
    elif chosen == ReportFormat.json:
        print_json(response.json())
    else:
        sys.stdout.write(response.text)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"


def _minutes(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} min"


def _summary(report: dict) -> None:
    period = report["period"]
    fields(
        f"{report['customer_name']} ({report['customer_id']}), {period['label']}",
        [
            ("period", f"{period['start']} – {period['end']} ({report['timezone']})"),
            ("as of", local_time(report["as_of"])),
            ("requests", report["requests_total"]),
            ("by severity", ", ".join(f"{k}: {v}" for k, v in report["by_severity"].items())),
            ("by kind", ", ".join(f"{k}: {v}" for k, v in report["by_kind"].items())),
            (
                "SLA",
                f"{report['sla_met']} met, {report['sla_breached']} breached, {report['sla_withdrawn']} withdrawn "
                f"before an answer, {report['sla_running']} still running",
            ),
            ("attainment", _pct(report["sla_attainment_pct"])),
            (
                "first response",
                f"p50 {_minutes(report['first_response_p50_minutes'])}, "
                f"p90 {_minutes(report['first_response_p90_minutes'])}",
            ),
        ],
    )
    table(
        "SLA per severity",
        ["severity", "target", "met", "breached", "withdrawn", "running", "attainment"],
        [
            [
                f"{s['severity']} {s['label']}",
                f"{s['target_minutes']} min {s['clock']}",
                s["met"],
                s["breached"],
                s["withdrawn"],
                s["running"],
                _pct(s["attainment_pct"]),
            ]
            for s in report["sla_by_severity"]
        ],
    )
    if report["breaches"]:
        table(
            f"Breaches ({len(report['breaches'])})",
            ["request", "severity", "due", "responded", "reason"],
            [
                [b["request_id"], b["severity"], local_time(b["due_at"]), local_time(b["responded_at"]), b["reason"]]
                for b in report["breaches"]
            ],
        )
    if report["releases"]:
        table(
            f"Releases delivered ({len(report['releases'])})",
            ["request", "kind", "version", "channel", "accepted", "delivered", "hours"],
            [
                [
                    r["request_id"],
                    r["kind"],
                    r["version"],
                    r["channel"],
                    local_time(r["accepted_at"]),
                    local_time(r["delivered_at"]),
                    r["hours_to_deliver"],
                ]
                for r in report["releases"]
            ],
        )
    for check in report["healthchecks"]:
        found = f"{check['findings']} findings"
        line = f"Health Check {check['scheduled_on']}: {check['status']}, {found} (engineer {check['engineer']})"
        console.print(line, markup=False, highlight=False)
    for note in report["notes"]:
        author = f"Note by {note['author']} ({note['period_start']} – {note['period_end']})"
        console.print(f"{author}: {note['body']}", markup=False, highlight=False)
