"""Named points where a test may kill the process (SIGKILL, no cleanup), to prove crash safety.

Inert unless `RR_CRASH_AT` names the point: `RR_CRASH_AT=publish:after_channel` kills the process the
first time it passes there. Production code marks the moments between an external effect and the
bookkeeping of it, which is exactly where at-least-once execution could repeat or lose work.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("RR_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
