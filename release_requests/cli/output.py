"""How the CLI shows things: rich tables for people, JSON for scripts, one-line errors, local times."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 160)


def print_error(message: str) -> None:
    """Errors are exactly one line on stderr (scripts grep them), never wrapped by rich."""
    sys.stderr.write(f"error: {' '.join(message.split())}\n")


class CliError(Exception):
    """A failure reported to the user as one line on stderr and a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def attachment_name(disposition: str) -> str:
    """The file name an API download names in its Content-Disposition (`HC-12.pdf`), only if it is a plain name
    for this folder: no path, no leading dot (a server cannot make us write elsewhere or over a dotfile)."""
    match = re.search(r'filename="([A-Za-z0-9][A-Za-z0-9._-]*)"', disposition)
    if match is None:
        raise CliError("the API sent the file without a plain file name; pass --out FILE")
    return match[1]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def local_time(value: str | datetime | None) -> str:
    """A timestamp in the reader's own zone, with the zone named (e.g. `2026-11-28 03:00 MSK`)."""
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    local = moment.astimezone()
    return local.strftime("%Y-%m-%d %H:%M %Z")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*["—" if v is None else str(v) for v in row])
    console.print(t)


def fields(title: str, pairs: list[tuple[str, Any]]) -> None:
    t = Table(title=title, show_header=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for key, value in pairs:
        t.add_row(key, "—" if value in (None, "", []) else str(value))
    console.print(t)


@contextmanager
def progress_bar(enabled: bool) -> Iterator:
    """A transient progress bar on stderr, or a no-op reporter for `--json` runs.

    It shows (and starts its refresh thread) at the first report: until then the process stays
    single-threaded, which lets `audit.service.verify_chain` fork its workers instead of spawning them.
    """
    if not enabled:
        yield lambda done, total, label: None
        return
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True, console=Console(stderr=True)
    )
    task = bar.add_task("starting", total=1)

    def report(done: int, total: int, label: str) -> None:
        bar.start()  # no-op once started
        bar.update(task, completed=done, total=total, description=label)

    try:
        yield report
    finally:
        bar.stop()
