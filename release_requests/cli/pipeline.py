"""Pipeline commands: give a build its fix, sign off stages, follow the pipeline, close."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from release_requests.cli.client import api_call
from release_requests.cli.output import CliError, console, fields, local_time, print_json, table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def show_pipeline(p: dict) -> None:
    build = p["build"] or {}
    fields(
        f"{p['request_id']} — {p['status']} ({p['pipeline']}: {' → '.join(p['stages'])})",
        [
            ("build", f"attempt {build.get('attempt')} {build.get('status')}" if build else None),
            ("version", build.get("version")),
            ("commit", (build.get("commit") or "")[:12]),
            ("verification", {True: "passed", False: "FAILED"}.get(build.get("passed"))),
            ("error", build.get("error")),
            ("duplicates", ", ".join(p["duplicates"])),
        ],
    )
    table(
        "Stages",
        ["stage", "status", "signed", "missing", "soak until", "channels", "sign-offs"],
        [
            [
                s["stage"],
                s["status"],
                "yes" if s["signed"] else "no",
                ", ".join(s["missing"]),
                local_time(s["soak_until"]) if s["soak_until"] else None,
                ", ".join(s["channels"]),
                "; ".join(f"{o['action']} by {o['person']} ({o['role']})" for o in s["signoffs"]),
            ]
            for s in p["stage_runs"]
        ],
    )


def pipeline(request_id: Annotated[str, typer.Argument(help="Request id.")], json_out: JsonFlag = False) -> None:
    """The build, its verification and every stage with its sign-offs."""
    p = api_call("GET", f"/api/v1/requests/{request_id}/pipeline")
    print_json(p) if json_out else show_pipeline(p)


def approve(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    stage: Annotated[str, typer.Option(help="internal | canary | customer | global.")],
    reject: Annotated[str | None, typer.Option(help="Reject the stage, with the reason (stops the pipeline).")] = None,
    revoke: Annotated[bool, typer.Option("--revoke", help="Withdraw your approval of the stage.")] = False,
    override: Annotated[
        str | None, typer.Option(help="Emergency role: override missing sign-offs, with a reason.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Sign off a release stage (or reject, revoke, override)."""
    chosen = [d for d, on in (("reject", reject), ("revoke", revoke), ("override", override)) if on]
    if len(chosen) > 1:
        raise CliError("give at most one of --reject, --revoke, --override")
    decision = chosen[0] if chosen else "approve"
    body = {"stage": stage, "decision": decision, "reason": reject or override}
    p = api_call("POST", f"/api/v1/requests/{request_id}/approvals", json={k: v for k, v in body.items() if v})
    if json_out:
        print_json(p)
        return
    run = next((s for s in p["stage_runs"] if s["stage"] == stage), None)
    state = "signed" if run and run["signed"] else f"still missing: {', '.join(run['missing']) if run else '?'}"
    console.print(f"{request_id}: {decision} of stage {stage} recorded; {state}; request {p['status']}")


def fix(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    rule: Annotated[Path | None, typer.Option(help="False negative: the analyst's YARA rule file.")] = None,
    family: Annotated[str, typer.Option(help="With --rule: the rule family (namespace).")] = "generic",
    ref: Annotated[str | None, typer.Option(help="A ref already pushed to the signature repository.")] = None,
    commits: Annotated[list[str] | None, typer.Option(help="Private hotfix: commit to cherry-pick (repeat).")] = None,
    product_version: Annotated[str | None, typer.Option(help="Hotfix: the customer's product version.")] = None,
    allowlist: Annotated[bool, typer.Option("--allowlist", help="False positive: allowlist the samples.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Give the build its fix (or rebuild after a failure); the build starts at once."""
    chosen = [n for n, v in (("rule", rule), ("ref", ref), ("commits", commits), ("allowlist", allowlist)) if v]
    if len(chosen) != 1:
        raise CliError("give exactly one of --rule FILE, --ref REF, --commits SHA..., --allowlist")
    body: dict = {"type": chosen[0]}
    if rule:
        if not rule.is_file():
            raise CliError(f"--rule: {rule} is not a readable file")
        body.update(rule_text=rule.read_text(encoding="utf-8"), family=family)
    if ref:
        body["ref"] = ref
    if commits:
        body.update(commits=commits, product_version=product_version)
    p = api_call("POST", f"/api/v1/requests/{request_id}/fix", json={k: v for k, v in body.items() if v is not None})
    print_json(p) if json_out else console.print(f"{request_id}: build attempt {p['build']['attempt']} queued")


def revert_fix(
    request_id: Annotated[str, typer.Argument(help="Request id whose fix leaves the release line.")],
    reason: Annotated[str, typer.Option(help="Why (audited, required).")],
    json_out: JsonFlag = False,
) -> None:
    """Take one request's fix off the release line with a revert commit naming it; other fixes stay."""
    r = api_call("POST", f"/api/v1/requests/{request_id}/revert-fix", json={"reason": reason})
    print_json(r) if json_out else console.print(f"{r['id']}: fix reverted on the release line ({r['status']})")


def split(
    request_id: Annotated[str, typer.Argument(help="Request id sharing another request's build.")],
    reason: Annotated[str, typer.Option(help="Why it is a different problem (audited, required).")],
    json_out: JsonFlag = False,
) -> None:
    """Take a request out of a shared build (duty manager): it gets its own build."""
    r = api_call("POST", f"/api/v1/requests/{request_id}/split", json={"reason": reason})
    print_json(r) if json_out else console.print(f"{r['id']}: split out, {r['status']}")


def close(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    reason: Annotated[str | None, typer.Option(help="A closing note.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Close a released request."""
    r = api_call("POST", f"/api/v1/requests/{request_id}/close", json={"reason": reason} if reason else {})
    print_json(r) if json_out else console.print(f"{r['id']}: {r['status']}")
