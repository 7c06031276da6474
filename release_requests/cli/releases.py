"""`relreq release …` and `relreq channels resume` (update channels, over the API; `release sync-tree` and
`release nginx-config` work on this host's static update tree) and `relreq client …` (enrolment over the
API, and the update client: fetch, report)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from artifacts.progress import silent
from release_requests import update_client
from release_requests.cli.client import api_call
from release_requests.cli.output import CliError, console, local_time, print_json, table
from release_requests.settings import get_settings

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
EXIT_REFUSED = 2

release_app = typer.Typer(help="Update channels: what they serve, their history, revert.", no_args_is_help=True)
channels_app = typer.Typer(help="Update channels stopped by an automatic halt.", no_args_is_help=True)
client_app = typer.Typer(help="The update client a customer's IT runs, and its enrolment.", no_args_is_help=True)
Dest = Annotated[Path, typer.Option(help="Install directory; DEST/client.json holds the enrolled credential.")]


def _show_channels(rows: list[dict]) -> None:
    table(
        f"Channels ({len(rows)})",
        ["channel", "version", "fallback", "rollout", "private to", "since", "by"],
        [
            [
                c["channel"],
                c["version"],
                c["previous_version"],
                f"{c['rollout_percent']} %" + (f", halted ({c['halted_version']})" if c["halted_at"] else ""),
                c["private_to"],
                local_time(c["published_at"]),
                c["updated_by"],
            ]
            for c in rows
        ],
    )


@release_app.command("channels")
def channels(json_out: JsonFlag = False) -> None:
    """List the channels you may read and what each serves."""
    rows = api_call("GET", "/api/v1/channels")
    print_json(rows) if json_out else _show_channels(rows)


@release_app.command("history")
def history(channel: Annotated[str, typer.Argument(help="Channel name.")], json_out: JsonFlag = False) -> None:
    """Every move of a channel's pointer, oldest first."""
    rows = api_call("GET", f"/api/v1/channels/{channel}/history")
    if json_out:
        print_json(rows)
        return
    table(
        f"History of {channel}",
        ["#", "when", "action", "from", "to", "rollout", "who", "request", "reason"],
        [
            [
                h["id"],
                local_time(h["at"]),
                h["action"],
                h["from_version"],
                h["to_version"],
                f"{h['rollout_percent']} %",
                h["actor"],
                h["request_id"],
                h["reason"],
            ]
            for h in rows
        ],
    )


@release_app.command("revert")
def revert(
    channel: Annotated[str, typer.Argument(help="Channel name.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log and sent with the announcement).")],
    to: Annotated[
        str | None, typer.Option("--to", help="A version the channel served before (default: one step back).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Move a channel back in one step (release manager, admin, emergency); audited and announced."""
    body = {"reason": reason} | ({"to_version": to} if to else {})
    pointer = api_call("POST", f"/api/v1/channels/{channel}/revert", json=body)
    if json_out:
        print_json(pointer)
    else:
        console.print(f"{channel}: now serves {pointer['version']} (pointer version {pointer['pointer_version']})")


@release_app.command("known-clean")
def known_clean(
    sha256: Annotated[str, typer.Argument(help="sha256 of a file known to be clean.")],
    reason: Annotated[str, typer.Option(help="Why the file is known to be clean.")],
    json_out: JsonFlag = False,
) -> None:
    """Mark a file known-clean (admin): a base that detects it counts towards an automatic halt."""
    row = api_call("POST", "/api/v1/known-clean", json={"sha256": sha256.lower(), "reason": reason})
    print_json(row) if json_out else console.print(f"{row['sha256']}: known clean (added by {row['added_by']})")


@release_app.command("sync-tree")
def sync_tree(json_out: JsonFlag = False) -> None:
    """Write the static update tree (RR_UPDATE_TREE_DIR) from the database now (local admin, on the server host).

    Every public channel's manifest and files; private channels and anything else taken out. Publishing
    already does this after every move and the reconciler every minute: this is for a new tree or a check.
    """
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.releases.static_tree import sync_all
    from release_requests.runtime import session_factory

    settings = get_settings()
    try:
        report = sync_all(session_factory(), settings)
    except OSError as exc:
        raise CliError(
            f"cannot write the update tree {settings.update_tree}: {exc.strerror} ({exc.filename})"
        ) from None
    if json_out:
        print_json(report.as_dict())
    else:
        console.print(
            f"update tree {report.root}: {len(report.written)} channels written, {len(report.unchanged)} unchanged, "
            f"{len(report.removed)} removed",
            markup=False,
        )
        for label, channels in (("written", report.written), ("removed", report.removed)):
            if channels:
                console.print(f"  {label}: {', '.join(channels)}", markup=False)
    if report.failed:
        raise CliError(f"channels not written to the update tree: {', '.join(report.failed)} (reasons logged above)")


@release_app.command("nginx-config")
def nginx_config(
    listen: Annotated[str, typer.Option(help="nginx `listen` value: a port, or address:port.")] = "80",
    server_name: Annotated[str, typer.Option(help="nginx `server_name` (default: any).")] = "_",
) -> None:
    """Print an nginx `server` block that serves the static update tree (RR_UPDATE_TREE_DIR) to update clients."""
    # deferred: the releases domain loads the database layer, which `--help` must not pay for
    from release_requests.releases.static_tree import nginx_server_block

    sys.stdout.write(nginx_server_block(root=get_settings().update_tree, listen=listen, server_name=server_name))


@channels_app.command("resume")
def resume(
    channel: Annotated[str, typer.Argument(help="Channel name.")],
    reason: Annotated[str, typer.Option(help="Why publishing may continue (kept in the audit log).")],
    json_out: JsonFlag = False,
) -> None:
    """Let a halted channel take publishes again (release manager, admin); audited."""
    pointer = api_call("POST", f"/api/v1/channels/{channel}/resume", json={"reason": reason})
    if json_out:
        print_json(pointer)
    else:
        console.print(f"{channel}: resumed; serves {pointer['version']}, publishing is open again")


@client_app.command("enrol")
def enrol(
    dest: Dest,
    name: Annotated[str | None, typer.Option(help="A label for this install, e.g. its host name.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Enrol this install (RR_TOKEN: you): the server issues a client id and secret, saved to DEST/client.json.

    Only enrolled installs may report telemetry. A customer's user enrols machines of that customer; staff
    enrol the vendor's machines. The secret is shown to nobody: it goes straight into the file (mode 0600).
    """
    try:
        existing = update_client.load_credential(dest)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if existing is not None:
        raise CliError(
            f"{dest} is already enrolled as {existing.client_id}; to enrol again, revoke it "
            f"(relreq client revoke {existing.client_id}) and delete {dest / update_client.CREDENTIAL}"
        )
    enrolled = api_call("POST", "/api/v1/clients", json={"name": name} if name else {})
    credential = update_client.Credential(client_id=enrolled["client_id"], secret=enrolled.pop("secret"))
    try:
        path = update_client.save_credential(dest, credential)
    except OSError as exc:
        raise CliError(
            f"enrolled as {credential.client_id} but cannot save the credential ({exc}); "
            f"revoke it: relreq client revoke {credential.client_id}"
        ) from None
    if json_out:
        print_json(enrolled | {"credential_file": str(path)})
    else:
        console.print(f"enrolled as {enrolled['client_id']} ({enrolled['organisation']}); credential in {path}")


def _show_clients(rows: list[dict]) -> None:
    table(
        f"Update clients ({len(rows)})",
        ["client", "organisation", "name", "enrolled", "by", "revoked"],
        [
            [
                c["client_id"],
                c["organisation"],
                c["name"],
                local_time(c["enrolled_at"]),
                c["enrolled_by"],
                c["revoked_at"] and local_time(c["revoked_at"]),
            ]
            for c in rows
        ],
    )


@client_app.command("list")
def list_clients(json_out: JsonFlag = False) -> None:
    """Enrolled update clients (all for staff, your organisation's for customers)."""
    rows = api_call("GET", "/api/v1/clients")
    print_json(rows) if json_out else _show_clients(rows)


@client_app.command("revoke")
def revoke_client(
    client_id: Annotated[str, typer.Argument(help="Client id (relreq client list).")], json_out: JsonFlag = False
) -> None:
    """Revoke a client (staff, or its customer's users): its reports are refused and no longer count."""
    row = api_call("DELETE", f"/api/v1/clients/{client_id}")
    print_json(row) if json_out else console.print(f"{row['client_id']}: revoked at {local_time(row['revoked_at'])}")


@client_app.command("report")
def report(
    dest: Dest,
    detections: Annotated[
        Path,
        typer.Option(
            help="JSON list of detections ({base_version, rule, file_sha256, verdict}); '-' reads standard input."
        ),
    ],
    api_url: Annotated[str | None, typer.Option(help="Server URL (default: $RR_API_URL).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Report detections as this enrolled install (one batch; refused as a whole, then nothing counts)."""
    try:
        text = sys.stdin.read() if str(detections) == "-" else detections.read_text(encoding="utf-8")
        batch = json.loads(text)
    except OSError as exc:
        raise CliError(f"--detections: cannot read {detections} ({exc.strerror})") from None
    except ValueError as exc:
        raise CliError(f"--detections: not JSON ({exc})") from None
    if not isinstance(batch, list):
        raise CliError("--detections: expected a JSON list of detections")
    try:
        accepted = update_client.report(api_url=api_url or get_settings().api_url, dest=dest, detections=batch)
    except update_client.ReportFailed as exc:
        raise CliError(f"not reported: {exc}") from None
    print_json({"accepted": accepted}) if json_out else console.print(f"{accepted} detections reported")


@contextmanager
def _download_bar(enabled: bool) -> Iterator:
    """A transient byte-progress bar on a terminal's stderr; silent for `--json` runs, pipes and logs."""
    if not enabled:
        yield silent
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("connecting", total=None)
        yield lambda done, total, label: bar.update(task, completed=done, total=total, description=label)


@client_app.command("fetch")
def fetch(
    channel: Annotated[str, typer.Option(help="Update channel, e.g. global, canary, customer-<id>.")],
    dest: Annotated[Path, typer.Option(help="Install directory; DEST/current points at the installed release.")],
    client_id: Annotated[
        str | None,
        typer.Option(help="This machine's stable id (decides its canary cohort). Default: the enrolled one."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="Pinned signing key (PEM): the secure choice. Default: trust the server's key on first use."),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="API token for customer and hotfix channels (default: $RR_TOKEN).")
    ] = None,
    api_url: Annotated[str | None, typer.Option(help="Server URL (default: $RR_API_URL).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Download a channel's release, verify signature, hashes and sizes, and install it atomically.

    Exit 0 when installed or already current, 2 when anything was refused or failed (nothing installed).
    """
    settings = get_settings()
    pem = None
    if public_key is not None:
        try:
            pem = public_key.read_bytes()
        except OSError as exc:
            raise CliError(f"--public-key: cannot read {public_key} ({exc.strerror})", EXIT_REFUSED) from None
    try:
        with _download_bar(not json_out and sys.stderr.isatty()) as progress:
            result = update_client.fetch(
                api_url=api_url or settings.api_url,
                channel=channel,
                client_id=client_id,
                dest=dest,
                public_key_pem=pem,
                token=token or settings.token,
                progress=progress,
            )
    except update_client.UpdateFailed as exc:
        raise CliError(f"nothing installed: {exc}", EXIT_REFUSED) from None
    if json_out:
        print_json(result.as_dict())
    elif result.installed:
        console.print(
            f"installed {result.version} from {channel}: {result.files} files, {result.bytes} bytes → {dest}/current"
        )
    else:
        console.print(f"{result.version} from {channel} is already installed in {dest}/current")
