"""The reviewed false-positive allowlist: `allowlist/sha256.tsv`.

Kept outside the engine on purpose: only files that already matched are hashed and looked up,
so clean files cost nothing (an in-rule `hash.sha256` condition costs ~40 % throughput).
Columns: sha256, reason, request id, who, when (ISO-8601 UTC). One header line.
"""

import re
from datetime import datetime

from pydantic import BaseModel, ValidationError, field_validator

from artifacts.errors import InvalidInput, RepoLayoutError, first_problem

HEADER = "sha256\treason\trequest_id\twho\twhen\n"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class AllowlistEntry(BaseModel):
    sha256: str
    reason: str
    request_id: str
    who: str
    when: datetime

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not _SHA256_RE.match(value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value

    @field_validator("reason", "request_id", "who")
    @classmethod
    def _one_cell(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "\t\r\n"):
            raise ValueError("must be non-empty and contain no tab or newline")
        return value

    def to_line(self) -> str:
        when = self.when.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.sha256}\t{self.reason}\t{self.request_id}\t{self.who}\t{when}\n"


def parse_allowlist(text: str, *, origin: str) -> dict[str, AllowlistEntry]:
    """sha256 -> entry; malformed lines are refused as `origin:line: ...`."""
    lines = text.split("\n")  # not splitlines(): a form feed inside a reason is not a new entry
    if not lines or lines[0] + "\n" != HEADER:
        raise RepoLayoutError(f"{origin}:1: expected header {HEADER.strip()!r}")
    entries: dict[str, AllowlistEntry] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 5:
            raise RepoLayoutError(f"{origin}:{number}: expected 5 tab-separated columns, got {len(cells)}")
        try:
            entry = AllowlistEntry(**dict(zip(("sha256", "reason", "request_id", "who", "when"), cells, strict=True)))
        except ValidationError as exc:
            raise RepoLayoutError(f"{origin}:{number}: {first_problem(exc)}") from exc
        if entry.sha256 in entries:
            raise RepoLayoutError(f"{origin}:{number}: duplicate sha256 {entry.sha256}")
        entries[entry.sha256] = entry
    return entries


def make_entry(**fields) -> AllowlistEntry:
    """Build a new entry from user input, refusing it as InvalidInput rather than a layout error."""
    try:
        return AllowlistEntry(**fields)
    except ValidationError as exc:
        raise InvalidInput(f"allowlist entry: {first_problem(exc)}") from exc
