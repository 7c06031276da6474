"""What a channel serves to whom: manifests and files for update clients, channel lists and history for people.

`served_release` is the hottest path there is (every update client, every few minutes): one query reads
the pointer and who may read both of its releases. A private channel the caller may not read is NotFound,
so its existence is not revealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, aliased

from release_requests import access
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.errors import NotFound
from release_requests.people.models import Person
from release_requests.people.service import actor_as_seen, public_actor
from release_requests.releases.cohorts import in_cohort
from release_requests.releases.models import ChannelHistory, ChannelPointer, Release
from release_requests.releases.schemas import ChannelOut, FileOut, HistoryOut, ManifestOut
from release_requests.releases.telemetry import HaltWatch, halt_watch
from release_requests.requests.presentation import foreign_id_masker


def _readable(session: Session, viewer: Person | None, customer_id: str | None) -> bool:
    """Public, or the viewer may see that customer (their own users, their TAMs, vendor staff)."""
    if customer_id is None:
        return True
    return viewer is not None and access.can_see_customer(session, viewer, customer_id)


def _channel_readable(session: Session, viewer: Person | None, pointer: ChannelPointer) -> bool:
    """Staff-only channels (the vendor's own machines) need a staff token; others follow their customer."""
    if pointer.staff_only:
        return access.is_staff(viewer)
    return _readable(session, viewer, pointer.private_to)


def _visible_pointer(session: Session, *, channel: str, viewer: Person | None) -> ChannelPointer:
    """The channel if `viewer` may read it; otherwise NotFound, so a private channel's existence is not revealed."""
    pointer = session.get(ChannelPointer, channel)
    if pointer is None or not _channel_readable(session, viewer, pointer):
        raise NotFound(f"no channel '{channel}'")
    return pointer


@dataclass(frozen=True)
class Served:
    """What one client gets from a channel: the pointer as read, and which release of it (the row is loaded
    only when the caller has not rendered it already: releases never change)."""

    pointer: ChannelPointer
    version: str
    private: bool


_current, _previous = aliased(Release), aliased(Release)
_SERVED = (  # built once: constructing aliased joins costs more than running the query
    select(ChannelPointer, _current.private_to, _previous.private_to)
    .join(_current, _current.version == ChannelPointer.version)
    .outerjoin(_previous, _previous.version == ChannelPointer.previous_version)
    .where(ChannelPointer.channel == bindparam("channel"))
)


def served_release(session: Session, *, channel: str, client_id: str | None, viewer: Person | None) -> Served:
    """The release this client gets from `channel`: the new one inside the canary cohort, else the fallback.

    One query reads the pointer and who may read both of its releases: this is the hottest path there is.
    """
    row = session.execute(_SERVED, {"channel": channel}).first()
    if row is None or not _channel_readable(session, viewer, row[0]):
        raise NotFound(f"no channel '{channel}'")
    pointer, private_to = row[0], row[1]
    version = pointer.version
    if pointer.previous_version is not None and not in_cohort(
        channel=channel, client_id=client_id, percent=pointer.rollout_percent
    ):
        version, private_to = pointer.previous_version, row[2]
    if not _readable(session, viewer, private_to):
        raise NotFound(f"no channel '{channel}'")
    return Served(pointer=pointer, version=version, private=pointer.private_to is not None or private_to is not None)


_bodies: dict[tuple, bytes] = {}
_MAX_BODIES = 1024


def manifest_body(session: Session, served: Served, public_key_pem: str) -> bytes:
    """The manifest response for one (channel, release, publication), byte for byte: what the API answers and
    what the static update tree holds (`static_tree`), so both serve the same bytes.

    Rendered once per process: releases never change, and a moved pointer has a new `published_at`, so a
    cached body is never stale.
    """
    pointer = served.pointer
    key = (pointer.channel, served.version, pointer.published_at, public_key_pem)
    body = _bodies.get(key)
    if body is None:
        release = session.get(Release, served.version)
        if len(_bodies) >= _MAX_BODIES:
            _bodies.clear()
        body = _bodies[key] = (
            ManifestOut(
                channel=pointer.channel,
                version=release.version,
                kind=release.kind,
                files=[
                    FileOut(
                        name=name,
                        sha256=entry["sha256"],
                        size=entry["size"],
                        url=f"/updates/{pointer.channel}/artifacts/{entry['sha256']}",
                    )
                    for name, entry in release.manifest["files"].items()
                ],
                manifest=release.manifest,
                manifest_json=release.manifest_json,
                signature=release.signature,
                signing_key_id=release.signing_key_id,
                public_key_pem=public_key_pem,
                published_at=pointer.published_at,
            )
            .model_dump_json()
            .encode()
        )
    return body


def served_file(session: Session, *, channel: str, sha256: str, viewer: Person | None) -> tuple[str, bool]:
    """(file name, is private) of a file of the channel's current or fallback release.

    The fallback's files stay downloadable so that a client that read the manifest just before the pointer
    moved still completes its download.
    """
    pointer = _visible_pointer(session, channel=channel, viewer=viewer)
    versions = [v for v in (pointer.version, pointer.previous_version) if v]
    for release in session.scalars(select(Release).where(Release.version.in_(versions), Release.files.has_key(sha256))):
        if _readable(session, viewer, release.private_to):
            return release.files[sha256]["name"], pointer.private_to is not None or release.private_to is not None
    raise NotFound(f"channel {channel} serves no file {sha256}")


def list_channels(session: Session, *, viewer: Person) -> list[ChannelPointer]:
    access.authorize(viewer, "channel.read")
    pointers = session.scalars(select(ChannelPointer).order_by(ChannelPointer.channel))
    return [p for p in pointers if _channel_readable(session, viewer, p)]


def channel_history(session: Session, *, viewer: Person, channel: str) -> list[HistoryOut]:
    """Every move of the channel. A public channel serves every customer's fixes: a customer reading its history
    sees their own request ids only (others' become "another report"), never whose fix moved it."""
    access.authorize(viewer, "channel.read")
    _visible_pointer(session, channel=channel, viewer=viewer)
    rows = [
        HistoryOut.model_validate(h)
        for h in session.scalars(
            select(ChannelHistory).where(ChannelHistory.channel == channel).order_by(ChannelHistory.id)
        )
    ]
    if access.is_staff(viewer):
        return rows
    texts = [f"{h.request_id} {h.reason}" for h in rows]
    mask = foreign_id_masker(session, customer_id=viewer.customer_id, texts=texts)
    return [
        h.model_copy(
            update={
                "request_id": h.request_id if mask(h.request_id) == h.request_id else None,
                "reason": mask(h.reason),
                "actor": public_actor(h.actor),
            }
        )
        for h in rows
    ]


def channel_out(pointer: ChannelPointer, *, viewer: Person) -> ChannelOut:
    """A channel as the API shows it to `viewer`: who moved it last without their mailbox for customers."""
    out = ChannelOut.model_validate(pointer)
    return out.model_copy(update={"updated_by": actor_as_seen(viewer, out.updated_by)})


def read_channel(session: Session, *, viewer: Person, channel: str) -> ChannelPointer:
    """One channel as `list_channels` shows it; NotFound for a channel the viewer may not read."""
    access.authorize(viewer, "channel.read")
    return _visible_pointer(session, channel=channel, viewer=viewer)


def channel_telemetry(
    session: Session, *, viewer: Person, channel: str, config: AppConfig, now: datetime | None = None
) -> HaltWatch | None:
    """The telemetry that could halt the channel, counted as the halt rule counts it — for vendor staff only
    (it names other organisations and their files); None for anybody else. NotFound as `read_channel`."""
    access.authorize(viewer, "channel.read")
    _visible_pointer(session, channel=channel, viewer=viewer)
    if not access.is_staff(viewer):
        return None
    return halt_watch(session, channel=channel, config=config, now=now or db_now(session))
