"""Content-addressed artifact store.

`ArtifactStore` is the interface everything that stores or serves artifacts uses (bundles are put in
it when sealed and registered; `/updates/…/artifacts/{sha256}` serves from it), so that an
S3-compatible store can be added without touching them. `LocalStore`, the one implementation, keeps
objects under `<root>/objects/<aa>/<sha256>`, read-only (0444) and never executable. Every read is
checked against the sha256, because a bundle that silently rotted on disk must never be shipped.
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from artifacts.digest import sha256_file, sha256_stream
from artifacts.errors import IntegrityError, InvalidInput, ObjectMissing


@runtime_checkable
class ArtifactStore(Protocol):
    """Objects keyed by the sha256 of their content. Reads raise ObjectMissing for an unknown digest and
    IntegrityError for content that no longer matches it; an invalid digest is InvalidInput."""

    def put(self, path: Path) -> str:
        """Store a file's content; return its sha256 (the key). Idempotent."""

    def exists(self, digest: str) -> bool: ...

    def open(self, digest: str) -> BinaryIO:
        """Readable binary stream of an object, verified before it is returned."""

    def get(self, digest: str) -> bytes:
        """Content of an object, verified."""

    def local_path(self, digest: str) -> Path:
        """A path on this machine holding the verified object, for readers that need a file (a ranged
        download served with sendfile); a remote store implements it with a local cache."""


_checked: dict[Path, tuple[int, int, int]] = {}  # object path → (inode, size, mtime) when it last verified


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

    def local_path(self, digest: str) -> Path:
        """The object's path, its content checked against the digest once per (inode, size, mtime).

        `open` re-hashes on every call, which would cost a full read per download; the check is repeated
        whenever the file changes on disk (and an update client verifies every byte it installs anyway)."""
        path = self._path(digest)
        checked = _checked.get(path)
        if checked is not None:
            try:
                current = path.stat()
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_ino, current.st_size, current.st_mtime_ns) == checked:
                return path
        with self._verified(path, digest) as f:  # ObjectMissing, or IntegrityError for a rotten object
            opened = os.fstat(f.fileno())
        _checked[path] = (opened.st_ino, opened.st_size, opened.st_mtime_ns)
        return path

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
