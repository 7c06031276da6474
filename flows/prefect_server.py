"""`python -m flows.prefect_server server start …`: Prefect's own command line, with the queue of its background
services checked every few seconds instead of four times a second.

Prefect's server runs its background services through docket, whose worker looks for due tasks every 250 ms:
on an idle server that is a good part of all its CPU. Measured here (2 cores, the server alone on Postgres,
the services of `release_requests.server.PREFECT_SERVER_DEFAULTS`, 90 s each, alternating): 1.85 % and 1.38 %
of the machine at 250 ms, 1.08 % and 0.82 % at 5 s. Nothing this system uses needs the finer grain: the
services it keeps run every 5 s or more seldom, and the tasks they queue (marking work queues ready, deleting
logs, marking runs late) may wait seconds. Prefect has no setting for it, so the defaults of docket's `Worker`
are changed before Prefect makes one; a docket whose `Worker` lacks those parameters is left as it is.
"""

from __future__ import annotations

import functools
import inspect
import runpy
import sys
from datetime import timedelta

from docket import Worker

CHECK_EVERY = timedelta(seconds=5)
_PARAMETERS = ("minimum_check_interval", "scheduling_resolution")


def check_less_often(every: timedelta = CHECK_EVERY) -> bool:
    """Make `every` the default of docket workers' check intervals; False when this docket has no such knobs."""
    init = Worker.__init__
    if not set(_PARAMETERS) <= inspect.signature(init).parameters.keys():
        return False

    @functools.wraps(init)
    def patched(self, *args, **kwargs) -> None:
        for name in _PARAMETERS:
            kwargs.setdefault(name, every)
        init(self, *args, **kwargs)

    Worker.__init__ = patched
    return True


def main() -> None:
    check_less_often()
    sys.argv[0] = "prefect"
    runpy.run_module("prefect", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
