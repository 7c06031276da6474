"""The update client: fetch a channel's release, verify it, install it atomically.

This is what a customer's IT runs (`relreq client fetch`) and what the tests use. Trust comes from the
Ed25519 key, not from the server: the manifest's signature is checked against a pinned public key, every
file's sha256 and size against the signed manifest, and only then is anything installed.

Layout of DEST:

    DEST/current -> versions/<release>      symlink, switched atomically (rename over the old link)
    DEST/versions/<release>/                manifest.json + manifest.sig + the files: a verifiable bundle
    DEST/trusted-key.pem                    the trusted key: the pinned --public-key, else the one trusted on first use
    DEST/client.json                        this install's enrolled client id and secret (mode 0600)
    DEST/.incoming-*/                       downloads in progress (removed on success and on failure)

Downloads go into `.incoming-*` on the same file system; the verified bundle is renamed into `versions/`
and the `current` link is replaced with one rename, so a reader of `DEST/current` sees the old release or
the new one, never a mix. Any failure leaves `current` and the installed versions untouched. The
current and the previous release are kept (a local rollback is re-pointing the link); older ones are removed.

An enrolled install (`relreq client enrol --dest DEST`) keeps the credential the server issued in
`DEST/client.json`: fetches use its client id (the canary cohort), and `report` sends detections with it,
each batch with a fresh id and the time it was sent, so the server can refuse replays.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from artifacts.bundle import MANIFEST, SIGNATURE, BaseManifest, HotfixManifest, read_verified
from artifacts.errors import ArtifactError
from artifacts.files import fsync_dir, write_atomically
from artifacts.progress import Progress, silent
from artifacts.signing import load_public_key, verify
from release_requests.releases.naming import CLIENT_ID_PATTERN, release_key

TRUSTED_KEY = "trusted-key.pem"
CREDENTIAL = "client.json"
_CHUNK = 1 << 16


class UpdateFailed(Exception):
    """Nothing was installed: the message says what was refused or what failed."""


class ReportFailed(Exception):
    """The batch was not accepted (nothing counted): the message says why."""


class Credential(BaseModel):
    """What `DEST/client.json` holds: the server-chosen client id and its secret (the bearer credential)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    client_id: Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)]


def save_credential(dest: Path, credential: Credential) -> Path:
    """Write `DEST/client.json` readable by its owner only; an existing credential is never overwritten."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / CREDENTIAL
    tmp = dest / f".{CREDENTIAL}.{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(credential.model_dump_json(indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(tmp, path)  # fails if a credential appeared meanwhile: one install, one identity
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dest)
    return path


def load_credential(dest: Path) -> Credential | None:
    """The install's credential, None if it is not enrolled; refused if others may read it or it is broken."""
    path = dest / CREDENTIAL
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise PermissionError(f"{path} is readable by others (mode {mode & 0o777:o}); run: chmod 600 {path}")
    try:
        return Credential.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise ValueError(f"{path} is not a client credential ({exc.error_count()} problems); enrol again") from None


@dataclass(frozen=True)
class InstallResult:
    channel: str
    version: str
    installed: bool  # False: this release was already current
    path: str
    files: int
    bytes: int
    previous: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def fetch(
    *,
    api_url: str,
    channel: str,
    client_id: str | None,
    dest: Path,
    public_key_pem: bytes | None = None,
    token: str | None = None,
    progress: Progress = silent,
    timeout: float = 60,
) -> InstallResult:
    """Install the release `channel` serves to `client_id` into `dest`; UpdateFailed if anything is off.

    `client_id` defaults to the enrolled one in `dest/client.json` (and may not differ from it: the cohort
    that gets a base first must be the one whose telemetry can stop it). `public_key_pem` pins the
    signing key (the secure choice). Without it the key saved in `dest/trusted-key.pem` is used, and on the
    very first run it is fetched from the server and saved (trust on first use: that first answer must not
    come from an attacker).
    """
    client_id = _client_id(dest, client_id)
    dest.mkdir(parents=True, exist_ok=True)
    headers = {"X-Client-Id": client_id} | ({"Authorization": f"Bearer {token}"} if token else {})
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=timeout) as http:
            key = _trusted_key(http, dest, public_key_pem)
            body = _get_json(http, f"/updates/{channel}/manifest.json")
            data, manifest = _verified_manifest(body, key)
            version = release_key(json.loads(data))
            if body.get("version") != version:
                raise UpdateFailed(f"server says version {body.get('version')!r}, the signed manifest is {version}")
            installed = _install(
                http,
                dest=dest,
                channel=channel,
                body=body,
                data=data,
                manifest=manifest,
                version=version,
                key=key,
                progress=progress,
            )
    except httpx.HTTPError as exc:
        raise UpdateFailed(f"cannot talk to {api_url}: {exc}") from exc
    saved = dest / TRUSTED_KEY
    if public_key_pem is not None and (not saved.exists() or saved.read_bytes() != public_key_pem):
        write_atomically(saved, public_key_pem)  # a pin that verified is what this install trusts from now on
    return installed


def _client_id(dest: Path, given: str | None) -> str:
    try:
        credential = load_credential(dest)
    except (OSError, ValueError) as exc:
        raise UpdateFailed(str(exc)) from None
    if credential is None:
        if given is None:
            raise UpdateFailed(f"no client id: give one, or enrol {dest} first (relreq client enrol --dest {dest})")
        return given
    if given is not None and given != credential.client_id:
        raise UpdateFailed(f"{dest} is enrolled as client {credential.client_id}, not {given}; leave the id out")
    return credential.client_id


def report(*, api_url: str, dest: Path, detections: list[dict], timeout: float = 30) -> int:
    """Send one batch of detections as the install enrolled in `dest`; the number accepted, or ReportFailed.

    Each call is a new batch (fresh `batch_id`, `sent_at` now in UTC); the server refuses one it has seen.
    """
    try:
        credential = load_credential(dest)
    except (OSError, ValueError) as exc:
        raise ReportFailed(str(exc)) from None
    if credential is None:
        raise ReportFailed(f"{dest} is not enrolled: run relreq client enrol --dest {dest}")
    batch = {"batch_id": str(uuid.uuid4()), "sent_at": datetime.now(UTC).isoformat(), "detections": detections}
    headers = {"Authorization": f"Bearer {credential.secret}"}
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=timeout) as http:
            response = http.post("/api/v1/telemetry/detections", json=batch)
    except httpx.HTTPError as exc:
        raise ReportFailed(f"cannot talk to {api_url}: {exc}") from exc
    if response.status_code != 202:
        raise ReportFailed(f"HTTP {response.status_code} {_message(response)}")
    return response.json()["accepted"]


def _get_json(http: httpx.Client, path: str) -> dict:
    response = http.get(path)
    if response.status_code != 200:
        raise UpdateFailed(f"GET {path}: HTTP {response.status_code} {_message(response)}")
    try:
        return response.json()
    except ValueError as exc:
        raise UpdateFailed(f"GET {path}: not JSON") from exc


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        return response.text[:200]


def _trusted_key(http: httpx.Client, dest: Path, pinned: bytes | None) -> Ed25519PublicKey:
    saved = dest / TRUSTED_KEY
    if pinned is not None:
        return _load_key(pinned, origin="--public-key")
    if saved.exists():
        return _load_key(saved.read_bytes(), origin=str(saved))
    response = http.get("/updates/public-key.pem")
    if response.status_code != 200:
        raise UpdateFailed(f"GET /updates/public-key.pem: HTTP {response.status_code}")
    key = _load_key(response.content, origin="/updates/public-key.pem")
    write_atomically(saved, response.content)
    return key


def _load_key(pem: bytes, *, origin: str) -> Ed25519PublicKey:
    try:
        return load_public_key(pem, origin=origin)
    except ArtifactError as exc:
        raise UpdateFailed(str(exc)) from exc


def _verified_manifest(body: dict, key: Ed25519PublicKey) -> tuple[bytes, BaseManifest | HotfixManifest]:
    """The signed bytes and their parsed form; the unsigned rest of the response is never trusted."""
    try:
        data = body["manifest_json"].encode()
        signature = body["signature"].encode()
    except (KeyError, AttributeError) as exc:
        raise UpdateFailed("the manifest response has no manifest_json/signature") from exc
    try:
        verify(key, data, signature, origin="manifest")
    except ArtifactError as exc:
        raise UpdateFailed(f"refused: {exc}") from exc
    try:
        kind = json.loads(data).get("kind")
        model = HotfixManifest if kind == "hotfix" else BaseManifest
        manifest = model.model_validate_json(data)
    except (ValueError, ValidationError) as exc:
        raise UpdateFailed(f"refused: the signed manifest is not a {kind} manifest ({exc})") from exc
    for name in manifest.files:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or name in (MANIFEST, SIGNATURE) or not name:
            raise UpdateFailed(f"refused: the manifest names an unsafe file path {name!r}")
    return data, manifest


def _install(
    http: httpx.Client,
    *,
    dest: Path,
    channel: str,
    body: dict,
    data: bytes,
    manifest: BaseManifest | HotfixManifest,
    version: str,
    key: Ed25519PublicKey,
    progress: Progress,
) -> InstallResult:
    current = dest / "current"
    if current.exists() and not current.is_symlink():
        raise UpdateFailed(f"{current} exists and is not a symlink managed by the update client")
    previous = os.readlink(current) if current.is_symlink() else None
    dir_name = version.replace("/", "_")
    total = sum(e.size for e in manifest.files.values())
    result = InstallResult(
        channel,
        version,
        False,
        str(dest / "versions" / dir_name),
        len(manifest.files),
        total,
        previous and Path(previous).name,
    )
    if (
        previous == f"versions/{dir_name}"
        and (current / MANIFEST).is_file()
        and (current / MANIFEST).read_bytes() == data
    ):
        return result
    # Only same-server paths: an absolute URL would carry the bearer token to another host.
    urls = {
        f.get("sha256"): f["url"]
        for f in body.get("files", [])
        if isinstance(f, dict)
        and isinstance(f.get("url"), str)
        and f["url"].startswith("/")
        and not f["url"].startswith("//")
    }
    with _incoming(dest) as incoming:
        staging = incoming / dir_name
        done = 0
        for name, entry in manifest.files.items():
            url = urls.get(entry.sha256) or f"/updates/{channel}/artifacts/{entry.sha256}"
            done = _download(http, url, staging / name, entry.sha256, entry.size, done, total, progress)
        (staging / MANIFEST).write_bytes(data)
        (staging / SIGNATURE).write_bytes(body["signature"].encode() + b"\n")
        try:  # the bundle on disk verifies by itself, exactly as `relreq artifacts scan --bundle` will check it
            read_verified(staging, public_key=key, model=type(manifest))
        except ArtifactError as exc:
            raise UpdateFailed(f"refused: {exc}") from exc
        versions = dest / "versions"
        versions.mkdir(exist_ok=True)
        target = versions / dir_name
        if target.exists():  # an earlier copy of this release (e.g. after a revert): replace it whole
            os.rename(target, incoming / "replaced")
        os.rename(staging, target)
        link = dest / f".current-{uuid.uuid4().hex}"
        os.symlink(f"versions/{dir_name}", link)
        os.replace(link, current)
        fsync_dir(dest)
    _prune(versions, keep={dir_name, previous and Path(previous).name})
    progress(total, total, f"installed {version}")
    return InstallResult(**{**result.as_dict(), "installed": True})


@contextmanager
def _incoming(dest: Path) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir=dest, prefix=".incoming-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _download(
    http: httpx.Client, url: str, path: Path, sha256: str, size: int, done: int, total: int, progress: Progress
) -> int:
    """Stream one file to `path`, refusing it as soon as it is longer than signed, and unless its hash matches."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest, written = hashlib.sha256(), 0
    with http.stream("GET", url) as response, path.open("wb") as out:
        if response.status_code != 200:
            response.read()
            raise UpdateFailed(f"GET {url}: HTTP {response.status_code} {_message(response)}")
        for chunk in response.iter_bytes(_CHUNK):
            written += len(chunk)
            if written > size:
                raise UpdateFailed(f"refused: {path.name} is longer than the {size} bytes the manifest signs")
            digest.update(chunk)
            out.write(chunk)
            progress(done + written, total, f"downloading {path.name}")
        out.flush()
        os.fsync(out.fileno())
    if written != size:
        raise UpdateFailed(f"refused: {path.name} is {written} bytes, the manifest signs {size} (partial download)")
    if digest.hexdigest() != sha256:
        raise UpdateFailed(f"refused: {path.name} has sha256 {digest.hexdigest()}, the manifest signs {sha256}")
    return done + written


def _prune(versions: Path, *, keep: set[str | None]) -> None:
    for child in versions.iterdir():
        if child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
