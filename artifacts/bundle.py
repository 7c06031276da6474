"""Signed bundles: a directory of files plus `manifest.json` and its detached `manifest.sig`.

The manifest lists the sha256 and size of every file; the signature covers the manifest's exact
bytes. Verification therefore checks the signature first, then every file hash — one changed
byte anywhere is caught, and an edited manifest no longer verifies. Bundles are assembled in a
hidden staging directory and renamed into place, so a failed build leaves no half bundle.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ValidationError, field_validator

from artifacts.digest import sha256_file
from artifacts.errors import IntegrityError, InvalidInput, first_problem
from artifacts.signing import Signer, verify
from artifacts.store import ArtifactStore

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


class FileEntry(BaseModel):
    sha256: str
    size: int


class Manifest(BaseModel):
    """Fields every bundle manifest carries."""

    schema_version: Literal[1] = 1
    version: str
    commit: str
    files: dict[str, FileEntry]
    builder: str
    built_at: datetime
    signing_key_id: str

    @field_validator("files")
    @classmethod
    def _relative_names(cls, files: dict[str, FileEntry]) -> dict[str, FileEntry]:
        """Names become paths on the client: never absolute, never climbing out of the bundle."""
        for name in files:
            parts = name.split("/")
            if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
                raise ValueError(f"file name {name!r} is not a plain relative path inside the bundle")
        return files


class BaseManifest(Manifest):
    kind: Literal["base"] = "base"
    parent_version: str | None
    rule_count: int
    namespaces: dict[str, int]
    allowlist_entries: int
    yara_x_version: str


class HotfixManifest(Manifest):
    kind: Literal["hotfix"] = "hotfix"
    private_to: str
    product: str
    product_version: str
    source_tag: str
    source_commit: str
    branch: str
    cherry_picked: list[str]
    build_command: list[str]
    build_seconds: float


M = TypeVar("M", bound=Manifest)


def file_entries(bundle_dir: Path) -> dict[str, FileEntry]:
    """Hash every file under the bundle directory (relative POSIX paths, sorted)."""
    return {
        path.relative_to(bundle_dir).as_posix(): FileEntry(sha256=sha256_file(path), size=path.stat().st_size)
        for path in sorted(bundle_dir.rglob("*"))
        if path.is_file()
    }


@contextmanager
def staged_bundle(final_dir: Path) -> Iterator[Path]:
    """Yield a staging directory that becomes `final_dir` only if the block succeeds."""
    if final_dir.exists():
        raise InvalidInput(f"{final_dir}: bundle already exists; refusing to overwrite it")
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=f".{final_dir.name}.staging-"))
    try:
        yield staging
        os.chmod(staging, 0o755)
        os.rename(staging, final_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def seal(bundle_dir: Path, manifest: Manifest, *, signer: Signer, store: ArtifactStore) -> None:
    """Write manifest + signature, make files read-only, and copy every file into the store."""
    data = (manifest.model_dump_json(indent=2) + "\n").encode()
    (bundle_dir / MANIFEST).write_bytes(data)
    (bundle_dir / SIGNATURE).write_bytes(signer.sign(data))
    for path in bundle_dir.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o444)
            store.put(path)


def manifest_fields(bundle_dir: Path, *, signer: Signer) -> dict:
    """The common manifest fields derived from the bundle content and the signer's key."""
    return {"files": file_entries(bundle_dir), "signing_key_id": signer.key_id}


def read_verified(bundle_dir: Path, *, public_key: Ed25519PublicKey, model: type[M]) -> M:
    """Check the signature, then every listed file's sha256; return the parsed manifest."""
    manifest_path = bundle_dir / MANIFEST
    try:
        data = manifest_path.read_bytes()
        signature = (bundle_dir / SIGNATURE).read_bytes()
    except FileNotFoundError as exc:
        raise IntegrityError(f"{exc.filename}: missing from bundle") from exc
    verify(public_key, data, signature, origin=str(bundle_dir / SIGNATURE))
    try:
        manifest = model.model_validate_json(data)
    except ValidationError as exc:
        raise IntegrityError(f"{manifest_path}: {first_problem(exc)}") from exc
    for name, entry in manifest.files.items():
        path = bundle_dir / name
        if not path.is_file():
            raise IntegrityError(f"{path}: listed in {MANIFEST} but missing")
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise IntegrityError(f"{path}: sha256 {actual} does not match manifest {entry.sha256}")
    return manifest
