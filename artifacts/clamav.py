"""ClamAV as an independent second engine over the same rules and corpus.

`clamscan -d DIR` loads a directory of `.yar` files offline. ClamAV skips a `.yar` it cannot
parse with only a warning, so a rule it cannot load shows up here as a missed sample — that is
the point of the cross-check.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from artifacts.errors import CrossCheckError
from artifacts.yarax import RuleSource

_TIMEOUT_SECONDS = 300


def clamscan_path() -> str | None:
    return shutil.which("clamscan")


def clamav_detected(*, sources: list[RuleSource], samples: dict[str, bytes]) -> set[str]:
    """Names of the samples ClamAV flags when loaded with only these rules."""
    clamscan = clamscan_path()
    if clamscan is None:
        raise CrossCheckError("clamscan: not installed")
    with tempfile.TemporaryDirectory(prefix="rr-clamav-") as tmp:
        db, files = Path(tmp) / "db", Path(tmp) / "samples"
        db.mkdir()
        files.mkdir()
        for source in sources:
            (db / f"{source.namespace}-{Path(source.path).name}").write_text(source.text, encoding="utf-8")
        by_path = {}
        for index, (name, data) in enumerate(samples.items()):
            path = files / f"{index:06d}"
            path.write_bytes(data)
            by_path[str(path)] = name
        try:
            proc = subprocess.run(
                [clamscan, "--no-summary", "--infected", "-d", str(db), str(files)],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CrossCheckError(f"clamscan: no answer within {_TIMEOUT_SECONDS} s") from exc
    if proc.returncode not in (0, 1):
        raise CrossCheckError(f"clamscan: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return {by_path[line.split(": ", 1)[0]] for line in proc.stdout.splitlines() if line.endswith(" FOUND")}
