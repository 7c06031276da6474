"""/api/v1 channels (revert, resume), enrolled update clients, telemetry and known-clean files: thin handlers
over the release services."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from release_requests.access import needs
from release_requests.api.deps import AppContext, caller, context
from release_requests.errors import Unauthenticated
from release_requests.people.models import Person
from release_requests.releases import clients, registry, serving, stopping, telemetry
from release_requests.releases.models import EnrolledClient
from release_requests.releases.naming import CHANNEL_PATTERN, CLIENT_ID_PATTERN
from release_requests.releases.schemas import (
    ChannelOut,
    ClientEnrolIn,
    ClientEnrolled,
    ClientOut,
    DetectionBatch,
    DetectionsAccepted,
    HistoryOut,
    KnownCleanIn,
    KnownCleanOut,
    ResumeIn,
    RevertIn,
)

router = APIRouter(prefix="/api/v1", tags=["releases"])
ChannelPath = Path(pattern=CHANNEL_PATTERN)
ClientPath = Path(pattern=CLIENT_ID_PATTERN)
_client_bearer = HTTPBearer(
    auto_error=False, scheme_name="ClientCredential", description="Client credential from `relreq client enrol`"
)


def enrolled_client(
    credentials: HTTPAuthorizationCredentials | None = Depends(_client_bearer), ctx: AppContext = Depends(context)
) -> EnrolledClient:
    """The live client the credential belongs to. Checked before the body is even parsed: a batch without a
    valid credential is a 401, whatever it contains."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated(
            "missing client credential (Authorization: Bearer <secret from `relreq client enrol`>); "
            "only enrolled update clients may report telemetry"
        )
    with ctx.unit_of_work() as session:
        return clients.authenticate_client(session, secret=credentials.credentials)


@router.get("/channels", response_model=list[ChannelOut], openapi_extra=needs("channel.read"))
def list_channels(me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Every channel the caller may read, with its current and fallback version and rollout."""
    with ctx.unit_of_work() as session:
        return [serving.channel_out(p, viewer=me) for p in serving.list_channels(session, viewer=me)]


@router.get("/channels/{channel}/history", response_model=list[HistoryOut], openapi_extra=needs("channel.read"))
def channel_history(channel: str = ChannelPath, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Every move of the channel's pointer, oldest first."""
    with ctx.unit_of_work() as session:
        return serving.channel_history(session, viewer=me, channel=channel)


@router.post("/channels/{channel}/revert", response_model=ChannelOut, openapi_extra=needs("channel.revert"))
def revert(
    body: RevertIn, channel: str = ChannelPath, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    """Move the channel back one step, or to a version it served before (release manager, admin, emergency)."""
    with ctx.unit_of_work() as session:
        pointer = stopping.revert_as(
            session, person=me, channel=channel, to_version=body.to_version, reason=body.reason, config=ctx.config
        )
        return ChannelOut.model_validate(pointer)


@router.post("/channels/{channel}/resume", response_model=ChannelOut, openapi_extra=needs("channel.resume"))
def resume(
    body: ResumeIn, channel: str = ChannelPath, me: Person = Depends(caller), ctx: AppContext = Depends(context)
):
    """Let a channel stopped by an automatic halt take publishes again (release manager, admin; audited)."""
    with ctx.unit_of_work() as session:
        return ChannelOut.model_validate(stopping.resume(session, person=me, channel=channel, reason=body.reason))


@router.post("/clients", response_model=ClientEnrolled, status_code=201, openapi_extra=needs("client.enrol"))
def enrol_client(body: ClientEnrolIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Enrol an update client for your organisation; its secret is in this answer only (store it)."""
    with ctx.unit_of_work() as session:
        client, secret = clients.enrol(session, person=me, data=body)
        return ClientEnrolled(**ClientOut.model_validate(client).model_dump(), secret=secret)


@router.get("/clients", response_model=list[ClientOut], openapi_extra=needs("client.read"))
def list_clients(me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Enrolled update clients: every one for vendor staff, their own organisation's for customers."""
    with ctx.unit_of_work() as session:
        return [ClientOut.model_validate(c) for c in clients.list_clients(session, viewer=me)]


@router.delete("/clients/{client_id}", response_model=ClientOut, openapi_extra=needs("client.revoke"))
def revoke_client(client_id: str = ClientPath, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Revoke a client (staff, or its customer's users): its batches are refused and no longer count."""
    with ctx.unit_of_work() as session:
        return ClientOut.model_validate(clients.revoke(session, person=me, client_id=client_id))


@router.post(
    "/telemetry/detections",
    response_model=DetectionsAccepted,
    status_code=202,
    openapi_extra=needs("telemetry.report"),
)
def report_detections(
    body: DetectionBatch, client: EnrolledClient = Depends(enrolled_client), ctx: AppContext = Depends(context)
):
    """Enrolled update clients report what their base detected (Bearer: the client credential)."""
    with ctx.unit_of_work() as session:
        accepted = telemetry.record_detections(session, client=client, batch=body, config=ctx.config)
        return DetectionsAccepted(accepted=accepted)


@router.post("/known-clean", response_model=KnownCleanOut, status_code=201, openapi_extra=needs("known_clean.add"))
def add_known_clean(body: KnownCleanIn, me: Person = Depends(caller), ctx: AppContext = Depends(context)):
    """Mark a file clean (admin): any base detecting it counts towards an automatic halt."""
    with ctx.unit_of_work() as session:
        return KnownCleanOut.model_validate(registry.add_known_clean(session, actor=me, data=body))
