"""SLA, queue, duty rotation and leave commands (API clients)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from release_requests.cli.client import api_call
from release_requests.cli.output import CliError, console, fields, local_time, print_json, table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
sla_app = typer.Typer(help="Response-time (SLA) tools.", no_args_is_help=True)
duty_app = typer.Typer(help="The on-duty MSA manager rotation.", no_args_is_help=True)
leave_app = typer.Typer(help="People's leave (routing skips people on leave).", no_args_is_help=True)


def _aware(value: str | None, option: str) -> str | None:
    """ISO 8601 with an explicit zone: a time without one is ambiguous across the customer's and ours."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: '{value}' is not an ISO 8601 time (e.g. 2026-11-28T03:00+03:00)") from None
    if parsed.tzinfo is None:
        raise CliError(f"{option}: '{value}' has no time zone; add one, e.g. +03:00 or Z")
    return parsed.isoformat()


def sla_text(sla: dict | None) -> str:
    """'at_risk — due 2026-11-28 03:30 MSK, 12 min left' for tables and `show`."""
    if not sla:
        return "—"
    if sla["state"] == "met":
        return f"met at {local_time(sla['met_at'])}"
    if sla["paused"]:
        return f"{sla['state']} — paused (waiting for the customer)"
    left = sla["remaining_seconds"]
    rest = f"{left // 60} min left" if left is not None else f"{(sla['overdue_seconds'] or 0) // 60} min overdue"
    return f"{sla['state']} — due {local_time(sla['due_at'])}, {rest}"


@sla_app.command("due")
def sla_due(
    customer: Annotated[str, typer.Option(help="Customer id.")],
    severity: Annotated[int, typer.Option(help="1 critical, 2 high, 3 medium, 4 low.")],
    at: Annotated[str | None, typer.Option(help="Filing time, ISO 8601 with zone (default: now).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """When a request filed at --at is due: in the customer's zone and in UTC."""
    params = {"customer_id": customer, "severity": severity}
    if at:
        params["at"] = _aware(at, "--at")
    due = api_call("GET", "/api/v1/sla/due", params=params)
    if json_out:
        print_json(due)
        return
    utc = datetime.fromisoformat(due["due_at"]).strftime("%Y-%m-%d %H:%M UTC")
    fields(
        f"Severity {severity} for {customer}",
        [
            ("customer time", f"{due['due_at_local']} ({due['timezone']})"),
            ("UTC", utc),
            ("target", f"{due['target_minutes']} min, {due['clock']} clock"),
            ("filed", local_time(due["filed_at"])),
        ],
    )


def queue(json_out: JsonFlag = False) -> None:
    """Open work in the order to take it: breached, severity, Enterprise first, due time."""
    items = api_call("GET", "/api/v1/queue")
    if json_out:
        print_json(items)
        return
    table(
        f"Queue ({len(items)})",
        ["#", "id", "customer", "severity", "status", "SLA", "owner", "title"],
        [
            [i + 1, r["id"], r["customer_id"], r["severity"], r["status"], sla_text(r["sla"]), r["owner"], r["title"]]
            for i, r in enumerate(items)
        ],
    )


def respond(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    message: Annotated[str, typer.Option(help="The answer the customer receives.")],
    json_out: JsonFlag = False,
) -> None:
    """Send the customer a qualified response (meets the SLA clock)."""
    r = api_call("POST", f"/api/v1/requests/{request_id}/responses", json={"message": message})
    print_json(r) if json_out else console.print(f"{r['id']}: response recorded; SLA {sla_text(r['sla'])}")


def severity(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    set_to: Annotated[int, typer.Option("--set", help="New severity 1-4.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    json_out: JsonFlag = False,
) -> None:
    """Change a request's severity; its SLA clock is re-targeted."""
    r = api_call("POST", f"/api/v1/requests/{request_id}/severity", json={"severity": set_to, "reason": reason})
    print_json(r) if json_out else console.print(f"{r['id']}: severity {r['severity']}; SLA {sla_text(r['sla'])}")


@duty_app.command("add")
def duty_add(
    person: Annotated[str, typer.Option(help="Duty manager's e-mail or id.")],
    start: Annotated[str, typer.Option("--from", help="Shift start, ISO 8601 with zone.")],
    end: Annotated[str, typer.Option("--to", help="Shift end, ISO 8601 with zone.")],
    weeks: Annotated[int, typer.Option(help="Repeat weekly this many times.")] = 1,
    note: Annotated[str | None, typer.Option(help="A note.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Add a duty shift (or a weekly series of them)."""
    body = {
        "person": person,
        "starts_at": _aware(start, "--from"),
        "ends_at": _aware(end, "--to"),
        "weeks": weeks,
        "note": note,
    }
    shifts = api_call("POST", "/api/v1/duty/shifts", json=body)
    print_json(shifts) if json_out else _shift_table(shifts)


def _shift_table(shifts: list[dict]) -> None:
    rows = [[s["id"], s["person"], local_time(s["starts_at"]), local_time(s["ends_at"]), s["note"]] for s in shifts]
    table("Duty shifts", ["#", "person", "from", "to", "note"], rows)


@duty_app.command("list")
def duty_list(
    start: Annotated[str | None, typer.Option("--from", help="From (ISO 8601 with zone; default now).")] = None,
    days: Annotated[int, typer.Option(help="How many days ahead.")] = 14,
    json_out: JsonFlag = False,
) -> None:
    """List duty shifts."""
    params: dict = {"days": days}
    if start:
        params["from"] = _aware(start, "--from")
    shifts = api_call("GET", "/api/v1/duty/shifts", params=params)
    print_json(shifts) if json_out else _shift_table(shifts)


@duty_app.command("now")
def duty_now(
    at: Annotated[str | None, typer.Option(help="At this time (ISO 8601 with zone).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Who is on duty now (or at --at), and why."""
    params = {"at": _aware(at, "--at")} if at else {}
    duty = api_call("GET", "/api/v1/duty/now", params=params)
    print_json(duty) if json_out else console.print(f"{duty['person'] or 'nobody'} — {duty['reason']}")


@duty_app.command("check")
def duty_check(
    days: Annotated[int, typer.Option(help="How many days ahead, from now.")] = 14,
    json_out: JsonFlag = False,
) -> None:
    """The gaps in the duty rotation for the next --days days, each with who covers it (the fallback) or
    NOBODY. Exit code 1 when some span has nobody (for cron and monitoring), 0 otherwise."""
    check = api_call("GET", "/api/v1/duty/check", params={"days": days})
    if json_out:
        print_json(check)
    else:
        rows = [
            [local_time(g["starts_at"]), local_time(g["ends_at"]), g["covered_by"] or "NOBODY"] for g in check["gaps"]
        ]
        table(f"Rotation gaps, next {days} days ({len(rows)})", ["from", "to", "covered by"], rows)
        console.print(f"head of support (last in every page's chain): {check['head_of_support'] or 'none configured'}")
        for problem in check["problems"]:
            console.print(f"problem: {problem}")
        if check["nobody"]:
            console.print("NOBODY takes a request filed in some of these spans: add shifts or set a fallback.")
        elif not rows:
            console.print("No gaps: every moment has a duty shift.")
    if check["nobody"]:
        raise typer.Exit(1)


@duty_app.command("fallback")
def duty_fallback(person: Annotated[str, typer.Option(help="E-mail or id of the fallback manager.")]) -> None:
    """Set who takes requests when the rotation has a gap."""
    duty = api_call("PUT", "/api/v1/duty/fallback", json={"person": person})
    console.print(f"fallback: {duty['person']}")


@leave_app.command("add")
def leave_add(
    person: Annotated[str, typer.Option(help="E-mail or id.")],
    first_day: Annotated[str, typer.Option("--from", help="First day away (YYYY-MM-DD).")],
    last_day: Annotated[str, typer.Option("--to", help="Last day away (YYYY-MM-DD).")],
    reason: Annotated[str | None, typer.Option(help="Reason.")] = None,
) -> None:
    """Record leave: routing sends that person's requests to the duty manager meanwhile."""
    body = {"first_day": first_day, "last_day": last_day, "reason": reason}
    leave = api_call("POST", f"/api/v1/people/{person}/leave", json=body)
    console.print(f"{leave['person']} on leave {leave['first_day']} – {leave['last_day']}")
