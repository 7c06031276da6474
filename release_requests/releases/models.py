"""Releases, the channel pointers that serve them, the pointers' history, and detection telemetry.

A release row keeps the signed manifest byte for byte (`manifest_json`) next to its parsed form, so the
update endpoint serves exactly what was signed. A channel pointer is the one mutable row per channel; it
moves only by compare-and-swap (`pointer_version`), and every move is appended to `channel_history`,
which the app role may read and insert into but never change.

Telemetry comes only from enrolled update clients (`enrolled_clients`, one credential per install), and
every batch is remembered by its id (`telemetry_batches`) so that a replayed batch counts once.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base

VENDOR = "vendor"  # the organisation of clients enrolled by vendor staff (customer_id NULL)


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (
        CheckConstraint("kind IN ('base', 'hotfix')", name="kind"),
        CheckConstraint("(kind = 'hotfix') = (private_to IS NOT NULL)", name="hotfix_is_private"),
    )

    # The release key: a base's version (`2026.11.28.1`); for a hotfix `<customer>/<product>/<version>-<n>`,
    # because hotfix versions repeat across customers and products.
    version: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    request_id: Mapped[str | None] = mapped_column(ForeignKey("release_requests.id"), index=True)
    private_to: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    product: Mapped[str | None] = mapped_column(String(100))
    manifest: Mapped[dict] = mapped_column(JSONB)
    manifest_json: Mapped[str] = mapped_column(Text)  # the signed bytes (UTF-8), exactly
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))  # base64, one line
    signing_key_id: Mapped[str] = mapped_column(String(16))
    files: Mapped[dict] = mapped_column(JSONB)  # sha256 -> {"name", "size"}
    allowlist: Mapped[list] = mapped_column(JSONB, default=list)  # sha256 of files the base knows are clean
    registered_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChannelPointer(Base):
    __tablename__ = "channel_pointers"
    __table_args__ = (
        CheckConstraint("rollout_percent BETWEEN 1 AND 100", name="rollout_percent"),
        CheckConstraint(
            "(halted_at IS NULL) = (halted_reason IS NULL) AND (halted_at IS NULL) = (halted_version IS NULL)",
            name="halted_complete",
        ),
    )

    channel: Mapped[str] = mapped_column(String(80), primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("releases.version"))
    # What clients outside the canary cohort get, and where a one-step revert goes.
    previous_version: Mapped[str | None] = mapped_column(ForeignKey("releases.version"))
    private_to: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))  # None: a public channel
    staff_only: Mapped[bool] = mapped_column(Boolean, default=False)  # the vendor's own machines only
    rollout_percent: Mapped[int] = mapped_column(Integer, default=100)
    rollout_step: Mapped[int | None] = mapped_column(Integer)  # index into [canary].steps; None off canary
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when `version` became current
    step_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pointer_version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Set by an automatic halt, cleared only by a person's resume: nothing is published here meanwhile.
    halted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    halted_reason: Mapped[str | None] = mapped_column(Text)
    halted_version: Mapped[str | None] = mapped_column(ForeignKey("releases.version"))
    # Telemetry from before a resume was judged by the person who resumed: the halt check starts afresh.
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ChannelHistory(Base):
    __tablename__ = "channel_history"
    __table_args__ = (
        CheckConstraint("action IN ('publish', 'revert', 'halt', 'rollout_step')", name="action"),
        Index("ix_channel_history_channel_id", "channel", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    channel: Mapped[str] = mapped_column(String(80))
    from_version: Mapped[str | None] = mapped_column(String(80))
    to_version: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(20))
    rollout_percent: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TelemetryDetection(Base):
    __tablename__ = "telemetry_detections"
    __table_args__ = (
        CheckConstraint("verdict IN ('detected', 'quarantined', 'allowed', 'false_positive_reported')", name="verdict"),
        Index("ix_telemetry_detections_base_received", "base_version", "received_at"),
        Index("ix_telemetry_detections_client_received", "client_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    base_version: Mapped[str] = mapped_column(String(80))
    rule: Mapped[str] = mapped_column(String(200))
    file_sha256: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(30))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EnrolledClient(Base):
    """One update client install and its credential (only the SHA-256 of the secret is kept).

    `customer_id` is the organisation the install belongs to; None means the vendor's own machines.
    A revoked client may not report, and what it reported before no longer counts towards a halt.
    """

    __tablename__ = "enrolled_clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    enrolled_by: Mapped[str] = mapped_column(String(200))
    enrolled_by_id: Mapped[int | None] = mapped_column(Integer)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(200))

    @property
    def organisation(self) -> str:
        return self.customer_id or VENDOR


class TelemetryBatch(Base):
    """Every batch a client sent, by its id: the same id again is a replay and is refused."""

    __tablename__ = "telemetry_batches"

    client_id: Mapped[str] = mapped_column(ForeignKey("enrolled_clients.id"), primary_key=True)
    batch_id: Mapped[UUID] = mapped_column(primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detections: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class KnownCleanFile(Base):
    """Files the team knows are clean (beside each base's allowlist): detecting one counts towards a halt."""

    __tablename__ = "known_clean_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
