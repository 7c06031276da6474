"""`relreq`: the one command-line entry point (local administration + API client)."""

from __future__ import annotations

import sys

from release_requests.cli.app import app
from release_requests.cli.output import CliError, print_error
from release_requests.errors import DomainError


def main() -> None:
    """Run a command; every failure is one line on stderr and a non-zero exit, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except CliError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except DomainError as exc:
        print_error(exc.message)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # usage errors (click/typer)
            print_error(f"{exc.format_message()} (see `relreq ... --help`)")
            sys.exit(exc.exit_code)
        print_error(f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
