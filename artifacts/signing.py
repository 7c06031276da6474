"""Ed25519 signing key: created on purpose, never as a side effect, never readable by anyone but its owner.

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
