"""Prefect flows: the automated segments between human decisions, and the scheduled watchers.

Thin by design: each flow opens the database through `release_requests.runtime` and calls services.
Business state lives in Postgres; Prefect only holds execution.
"""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError


def run_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """Inside a flow run, the run's logger (its lines also reach Prefect's UI); called as a plain function —
    a worker's sweeps call the scheduled flows' functions directly (flows/worker.py) — the logger `name`."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)
