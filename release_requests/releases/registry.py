"""Releases as signed facts: a bundle is registered only after its signature and every file verify.

A release never changes once registered (the same manifest again is a no-op, another one under the same key
a Conflict); files go into the content-addressed artifact store. Files an admin marks known-clean are what a
base must never detect: detections of them count towards an automatic halt.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from artifacts.allowlist import parse_allowlist
from artifacts.base import ALLOWLIST_FILE
from artifacts.bundle import MANIFEST, SIGNATURE, BaseManifest, HotfixManifest, read_verified
from artifacts.digest import sha256_bytes
from artifacts.errors import ArtifactError
from artifacts.signing import public_key_pem, signing_key, verify
from artifacts.store import ArtifactStore
from release_requests import access
from release_requests.audit.service import Actor, record
from release_requests.customers.models import Customer
from release_requests.errors import Conflict, InvalidInput, NotFound
from release_requests.people.models import Person
from release_requests.people.service import actor_of
from release_requests.releases.models import KnownCleanFile, Release
from release_requests.releases.naming import release_key
from release_requests.releases.schemas import KnownCleanIn
from release_requests.requests.models import ReleaseRequest


@lru_cache
def server_public_key(data_dir: Path) -> Ed25519PublicKey:
    """The public half of `<data dir>/keys/signing.key`: what releases must be signed with."""
    return signing_key(data_dir=data_dir).public_key()


@lru_cache
def server_public_key_pem(data_dir: Path) -> str:
    """The same key as PEM, as update clients receive it."""
    return public_key_pem(signing_key(data_dir=data_dir)).decode()


def register_release(
    session: Session,
    *,
    actor: Actor,
    bundle_dir: Path,
    store: ArtifactStore,
    request_id: str | None,
    private_to: str | None = None,
    product: str | None = None,
    public_key: Ed25519PublicKey,
) -> Release:
    """Record a signed bundle as a release after checking its signature and every file; put files in the store.

    Idempotent for the same manifest (the pipeline may retry); a different manifest under a known release key
    is a Conflict. `public_key` is the key releases must be signed with: the server's (`server_public_key`).
    """
    manifest = _verified_manifest(bundle_dir, public_key)
    data = (bundle_dir / MANIFEST).read_bytes()
    signature = (bundle_dir / SIGNATURE).read_bytes()
    try:  # what we store must be the very bytes that verified, not a file swapped in meanwhile
        verify(public_key, data, signature, origin=str(bundle_dir / SIGNATURE))
    except ArtifactError as exc:
        raise InvalidInput(str(exc), field="bundle_dir") from exc
    if isinstance(manifest, HotfixManifest):
        for name, given, signed in (
            ("private_to", private_to, manifest.private_to),
            ("product", product, manifest.product),
        ):
            if given is not None and given != signed:
                raise InvalidInput(
                    f"hotfix {manifest.version} is signed with {name} '{signed}', not '{given}'", field=name
                )
        private_to, product = manifest.private_to, manifest.product
    elif private_to is not None:
        raise InvalidInput(
            f"base {manifest.version} is public; it cannot be private to '{private_to}'", field="private_to"
        )
    if private_to is not None and session.get(Customer, private_to) is None:
        raise InvalidInput(f"unknown customer '{private_to}'", field="private_to")
    if request_id is not None and session.get(ReleaseRequest, request_id) is None:
        raise NotFound(f"no request '{request_id}'")
    parsed = json.loads(data)
    version = release_key(parsed)
    if len(version) > 80:
        raise InvalidInput(f"release key '{version}' is longer than 80 characters", field="bundle_dir")
    digest = sha256_bytes(data)
    for name in manifest.files:
        store.put(bundle_dir / name)
    inserted = session.execute(
        insert(Release)
        .values(
            version=version,
            kind=manifest.kind,
            request_id=request_id,
            private_to=private_to,
            product=product,
            manifest=parsed,
            manifest_json=data.decode(),
            manifest_sha256=digest,
            signature=signature.decode().strip(),
            signing_key_id=manifest.signing_key_id,
            files={e.sha256: {"name": name, "size": e.size} for name, e in manifest.files.items()},
            allowlist=_allowlisted(bundle_dir, manifest),
            registered_by=actor.name,
        )
        .on_conflict_do_nothing(index_elements=["version"])
        .returning(Release.version)
    ).scalar_one_or_none()
    release = session.get(Release, version, populate_existing=True)
    if inserted is None:
        if release.manifest_sha256 != digest:
            raise Conflict(
                f"release {version} is already registered with another manifest (sha256 {release.manifest_sha256})",
                version=version,
            )
        return release
    record(
        session,
        actor=actor,
        action="release.registered",
        entity_type="release",
        entity_id=version,
        request_id=request_id,
        after={
            "kind": release.kind,
            "manifest_sha256": digest,
            "signing_key_id": release.signing_key_id,
            "files": len(release.files),
            "private_to": private_to,
            "product": product,
        },
    )
    return release


def _verified_manifest(bundle_dir: Path, key: Ed25519PublicKey) -> BaseManifest | HotfixManifest:
    try:
        kind = json.loads((bundle_dir / MANIFEST).read_bytes()).get("kind")
    except (OSError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{bundle_dir / MANIFEST}: not a readable manifest ({exc})", field="bundle_dir") from exc
    model = HotfixManifest if kind == "hotfix" else BaseManifest
    try:
        return read_verified(bundle_dir, public_key=key, model=model)
    except ArtifactError as exc:
        raise InvalidInput(str(exc), field="bundle_dir") from exc


def _allowlisted(bundle_dir: Path, manifest: BaseManifest | HotfixManifest) -> list[str]:
    """The sha256 of every file the base's allowlist says is clean (detections on them count towards a halt)."""
    if manifest.kind != "base" or ALLOWLIST_FILE not in manifest.files:
        return []
    path = bundle_dir / ALLOWLIST_FILE
    return sorted(parse_allowlist(path.read_text(encoding="utf-8"), origin=str(path)))


def add_known_clean(session: Session, *, actor: Person, data: KnownCleanIn) -> KnownCleanFile:
    """An admin marks a file clean: a base detecting it counts towards a halt. Adding it twice keeps the first."""
    access.authorize(actor, "known_clean.add")
    inserted = session.execute(
        insert(KnownCleanFile)
        .values(sha256=data.sha256, reason=data.reason, added_by=actor_of(actor).name)
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(KnownCleanFile.sha256)
    ).scalar_one_or_none()
    row = session.get(KnownCleanFile, data.sha256, populate_existing=True)
    if inserted is not None:
        record(
            session,
            actor=actor_of(actor),
            action="known_clean.added",
            entity_type="file",
            entity_id=data.sha256,
            after={"sha256": data.sha256},
            reason=data.reason,
        )
    return row
