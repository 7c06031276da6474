"""`relreq serve` and `relreq worker`: the long-running processes (release_requests/server.py does the work)."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Number of API processes (uvicorn workers). Default: one per core. "
            "Not the flow workers: see --no-workers.",
            show_default=False,
        ),
    ] = None,
    no_workers: Annotated[
        bool,
        typer.Option(
            "--no-workers",
            help="Start no flow worker: build, verify, publish and the sweeps wait for `relreq worker` "
            "processes (on this or other hosts). The embedded Postgres and the Prefect server are still "
            "started unless RR_DATABASE_URL and PREFECT_API_URL point elsewhere.",
        ),
    ] = False,
) -> None:
    """Run everything on this machine: Postgres (embedded unless RR_DATABASE_URL), migrations, a Prefect
    server (unless PREFECT_API_URL), a flow worker, the API."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.server import default_api_workers, run

    run(host=host, port=port, api_workers=workers or default_api_workers(), flow_worker=not no_workers)


def worker(
    limit: Annotated[int, typer.Option(min=1, help="Segment runs (builds, publishes) at once on this worker.")] = 4,
) -> None:
    """Run this installation's flows on this host, beside other workers: segment runs from the installation's
    Prefect work pool, the listeners and the scheduled sweeps. Needs PREFECT_API_URL and the installation's
    database (RR_DATABASE_URL, or the embedded one of RR_DATA_DIR on the API's host)."""
    # deferred: the domain and database layers would add ~0.3 s to every `relreq` call, --help included
    from release_requests.server import run_worker

    run_worker(limit=limit)
