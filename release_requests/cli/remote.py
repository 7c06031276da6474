"""Working commands: thin clients of the HTTP API (`RR_API_URL`, `RR_TOKEN`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer

from release_requests.cli.client import api_call
from release_requests.cli.output import CliError, console, fields, local_time, print_json, table
from release_requests.cli.sla import sla_text

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
KINDS = {
    "false-positive": "false_positive",
    "false-negative": "false_negative",
    "private-hotfix": "private_hotfix",
}

samples_app = typer.Typer(help="Evidence attached to requests.", no_args_is_help=True)


def _kind(value: str) -> str:
    normalized = value.replace("_", "-")
    if normalized not in KINDS:
        raise CliError(f"--kind: '{value}' is not one of {', '.join(KINDS)}")
    return KINDS[normalized]


def _upload(request_id: str, path: Path) -> dict:
    if not path.is_file():
        raise CliError(f"--sample: {path} is not a readable file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with path.open("rb") as f:
        return api_call(
            "POST",
            f"/api/v1/requests/{request_id}/samples",
            files={"file": (path.name, f)},
            data={"sha256": digest},
        )


def submit(
    kind: Annotated[str, typer.Option(help="false-positive | false-negative | private-hotfix.")],
    severity: Annotated[int, typer.Option(help="1 critical, 2 high, 3 medium, 4 low.")],
    channel: Annotated[str, typer.Option(help="How it reached us: portal | phone | email | tam.")],
    title: Annotated[str, typer.Option(help="One line the customer would recognise.")],
    customer: Annotated[str | None, typer.Option(help="Customer id (customer users: their own by default).")] = None,
    description: Annotated[str, typer.Option(help="What happened, where, since when.")] = "",
    product: Annotated[str | None, typer.Option(help="Product name.")] = None,
    product_version: Annotated[str | None, typer.Option(help="Product version.")] = None,
    detection: Annotated[str | None, typer.Option(help="Detection name as the product reported it.")] = None,
    received_at: Annotated[
        str | None,
        typer.Option(help="When the customer reached us (ISO 8601 with zone), e.g. when the call came in."),
    ] = None,
    caller: Annotated[str | None, typer.Option(help="Phone intake: who called (with --channel phone).")] = None,
    callback: Annotated[
        str | None, typer.Option(help="Phone intake: the number to call back, e.g. '+7 495 123-45-67 ext. 12'.")
    ] = None,
    sample: Annotated[list[Path] | None, typer.Option(help="Sample file to attach (repeatable).")] = None,
    sample_sha256: Annotated[list[str] | None, typer.Option(help="Hash-only evidence (repeatable).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """File a release request; prints its id.

    A phone call: `--channel phone --caller NAME --callback NUMBER --received-at WHEN` (the SLA clock starts
    at the call)."""
    for path in sample or []:
        if not path.is_file():
            raise CliError(f"--sample: {path} is not a readable file")
    body = {
        "customer_id": customer,
        "kind": _kind(kind),
        "severity": severity,
        "channel": channel,
        "title": title,
        "description": description,
        "product": product,
        "product_version": product_version,
        "detection_name": detection,
        "received_at": received_at,
        "caller_name": caller,
        "callback_number": callback,
        "sample_sha256": sample_sha256 or [],
    }
    created = api_call("POST", "/api/v1/requests", json={k: v for k, v in body.items() if v is not None})
    for path in sample or []:
        _upload(created["id"], path)
    if json_out:
        print_json(api_call("GET", f"/api/v1/requests/{created['id']}"))
    else:
        print(created["id"])


def list_requests(
    status: Annotated[list[str] | None, typer.Option(help="Only these states (repeatable).")] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
    severity: Annotated[int | None, typer.Option(help="Only this severity.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    limit: Annotated[int, typer.Option(help="Page size.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    json_out: JsonFlag = False,
) -> None:
    """List requests you can see, newest first."""
    params: dict = {"limit": limit, "offset": offset}
    if status:
        params["status"] = status
    if customer:
        params["customer_id"] = customer
    if severity:
        params["severity"] = severity
    if kind:
        params["kind"] = _kind(kind)
    page = api_call("GET", "/api/v1/requests", params=params)
    if json_out:
        print_json(page)
        return
    table(
        f"Requests ({len(page['items'])} of {page['total']})",
        ["id", "customer", "kind", "severity", "status", "SLA", "title", "owner", "received"],
        [
            [
                r["id"],
                r["customer_id"],
                r["kind"],
                r["severity_label"],
                r["status"],
                sla_text(r["sla"]),
                r["title"],
                r["owner"],
                local_time(r["received_at"]),
            ]
            for r in page["items"]
        ],
    )


def show(
    request_id: Annotated[str, typer.Argument(help="Request id, e.g. RR-2026-000123.")],
    json_out: JsonFlag = False,
):
    """Show one request."""
    r = api_call("GET", f"/api/v1/requests/{request_id}")
    if json_out:
        print_json(r)
        return
    fields(
        f"{r['id']} — {r['title']}",
        [
            ("customer", f"{r['customer_name']} ({r['customer_id']})"),
            ("kind", r["kind"]),
            ("severity", r["severity_label"]),
            ("status", r["status"]),
            ("next states", ", ".join(r["allowed_transitions"])),
            ("SLA", sla_text(r["sla"])),
            ("SLA due (customer time)", (r["sla"] or {}).get("due_at_local")),
            ("channel", r["channel"]),
            ("product", " ".join(filter(None, [r["product"], r["product_version"]]))),
            ("detection", r["detection_name"]),
            ("owner", r["owner"]),
            ("assignee", r["assignee"]),
            ("duplicate of", r["duplicate_of"]),
            ("submitted by", r["submitted_by"]),
            ("received", local_time(r["received_at"])),
            ("updated", local_time(r["updated_at"])),
            ("version", r["version"]),
            ("description", r["description"]),
        ],
    )
    if r["samples"]:
        table(
            "Samples",
            ["sha256", "size", "file name", "stored"],
            [[s["sha256"], s["size"], s["filename"], "yes" if s["stored"] else "hash only"] for s in r["samples"]],
        )


def timeline(request_id: Annotated[str, typer.Argument(help="Request id.")], json_out: JsonFlag = False) -> None:
    """The request's history, read from the audit log."""
    events = api_call("GET", f"/api/v1/requests/{request_id}/timeline")
    if json_out:
        print_json(events)
        return

    def summary(e: dict) -> str:
        after = e["after"] or {}
        parts = [f"{k}={v}" for k, v in after.items() if k not in ("version", "updated_at") and v is not None]
        return ", ".join(parts)[:160]

    table(
        f"Timeline of {request_id}",
        ["#", "when", "who", "what", "details", "reason"],
        [[e["seq"], local_time(e["at"]), e["actor"], e["action"], summary(e), e["reason"]] for e in events],
    )


def triage(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    accept: Annotated[bool, typer.Option("--accept", help="Accept for a fix.")] = False,
    reject: Annotated[str | None, typer.Option(help="Reject, with the reason.")] = None,
    duplicate_of: Annotated[str | None, typer.Option(help="Duplicate of this request id.")] = None,
    needs_info: Annotated[str | None, typer.Option(help="Ask the customer this question.")] = None,
    severity: Annotated[int | None, typer.Option(help="With --accept: change severity.")] = None,
    assignee: Annotated[str | None, typer.Option(help="With --accept: engineer's e-mail (default: you).")] = None,
    note: Annotated[str | None, typer.Option(help="With --accept: a note for the record.")] = None,
    version: Annotated[int | None, typer.Option(help="Fail if the request changed since this version.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Decide on a submitted request: exactly one of --accept, --reject, --duplicate-of, --needs-info."""
    chosen = [
        name
        for name, v in (("accept", accept), ("reject", reject), ("duplicate", duplicate_of), ("needs_info", needs_info))
        if v
    ]
    if len(chosen) != 1:
        raise CliError("give exactly one of --accept, --reject REASON, --duplicate-of ID, --needs-info QUESTION")
    decision = chosen[0]
    body: dict = {"decision": decision, "version": version}
    if decision == "accept":
        body.update(severity=severity, assignee=assignee, note=note)
    elif decision == "reject":
        body["reason"] = reject
    elif decision == "duplicate":
        body["duplicate_of"] = duplicate_of
    else:
        body["question"] = needs_info
    r = api_call("POST", f"/api/v1/requests/{request_id}/triage", json={k: v for k, v in body.items() if v is not None})
    if json_out:
        print_json(r)
    else:
        console.print(f"{r['id']}: {r['status']} (version {r['version']})")


def answer(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    message: Annotated[str, typer.Option(help="The answer to the open question.")],
    json_out: JsonFlag = False,
) -> None:
    """Answer a needs-info question; the request goes back to triage."""
    r = api_call("POST", f"/api/v1/requests/{request_id}/answers", json={"message": message})
    print_json(r) if json_out else console.print(f"{r['id']}: {r['status']}")


def cancel(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    reason: Annotated[str, typer.Option(help="Why it is no longer needed.")],
    json_out: JsonFlag = False,
) -> None:
    """Cancel a request that is no longer needed."""
    r = api_call("POST", f"/api/v1/requests/{request_id}/cancel", json={"reason": reason})
    print_json(r) if json_out else console.print(f"{r['id']}: {r['status']}")


@samples_app.command("add")
def samples_add(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    files: Annotated[list[Path] | None, typer.Argument(help="Sample files.")] = None,
    sha256: Annotated[list[str] | None, typer.Option(help="Hash-only evidence (repeatable).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Attach sample files (hash checked on upload) or hashes to a request."""
    if not files and not sha256:
        raise CliError("give sample files and/or --sha256 HEX")
    added = [_upload(request_id, path) for path in files or []]
    added += [api_call("POST", f"/api/v1/requests/{request_id}/samples", data={"sha256": h}) for h in sha256 or []]
    if json_out:
        print_json(added)
    else:
        for s in added:
            console.print(f"{s['sha256']}  {'stored' if s['stored'] else 'hash only'}")


@samples_app.command("get")
def samples_get(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    sha256: Annotated[str, typer.Argument(help="Sample hash.")],
    out: Annotated[Path, typer.Option(help="Where to write it (created read-only).")],
) -> None:
    """Download a sample for analysis (the bytes are checked against the hash)."""
    response = api_call("GET", f"/api/v1/requests/{request_id}/samples/{sha256}", raw=True)
    if hashlib.sha256(response.content).hexdigest() != sha256.lower():
        raise CliError("downloaded bytes do not match the hash; nothing written")
    out.write_bytes(response.content)
    out.chmod(0o400)
    console.print(f"wrote {out} ({len(response.content)} bytes)")
