"""`relreq demo` end to end: a fresh embedded system, real Prefect, local Slack and SMTP (≈ 1 minute)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_the_demo_story_runs_to_the_end(tmp_path_factory):
    data = Path(tmp_path_factory.mktemp("demo-home"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RR_", "PREFECT_"))}
    env["RR_DATA_DIR"] = str(data)
    # the worker `relreq serve` starts asks for segment runs every second, not Prefect's 10 s: the story waits on
    # four of them (build, three stages); the operator's environment wins over serve's worker defaults
    env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
    relreq = Path(sys.executable).parent / "relreq"
    result = subprocess.run([relreq, "demo"], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "owner Boris Ivanov" in out  # Sunday 02:00 Moscow: the TAM is off, the duty manager owns it
    assert "TAM Tanya Smirnova off: Sunday" in out
    assert "verification passed" in out
    for stage in ("internal", "canary", "customer"):
        assert f"Sign-off of stage '{stage}'" in out
    assert "slack moscow-bank-support: [RR-" in out and "mail to soc@moscow-bank.example" in out
    assert "Исправление выпущено для вас" in out  # the bank reads Russian
    assert "audit chain intact" in out
