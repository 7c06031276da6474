"""`relreq page`: the pages that woke somebody, and acknowledging one (API clients, `RR_TOKEN`)."""

from __future__ import annotations

from typing import Annotated

import typer

from release_requests.cli.client import api_call
from release_requests.cli.output import console, fields, local_time, print_json, table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
page_app = typer.Typer(
    help="Pages: a severity 1–2 request with no TAM at work wakes the person on duty (docs/paging.md).",
    no_args_is_help=True,
)


def _paged(page: dict) -> str:
    paged = page["paged"]
    if paged is None:
        return "nobody"
    return f"{paged['name']} ({paged['role']}, step {page['step'] + 1} of {len(page['chain'])})"


def _next(page: dict) -> str:
    if page["status"] == "paging":
        return f"next step at {local_time(page['escalate_at'])}"
    if page["status"] == "acknowledged":
        return f"acknowledged by {page['acknowledged_by']} at {local_time(page['acknowledged_at'])}"
    if page["status"] == "resolved":
        return f"resolved at {local_time(page['resolved_at'])}"
    return "nobody acknowledged it; nobody is left to page"


@page_app.command("list")
def page_list(
    status: Annotated[
        str | None, typer.Option(help="Only pages in this status: paging | acknowledged | resolved | exhausted.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """List pages, newest first."""
    params: dict = {"limit": limit}
    if status:
        params["status"] = status
    pages = api_call("GET", "/api/v1/pages", params=params)
    if json_out:
        print_json(pages)
        return
    table(
        f"Pages ({len(pages)})",
        ["request", "customer", "severity", "status", "paged", "started", "now"],
        [
            [
                p["request_id"],
                p["customer_id"],
                p["severity"],
                p["status"],
                _paged(p),
                local_time(p["paged_at"]),
                _next(p),
            ]
            for p in pages
        ],
    )


def _show(page: dict) -> None:
    fields(
        f"Page of {page['request_id']}",
        [
            ("status", page["status"]),
            ("severity", page["severity"]),
            ("customer", page["customer_id"]),
            ("paged", _paged(page)),
            ("started", local_time(page["paged_at"])),
            ("now", _next(page)),
            ("acknowledged via", page["acknowledged_via"]),
            ("dedup key", page["dedup_key"]),
        ],
    )
    table(
        "Escalation chain",
        ["step", "person", "role"],
        [[f"{i + 1}{' ←' if i == page['step'] else ''}", e["name"], e["role"]] for i, e in enumerate(page["chain"])],
    )


@page_app.command("show")
def page_show(request_id: Annotated[str, typer.Argument(help="Request id.")], json_out: JsonFlag = False) -> None:
    """A request's page: its chain, who is paged now, who acknowledged it."""
    page = api_call("GET", f"/api/v1/requests/{request_id}/page")
    print_json(page) if json_out else _show(page)


@page_app.command("ack")
def page_ack(request_id: Annotated[str, typer.Argument(help="Request id.")], json_out: JsonFlag = False) -> None:
    """Acknowledge a page: nobody else is paged. The SLA clock runs on until you answer the customer."""
    page = api_call("POST", f"/api/v1/requests/{request_id}/page/acknowledge", json={"via": "cli"})
    if json_out:
        print_json(page)
        return
    console.print(
        f"{page['request_id']}: page acknowledged by {page['acknowledged_by']}; nobody else will be paged. "
        "The SLA clock runs until a qualified answer (`relreq respond`)."
    )
