"""`relreq release …` (update channels, over the API) and `relreq client fetch` (the update client)."""

from __future__ import annotations

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
client_app = typer.Typer(help="The update client a customer's IT runs.", no_args_is_help=True)


def _show_channels(rows: list[dict]) -> None:
    table(
        f"Channels ({len(rows)})",
        ["channel", "version", "fallback", "rollout", "private to", "since", "by"],
        [
            [
                c["channel"],
                c["version"],
                c["previous_version"],
                f"{c['rollout_percent']} %",
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
    client_id: Annotated[str, typer.Option(help="This machine's stable id (decides its canary cohort).")],
    dest: Annotated[Path, typer.Option(help="Install directory; DEST/current points at the installed release.")],
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
