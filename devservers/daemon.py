"""A real server program run by the tests in a temporary folder of its own: stopped and removed as one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Self


class LocalDaemon:
    """Lifecycle shared by the local stand-ins that run a real server program (nginx, Dovecot): a subclass
    sets `root` (its folder) and `_process` in `start()`, which returns the instance."""

    root: Path | None
    _process: subprocess.Popen | None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()  # SIGTERM: a fast shutdown of the master and its workers
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def cleanup(self) -> None:
        self.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()
