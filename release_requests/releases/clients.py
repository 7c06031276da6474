"""Enrolled update clients: the per-install credentials that telemetry must carry.

Before enrolment, anyone could report detections under any client id they invented, and four invented
clients could halt `global`. Now the server chooses the client id and issues a secret, shown once and
kept only as its SHA-256 (the same scheme as people's API tokens); telemetry is accepted only with a
live credential and counted for the organisation the client was enrolled for. A customer's user enrols
machines of that customer; vendor staff enrol the vendor's own machines (organisation `vendor`).
Revoking a client refuses its future batches and discounts everything it reported before.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import record
from release_requests.clock import db_now
from release_requests.errors import NotFound, Unauthenticated
from release_requests.people.models import Person
from release_requests.people.service import actor_of, hash_token
from release_requests.releases.models import EnrolledClient
from release_requests.releases.schemas import ClientEnrolIn

CLIENT_ID_PREFIX = "uc-"
SECRET_PREFIX = "rrc_"  # tells a client credential apart from a person's API token (`rr_`) at a glance


def _owned_by(person: Person) -> str | None:
    """The organisation a person's clients belong to: their customer, or None (the vendor) for staff."""
    return None if access.is_staff(person) else person.customer_id


def enrol(session: Session, *, person: Person, data: ClientEnrolIn) -> tuple[EnrolledClient, str]:
    """A new client for the person's organisation and its secret (the caller shows it once; never stored)."""
    access.authorize(person, "client.enrol")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    actor = actor_of(person)
    client = EnrolledClient(
        id=CLIENT_ID_PREFIX + secrets.token_hex(8),
        secret_hash=hash_token(secret),
        customer_id=_owned_by(person),
        name=data.name,
        enrolled_by=actor.name,
        enrolled_by_id=actor.id,
    )
    session.add(client)
    session.flush()
    session.refresh(client)
    record(
        session,
        actor=actor,
        action="client.enrolled",
        entity_type="client",
        entity_id=client.id,
        after={"organisation": client.organisation, "customer_id": client.customer_id, "name": client.name},
    )
    return client, secret


def list_clients(session: Session, *, viewer: Person) -> list[EnrolledClient]:
    """Vendor staff see every client; a customer's users see their own organisation's."""
    access.authorize(viewer, "client.read")
    query = select(EnrolledClient).order_by(EnrolledClient.enrolled_at, EnrolledClient.id)
    if not access.is_staff(viewer):
        query = query.where(EnrolledClient.customer_id == viewer.customer_id)
    return list(session.scalars(query))


def revoke(session: Session, *, person: Person, client_id: str) -> EnrolledClient:
    """Staff, or a user of the owning customer, revoke a client; revoking twice keeps the first revocation.

    Another organisation's client is reported as not found, so customers cannot probe each other's ids.
    """
    access.authorize(person, "client.revoke")
    client = session.get(EnrolledClient, client_id, with_for_update=True)
    if client is None or (not access.is_staff(person) and client.customer_id != person.customer_id):
        raise NotFound(f"no client '{client_id}'")
    if client.revoked_at is not None:
        return client
    actor = actor_of(person)
    client.revoked_at, client.revoked_by = db_now(session), actor.name
    record(
        session,
        actor=actor,
        action="client.revoked",
        entity_type="client",
        entity_id=client.id,
        before={"revoked_at": None},
        after={"organisation": client.organisation, "revoked_at": client.revoked_at},
    )
    return client


def authenticate_client(session: Session, *, secret: str) -> EnrolledClient:
    """The live client holding `secret`; Unauthenticated for an unknown or revoked credential."""
    client = session.scalar(select(EnrolledClient).where(EnrolledClient.secret_hash == hash_token(secret)))
    if client is None:
        raise Unauthenticated("unknown client credential: enrol this install with `relreq client enrol`")
    if client.revoked_at is not None:
        raise Unauthenticated(f"client {client.id} was revoked at {client.revoked_at.isoformat()}; enrol again")
    return client
