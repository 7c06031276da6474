"""Release requests and the evidence (samples) attached to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base

# the naming convention's name, spelled out: intake recognises a repeated key by it (migration 0009 creates it)
SUBMISSION_KEY_UNIQUE = "uq_release_requests_submission_key"


class ReleaseRequest(Base):
    __tablename__ = "release_requests"
    __table_args__ = (
        CheckConstraint("kind IN ('false_positive', 'false_negative', 'private_hotfix')", name="kind"),
        CheckConstraint("severity BETWEEN 1 AND 4", name="severity"),
        CheckConstraint("channel IN ('portal', 'phone', 'email', 'tam')", name="channel"),
        # a key is only meaningful per person: the same person sending it again gets the request already filed
        UniqueConstraint("submission_key", "submitted_by_id", name=SUBMISSION_KEY_UNIQUE),
        Index("ix_release_requests_customer_received", "customer_id", "received_at"),  # a customer's period
    )

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    severity: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    product: Mapped[str | None] = mapped_column(String(100))
    product_version: Mapped[str | None] = mapped_column(String(50))
    detection_name: Mapped[str | None] = mapped_column(String(200))
    # a phone call logged by the duty manager or TAM: who called, and the number to call back
    caller_name: Mapped[str | None] = mapped_column(String(200))
    callback_number: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), index=True)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    # the client's key for one filing (the portal's form carries one): a retry with it files nothing new
    submission_key: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    duplicate_of_id: Mapped[str | None] = mapped_column(ForeignKey("release_requests.id"))
    # One id for one problem: every request that shares a build shows it (never another customer's request id)
    advisory_id: Mapped[str | None] = mapped_column(String(20), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"version_id_col": version}


class Sample(Base):
    """A file (or only its hash) the customer says is wrongly detected or missed.

    Stored content-addressed and never executable; the bytes live under RR_DATA_DIR, this row is the
    evidence record that ties them to one request.
    """

    __tablename__ = "samples"
    __table_args__ = (
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
        UniqueConstraint("request_id", "sha256", name="uq_samples_request_sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(255))
    stored: Mapped[bool] = mapped_column(default=False)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
