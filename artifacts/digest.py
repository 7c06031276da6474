"""SHA-256 helpers: the one hash used for store keys, manifests, allowlists and samples."""

import hashlib
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex digest of in-memory data."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex digest of a file, streamed so large hotfix outputs never sit in memory."""
    with path.open("rb") as f:
        return sha256_stream(f)


def sha256_stream(f: BinaryIO) -> str:
    """Hex digest of the rest of an open binary stream."""
    digest = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
