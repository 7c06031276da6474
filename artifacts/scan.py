"""Scanning with a verified base bundle, honouring its allowlist.

This is what a customer's engineer runs to confirm a fix, and what verification uses, so both
see exactly the same verdicts. Only files the rules matched are hashed and looked up in the
allowlist: clean files cost one scan and nothing more.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yara_x
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from artifacts.allowlist import AllowlistEntry, parse_allowlist
from artifacts.base import ALLOWLIST_FILE, RULES_FILE
from artifacts.bundle import BaseManifest, read_verified
from artifacts.digest import sha256_bytes
from artifacts.errors import IntegrityError
from artifacts.yarax import YARA_X_VERSION, deserialize_rules, matching_rules

Verdict = Literal["clean", "detected", "allowlisted", "error"]


class FileScan(BaseModel):
    name: str
    verdict: Verdict
    rules: list[str] = []
    sha256: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class OpenBundle:
    """A base bundle whose signature and file hashes have been verified."""

    path: Path
    manifest: BaseManifest
    scanner: yara_x.Scanner
    allowlist: dict[str, AllowlistEntry]


def open_base_bundle(path: Path, *, public_key: Ed25519PublicKey) -> OpenBundle:
    """Verify, then load rules and allowlist; refuse blobs from another yara-x version."""
    manifest = read_verified(path, public_key=public_key, model=BaseManifest)
    if manifest.yara_x_version != YARA_X_VERSION:
        raise IntegrityError(
            f"{path / RULES_FILE}: built with yara-x {manifest.yara_x_version}, this scanner has "
            f"{YARA_X_VERSION} (serialized rules carry no format version)"
        )
    rules = deserialize_rules((path / RULES_FILE).read_bytes())
    allowlist = parse_allowlist((path / ALLOWLIST_FILE).read_text(encoding="utf-8"), origin=str(path / ALLOWLIST_FILE))
    return OpenBundle(path=path, manifest=manifest, scanner=yara_x.Scanner(rules), allowlist=allowlist)


def scan_bytes(bundle: OpenBundle, data: bytes, *, name: str) -> FileScan:
    """Verdict for in-memory data; `rules` lists matches even when the allowlist clears them."""
    try:
        rules = matching_rules(bundle.scanner, data)
    except (yara_x.ScanError, yara_x.TimeoutError) as exc:
        return FileScan(name=name, verdict="error", error=f"{name}: scan failed: {exc}")
    if not rules:
        return FileScan(name=name, verdict="clean")
    digest = sha256_bytes(data)
    verdict: Verdict = "allowlisted" if digest in bundle.allowlist else "detected"
    return FileScan(name=name, verdict=verdict, rules=rules, sha256=digest)


def scan_files(bundle: OpenBundle, paths: list[Path]) -> list[FileScan]:
    """Scan each file; an unreadable file is an `error` verdict, not an exception."""
    results = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            results.append(FileScan(name=str(path), verdict="error", error=f"{path}: {exc.strerror}"))
            continue
        results.append(scan_bytes(bundle, data, name=str(path)))
    return results


def exit_code(results: list[FileScan]) -> int:
    """0 clean, 1 detected, 2 error — an error wins, since an incomplete scan confirms nothing."""
    verdicts = {result.verdict for result in results}
    if "error" in verdicts:
        return 2
    return 1 if "detected" in verdicts else 0
