"""Propose a starting rule from a missed sample, for an analyst to review and refine.

Picks up to three distinctive printable strings (long, varied characters); when the sample has
none (packed or random-looking data) it falls back to the most varied 16-byte window as hex.
The proposal carries the metadata the repository policy requires, so it compiles as is.
"""

import re
from datetime import UTC, date, datetime
from pathlib import Path

from artifacts.digest import sha256_bytes
from artifacts.errors import InvalidInput

_PRINTABLE_RUN_RE = re.compile(rb"[\x20-\x7e]{8,}")
_MAX_STRINGS = 3
_MAX_STRING_LEN = 48
_WINDOW = 16
_SEARCH_LIMIT = 1 << 20


def propose_rule(*, sample: Path, author: str, today: date | None = None) -> str:
    """YARA source of a rule `Proposed_<sha256 prefix>` that detects `sample`."""
    try:
        data = sample.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{sample}: cannot read sample ({exc.strerror})") from exc
    if len(data) < _WINDOW:
        raise InvalidInput(f"{sample}: {len(data)} bytes is too small to propose a rule from")
    digest = sha256_bytes(data)
    strings = [f'$s{i} = "{_escape(text)}"' for i, text in enumerate(_distinctive_strings(data))]
    if not strings:
        strings = [f"$h0 = {{ {_best_window(data).hex(' ').upper()} }}"]
    created = (today or datetime.now(UTC).date()).isoformat()
    body = "\n".join(f"    {s}" for s in strings)
    return (
        f"rule Proposed_{digest[:12]} {{\n"
        "  meta:\n"
        f'    author = "{_escape(author)}"\n'
        f'    description = "Proposed from sample {digest}; review before committing"\n'
        '    severity = "medium"\n'
        f'    created = "{created}"\n'
        f'    reference = "sha256:{digest}"\n'
        "  strings:\n"
        f"{body}\n"
        "  condition:\n"
        "    all of them\n"
        "}\n"
    )


def _distinctive_strings(data: bytes) -> list[str]:
    runs = {m.group()[:_MAX_STRING_LEN].decode("ascii") for m in _PRINTABLE_RUN_RE.finditer(data[:_SEARCH_LIMIT])}
    ranked = sorted((run for run in runs if len(set(run)) >= 5), key=lambda r: (-len(set(r)), -len(r), r))
    return ranked[:_MAX_STRINGS]


def _best_window(data: bytes) -> bytes:
    windows = (data[i : i + _WINDOW] for i in range(0, min(len(data), _SEARCH_LIMIT) - _WINDOW + 1, _WINDOW))
    return max(windows, key=lambda w: len(set(w)))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
