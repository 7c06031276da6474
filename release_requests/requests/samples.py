"""A request's evidence: files uploaded (hash checked, stored content-addressed) or hashes alone.

A customer's file name is stored made safe to show (`samples.names.safe_filename`) whoever the caller is;
the bytes are never rendered, only offered for download to those who may see the request.
"""

from __future__ import annotations

from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from release_requests import access
from release_requests.audit.service import record
from release_requests.config import AppConfig
from release_requests.errors import InvalidInput, NotFound
from release_requests.people.models import Person
from release_requests.people.service import actor_of
from release_requests.requests.lifecycle import get_visible
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.samples.names import safe_filename
from release_requests.samples.store import store_sample


def add_sample_row(
    session: Session,
    *,
    actor: Person,
    request: ReleaseRequest,
    sha256: str,
    size: int | None,
    filename: str | None,
    stored: bool,
) -> Sample:
    sample = session.scalar(select(Sample).where(Sample.request_id == request.id, Sample.sha256 == sha256))
    if sample is not None and (sample.stored or not stored):
        return sample  # the same evidence again: nothing new to record
    if sample is None:
        sample = Sample(request_id=request.id, sha256=sha256, submitted_by_id=actor.id)
        session.add(sample)
    sample.size, sample.filename, sample.stored = size, filename, stored
    session.flush()
    record(
        session,
        actor=actor_of(actor),
        action="sample.added",
        entity_type="sample",
        entity_id=sha256,
        request_id=request.id,
        after={"sha256": sha256, "size": size, "filename": filename, "stored": stored},
    )
    return sample


def add_sample(
    session: Session,
    *,
    actor: Person,
    request_id: str,
    config: AppConfig,
    samples_dir,
    stream: BinaryIO | None,
    filename: str | None,
    declared_sha256: str | None,
) -> Sample:
    """Attach evidence: an uploaded file (hash checked) or, with no file, a hash alone."""
    access.authorize(actor, "sample.add")
    request = get_visible(session, actor=actor, request_id=request_id)
    count = session.scalar(select(func.count()).where(Sample.request_id == request.id))
    if count >= config.intake.samples.max_per_request:
        raise InvalidInput(
            f"request already has {count} samples (limit {config.intake.samples.max_per_request})",
            field="file",
        )
    if stream is None:
        if not declared_sha256:
            raise InvalidInput("send a file, a sha256, or both", field="file")
        sample = add_sample_row(
            session,
            actor=actor,
            request=request,
            sha256=declared_sha256.lower(),
            size=None,
            filename=None,
            stored=False,
        )
    else:
        sha256, size = store_sample(
            samples_dir, stream, max_bytes=config.intake.samples.max_bytes, declared_sha256=declared_sha256
        )
        safe_name = safe_filename(filename)  # every caller, not only the API, stores a name safe to show
        sample = add_sample_row(
            session, actor=actor, request=request, sha256=sha256, size=size, filename=safe_name, stored=True
        )
    return sample


def find_sample(session: Session, *, actor: Person, request_id: str, sha256: str) -> Sample:
    access.authorize(actor, "sample.fetch")
    request = get_visible(session, actor=actor, request_id=request_id)
    sample = session.scalar(select(Sample).where(Sample.request_id == request.id, Sample.sha256 == sha256.lower()))
    if sample is None:
        raise NotFound(f"request {request_id} has no sample {sha256}")
    if not sample.stored:
        raise NotFound(f"sample {sha256} was reported by hash only; there are no bytes to fetch")
    return sample
