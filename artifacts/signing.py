"""Signing releases: the `Signer` interface, and the Ed25519 key file that implements it today.

A `Signer` has a key id, a public key (PEM for clients to pin) and `sign(bytes)`; whatever signs a
bundle (`bundle.seal`, `build_base`, `build_hotfix`) takes one, so that the key may later live in an HSM
or a KMS without the builders changing. `FileKeySigner` is the one implementation: the key file below.

The signing key is created on purpose, never as a side effect, never readable by anyone but its owner.

Reading a missing key is an error that says how to create one (`relreq artifacts keygen`, or the first
start of `relreq serve`): a key made silently by a command pointed at the wrong data directory would
sign nothing anyone trusts, and every later check would fail with a puzzling "does not verify".

The private key lives at `<data dir>/keys/signing.key` (PKCS#8 PEM, mode 0600). The public key
is exchanged as PEM (SubjectPublicKeyInfo, `-----BEGIN PUBLIC KEY-----`), which update clients
and `openssl pkey -pubin` understand. Signatures are raw Ed25519 signatures, base64 on one line.
"""

import base64
import binascii
import os
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from artifacts.digest import sha256_bytes
from artifacts.errors import SignatureError, SigningKeyError

KEY_RELPATH = Path("keys") / "signing.key"


def signing_key(*, data_dir: Path) -> Ed25519PrivateKey:
    """Load the signing key; SigningKeyError naming the path and the command that creates it if missing."""
    path = data_dir / KEY_RELPATH
    if not path.exists():
        raise SigningKeyError(
            f"{path}: no signing key here; create one with `relreq artifacts keygen` (or let `relreq serve` "
            "create it on its first start), or point RR_DATA_DIR at the data directory that has it"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyError(f"{path}: mode {mode:o} lets others read the signing key; chmod 600 it")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return key


def create_signing_key(*, data_dir: Path) -> tuple[Ed25519PrivateKey, bool]:
    """Create the key (mode 0600, exclusive create) unless one exists: (the key, whether it was created now).

    An existing key is never replaced: every client pins it, so a new one would orphan them all.
    """
    path = data_dir / KEY_RELPATH
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return signing_key(data_dir=data_dir), False  # it exists (or another process created it first)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return signing_key(data_dir=data_dir), True


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes, *, origin: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise SigningKeyError(f"{origin}: not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{origin}: not an Ed25519 public key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint (sha256 of the raw key, 16 hex) recorded in manifests for rotation."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_bytes(raw)[:16]


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """Detached signature file content: base64 of the raw signature plus a newline."""
    return base64.b64encode(key.sign(data)) + b"\n"


def verify(public_key: Ed25519PublicKey, data: bytes, signature: bytes, *, origin: str) -> None:
    try:
        public_key.verify(base64.b64decode(signature.strip(), validate=True), data)
    except (InvalidSignature, binascii.Error) as exc:
        raise SignatureError(f"{origin}: signature does not verify with key {key_id(public_key)}") from exc


@runtime_checkable
class Signer(Protocol):
    """What signs manifests. `sign` returns the detached signature file's content (base64 of the raw
    Ed25519 signature plus a newline); anyone holding `public_key_pem()` can check it with `verify`."""

    key_id: str  # short fingerprint recorded in manifests (`key_id()`), for rotation

    def public_key(self) -> Ed25519PublicKey: ...

    def public_key_pem(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...


class FileKeySigner:
    """The Ed25519 key in `<data dir>/keys/signing.key` (`load`/`create`), or a key already in hand (tests)."""

    def __init__(self, key: Ed25519PrivateKey, *, path: Path | None = None) -> None:
        self._key = key
        self.path = path  # where it was read from; None for a key handed in
        self.key_id = key_id(key.public_key())

    @classmethod
    def load(cls, data_dir: Path) -> "FileKeySigner":
        """The installation's key; SigningKeyError naming `relreq artifacts keygen` if there is none."""
        return cls(signing_key(data_dir=data_dir), path=data_dir / KEY_RELPATH)

    @classmethod
    def create(cls, data_dir: Path) -> "tuple[FileKeySigner, bool]":
        """`create_signing_key` as a signer: (the signer, whether the key was created now)."""
        key, created = create_signing_key(data_dir=data_dir)
        return cls(key, path=data_dir / KEY_RELPATH), created

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def public_key_pem(self) -> bytes:
        return public_key_pem(self._key)

    def sign(self, data: bytes) -> bytes:
        return sign(self._key, data)

    def __repr__(self) -> str:  # never the key itself
        return f"FileKeySigner(key_id={self.key_id!r}, path={str(self.path) if self.path else None!r})"
