"""Samples are evidence and may be live malware: stored content-addressed, never executable, checked.

Bytes are streamed to a temporary file while hashing (nothing larger than the limit is ever kept),
compared with the hash the uploader declared, then renamed into `<dir>/ab/cd/<sha256>` read-only.
Every read recomputes the hash, so a file altered on disk is refused rather than served.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from release_requests.errors import InvalidInput, PayloadTooLarge

_CHUNK = 1 << 20
_MODE = 0o440  # read-only, never executable


def sample_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256[2:4] / sha256


def store_sample(root: Path, stream: BinaryIO, *, max_bytes: int, declared_sha256: str | None) -> tuple[str, int]:
    """Store one upload; returns (sha256, size). Nothing is left behind when it is refused."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp_name = tempfile.mkstemp(dir=root / "tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"sample is larger than the limit of {max_bytes} bytes", field="file", limit=max_bytes
                    )
                digest.update(chunk)
                out.write(chunk)
        sha256 = digest.hexdigest()
        if declared_sha256 and declared_sha256.lower() != sha256:
            raise InvalidInput(
                f"uploaded bytes hash to {sha256}, not the declared {declared_sha256.lower()}", field="sha256"
            )
        final = sample_path(root, sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, _MODE)
        os.replace(tmp, final)
        return sha256, size
    finally:
        tmp.unlink(missing_ok=True)


def verified_sample_path(root: Path, sha256: str) -> Path:
    """The stored file, after checking it still hashes to `sha256` (it is read-only, so it stays so)."""
    path = sample_path(root, sha256)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise InvalidInput(f"stored sample {sha256} is corrupt on disk; refusing to serve it", field="sha256")
    return path
