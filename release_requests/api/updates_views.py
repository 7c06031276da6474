"""/updates: what update clients download — a channel's signed manifest, its files, the public key.

Public channels need no token. A customer's channel and every hotfix channel answer only to that
customer's users and vendor staff; anybody else (no token, a bad token, another customer's token) gets
404, exactly as for a channel that does not exist.
"""

from __future__ import annotations

import base64
from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from artifacts.store import ArtifactStore, LocalStore
from release_requests.access import needs
from release_requests.api.deps import AppContext, context
from release_requests.errors import Unauthenticated
from release_requests.people.models import Person
from release_requests.people.service import authenticate
from release_requests.releases import registry, serving
from release_requests.releases.naming import CHANNEL_PATTERN, CLIENT_ID_PATTERN, SHA256_PATTERN
from release_requests.releases.schemas import ManifestOut

router = APIRouter(prefix="/updates", tags=["updates"])
_bearer = HTTPBearer(auto_error=False, description="Needed only for customer and hotfix channels")

Channel = Annotated[str, Path(pattern=CHANNEL_PATTERN)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _viewer(session: Session, credentials: HTTPAuthorizationCredentials | None) -> Person | None:
    """The caller, or None: an invalid token is treated like none, so it cannot probe private channels."""
    if credentials is None or not credentials.credentials:
        return None
    try:
        return authenticate(session, token=credentials.credentials)
    except Unauthenticated:
        return None


@router.get("/public-key.pem", response_class=PlainTextResponse, openapi_extra=needs("public"))
def public_key(ctx: AppContext = Depends(context)) -> PlainTextResponse:
    """The Ed25519 key manifests are signed with (PEM). Clients should pin it rather than fetch it each time."""
    return PlainTextResponse(registry.server_public_key_pem(ctx.settings.data_dir), media_type="application/x-pem-file")


@router.get("/{channel}/manifest.json", response_model=ManifestOut, openapi_extra=needs("update.download"))
def manifest(
    channel: Channel,
    credentials: Credentials,
    client_id: Annotated[str | None, Query(pattern=CLIENT_ID_PATTERN, description="Stable client id")] = None,
    x_client_id: Annotated[str | None, Header(pattern=CLIENT_ID_PATTERN)] = None,
    ctx: AppContext = Depends(context),
) -> Response:
    """The release this client should run, with its signed manifest and the key to check it with."""
    with ctx.unit_of_work() as session:
        viewer = _viewer(session, credentials)
        served = serving.served_release(session, channel=channel, client_id=x_client_id or client_id, viewer=viewer)
        body = serving.manifest_body(session, served, registry.server_public_key_pem(ctx.settings.data_dir))
    return Response(
        body,
        media_type="application/json",
        headers={
            "Cache-Control": "private, no-cache" if served.private else "no-cache",
            "Vary": "Authorization, X-Client-Id",
        },
    )


class _ArtifactResponse(FileResponse):
    chunk_size = 1 << 20  # starlette's 64 KiB chunks cost a thread hop each: ~4x slower on large files


@router.get("/{channel}/artifacts/{sha256}", response_class=FileResponse, openapi_extra=needs("update.download"))
def artifact(
    channel: Channel,
    sha256: Annotated[str, Path(pattern=SHA256_PATTERN)],
    credentials: Credentials,
    ctx: AppContext = Depends(context),
) -> FileResponse:
    """One file of the channel's release, by content hash; supports Range; integrity headers name the hash."""
    with ctx.unit_of_work() as session:
        name, private = serving.served_file(
            session, channel=channel, sha256=sha256, viewer=_viewer(session, credentials)
        )
    store: ArtifactStore = LocalStore(ctx.settings.artifacts_dir)
    path = store.local_path(sha256)  # checked against the digest: a rotten object is an error, never shipped
    digest = base64.b64encode(bytes.fromhex(sha256)).decode()
    return _ArtifactResponse(
        path,
        media_type="application/octet-stream",
        filename=PurePosixPath(name).name,
        headers={
            "ETag": f'"{sha256}"',
            "Digest": f"sha-256={digest}",
            "Repr-Digest": f"sha-256=:{digest}:",
            "X-Content-SHA256": sha256,
            # content-addressed: the bytes under this URL never change
            "Cache-Control": f"{'private' if private else 'public'}, max-age=31536000, immutable",
        },
    )
