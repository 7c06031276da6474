"""Debian's nginx on loopback, in a temporary prefix of its own: the web server (or CDN) in front of a static tree.

`LocalNginx(server=..., port=...)` runs the given `server { … }` block(s) — e.g. the one
`relreq release nginx-config` prints, listening on `port` — inside a minimal main configuration that includes
nothing from /etc/nginx: pid, error log and temporary paths in its own folder, no access log, `daemon off` so
that the process is the caller's child. As root its workers run as `nobody` (so what it serves must be
world-readable, as on a real web server); as anyone else, as that user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devservers.daemon import LocalDaemon

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)

_MAIN = """\
# written by devservers/nginx.py; includes nothing from /etc/nginx
{user}worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {root}/temp/body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
{server}
}}
"""


@dataclass
class LocalNginx(LocalDaemon):
    server: str  # one or more `server {}` blocks, listening on `host`:`port`
    port: int
    host: str = "127.0.0.1"
    workers: int = 1
    root: Path | None = None
    _process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The master process (its workers are its children)."""
        assert self._process is not None, "not started"
        return self._process.pid

    def log_text(self) -> str:
        path = self.root / "error.log" if self.root else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def start(self) -> LocalNginx:
        if NGINX is None:
            raise RuntimeError(
                "these tests need nginx (Debian package nginx-light): run `make test`, which installs it"
            )
        self.root = Path(tempfile.mkdtemp(prefix="rr-nginx-"))
        (self.root / "temp").mkdir()
        conf = self.root / "nginx.conf"
        conf.write_text(
            _MAIN.format(
                user="user nobody nogroup;\n" if os.geteuid() == 0 else "",
                workers=self.workers,
                root=self.root,
                server=self.server,
            )
        )
        self._process = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(conf), "-e", str(self.root / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "nginx.stderr", "wb"),  # noqa: SIM115 - the child holds it open
        )
        self._wait_until_listening()
        return self

    def _wait_until_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        stderr = (self.root / "nginx.stderr").read_text(errors="replace")
        log = self.log_text()
        self.cleanup()
        raise RuntimeError(f"nginx did not start on {self.host}:{self.port}:\n{stderr}\n{log}")
