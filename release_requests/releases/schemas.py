"""Input and output of the update endpoints and the channel/telemetry API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from release_requests.releases.naming import CLIENT_ID_PATTERN, SHA256_PATTERN

ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]
Sha256 = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FileOut(BaseModel):
    name: str
    sha256: str
    size: int
    url: str = Field(description="Relative to the API base URL; content is checked against the signed sha256")


class ManifestOut(BaseModel):
    """What an update client needs: the signed manifest (exact bytes as a string), its signature and key."""

    channel: str
    version: str
    kind: str
    files: list[FileOut]
    manifest: dict
    manifest_json: str = Field(description="The signed bytes of manifest.json, exactly (UTF-8)")
    signature: str = Field(description="base64 Ed25519 signature of manifest_json")
    signing_key_id: str
    public_key_pem: str
    published_at: datetime


class ChannelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: str
    version: str
    previous_version: str | None
    private_to: str | None
    rollout_percent: int
    rollout_step: int | None
    published_at: datetime
    step_started_at: datetime
    pointer_version: int
    updated_by: str
    updated_at: datetime
    halted_at: datetime | None = Field(description="Set by an automatic halt; nothing is published until resumed")
    halted_reason: str | None
    halted_version: str | None
    resumed_at: datetime | None


class HistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: str
    from_version: str | None
    to_version: str
    action: str
    rollout_percent: int
    actor: str
    reason: str | None
    request_id: str | None
    at: datetime


class RevertIn(_In):
    to_version: str | None = Field(default=None, max_length=200, description="Default: one step back")
    reason: str = Field(min_length=3, max_length=2000)


class ResumeIn(_In):
    reason: str = Field(min_length=3, max_length=2000, description="Why publishing may continue (audited)")


class Verdict(StrEnum):
    detected = "detected"
    quarantined = "quarantined"
    allowed = "allowed"
    false_positive_reported = "false_positive_reported"


DETECTING = (Verdict.detected, Verdict.quarantined)  # verdicts where the engine acted on the file


class Detection(_In):
    base_version: Annotated[str, StringConstraints(pattern=r"^\d{4}\.\d{2}\.\d{2}\.\d{1,4}$")]
    rule: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}\.[A-Za-z_][A-Za-z0-9_]{0,126}$")]
    file_sha256: Sha256
    verdict: Verdict


class DetectionBatch(_In):
    """One report of an enrolled client; who sent it comes from its credential, never from the body."""

    batch_id: UUID = Field(description="New for every batch; a retry resends the same id (a replay is 409)")
    sent_at: AwareDatetime = Field(description="The client's clock; more than 5 minutes off the server's → 422")
    client_id: ClientId | None = Field(default=None, description="Optional; if given, must be the credential's")
    detections: list[Detection] = Field(min_length=1, max_length=500)


class DetectionsAccepted(BaseModel):
    accepted: int


class ClientEnrolIn(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200, description="A label, e.g. the host name")


class ClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: str = Field(validation_alias=AliasChoices("id", "client_id"))
    organisation: str = Field(description="The customer id, or `vendor` for the vendor's own machines")
    customer_id: str | None
    name: str | None
    enrolled_by: str
    enrolled_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None


class ClientEnrolled(ClientOut):
    secret: str = Field(description="The client's credential: shown once, only its SHA-256 is stored")


class KnownCleanIn(_In):
    sha256: Sha256
    reason: str = Field(min_length=3, max_length=2000)


class KnownCleanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sha256: str
    reason: str
    added_by: str
    added_at: datetime
