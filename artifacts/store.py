"""Content-addressed artifact store.

`ArtifactStore` is the interface (so an S3-compatible store can be added); `LocalStore` keeps
objects under `<root>/objects/<aa>/<sha256>`, read-only (0444) and never executable. Every read
recomputes the sha256, because a bundle that silently rotted on disk must never be shipped.
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from artifacts.digest import sha256_file, sha256_stream
from artifacts.errors import IntegrityError, InvalidInput, ObjectMissing


class ArtifactStore(Protocol):
    def put(self, path: Path) -> str:
        """Store a file's content; return its sha256 (the key)."""

    def get(self, digest: str) -> bytes:
        """Content of an object, verified."""

    def open(self, digest: str) -> BinaryIO:
        """Readable binary stream of an object, verified before it is returned."""

    def exists(self, digest: str) -> bool: ...


class LocalStore:
    """A directory on local disk (the caller passes `RR_DATA_DIR/artifacts`)."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InvalidInput(f"{digest!r}: not a sha256 hex digest")
        return self.root / "objects" / digest[:2] / digest

    def put(self, path: Path) -> str:
        digest = sha256_file(path)
        target = self._path(digest)
        if target.exists():
            self._verified(target, digest).close()  # a rotten copy must not be kept as "present"
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def open(self, digest: str) -> BinaryIO:
        return self._verified(self._path(digest), digest)

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def _verified(self, path: Path, digest: str) -> BinaryIO:
        try:
            f = path.open("rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{path}: no object {digest} in store {self.root}") from exc
        actual = sha256_stream(f)
        if actual != digest:
            f.close()
            raise IntegrityError(f"{path}: content hashes to {actual}, expected {digest}")
        f.seek(0)
        return f
