"""The API in several processes on one port (`relreq serve --workers N`), answering as fast as in one.

Python runs one request at a time per process (the GIL), so a 2-core machine needs two API processes to use
both cores. uvicorn's own `--workers N` binds the listening socket without naming its protocol; the sockets
it accepts inherit that, and asyncio turns TCP_NODELAY on only for sockets that say they are TCP. With
Nagle's algorithm left on, every answer on a kept-alive connection after the first waits for the client's
delayed ACK: about 40 ms on Linux, for every request (uvicorn issue 3149; measured here: /healthz 0.5 ms
in one process, 44 ms in two). So the socket is bound here, as TCP, and handed to uvicorn's supervisor.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


def tcp_listener(config: uvicorn.Config) -> socket.socket:
    """uvicorn's listening socket for `config`, re-wrapped so that it (and every socket it accepts) is TCP."""
    bound = config.bind_socket()
    return socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())


def serve(factory: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Serve the app that `factory` ("module:function") builds, in `workers` processes; returns when stopped."""
    config = uvicorn.Config(factory, factory=True, host=host, port=port, workers=workers, **options)
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    Multiprocess(config, sockets=[tcp_listener(config)]).run()
