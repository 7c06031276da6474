"""From a customer's report to the work it starts: intake, evidence and triage, with their follow-ups.

A new report (or a sample added to one) joins the open build of a request that names the same sample, so
one fix serves every customer who hit the same false positive; an accepted request opens its build.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.paging.service import start_page
from release_requests.people.models import Person
from release_requests.pipeline.service import on_accepted
from release_requests.pipeline.sharing import join_open_build
from release_requests.requests import samples
from release_requests.requests import service as requests
from release_requests.requests.models import ReleaseRequest, Sample
from release_requests.requests.schemas import SubmitRequest, TriageDecision
from release_requests.requests.service import Submission
from release_requests.requests.states import Status


def submit(session: Session, *, actor: Person, data: SubmitRequest, config: AppConfig) -> ReleaseRequest:
    """File a request; if it names a sample whose fix is already being built, it joins that build. With a
    `submission_key` the same person already used, the request filed then (see `file_request`)."""
    return file_request(session, actor=actor, data=data, config=config).request


def file_request(session: Session, *, actor: Person, data: SubmitRequest, config: AppConfig) -> Submission:
    """`submit`, saying whether the key was a replay (then nothing was filed now and nothing follows). A
    request of a paged severity (config/paging.toml) that no TAM at work takes pages the person on duty
    (`paging.start_page`): the portal, the API, a logged phone call and e-mail intake all file through here."""
    submission = requests.file_request(session, actor=actor, data=data, config=config)
    if not submission.replayed:
        if data.sample_sha256:  # a report naming no sample has nothing to join (and costs no query to learn it)
            join_open_build(session, request=submission.request, config=config)
        start_page(session, request=submission.request, routing=submission.routing, config=config, at=db_now(session))
    return submission


def add_sample(
    session: Session,
    *,
    actor: Person,
    request_id: str,
    config: AppConfig,
    samples_dir: Path,
    stream: BinaryIO | None,
    filename: str | None,
    declared_sha256: str | None,
) -> Sample:
    """Attach evidence; the request may now share the open build of the same sample."""
    sample = samples.add_sample(
        session,
        actor=actor,
        request_id=request_id,
        config=config,
        samples_dir=samples_dir,
        stream=stream,
        filename=filename,
        declared_sha256=declared_sha256,
    )
    join_open_build(session, request=session.get(ReleaseRequest, sample.request_id), config=config)
    return sample


def triage(
    session: Session, *, actor: Person, request_id: str, decision: TriageDecision, config: AppConfig
) -> ReleaseRequest:
    """Apply a triage decision; an accepted request opens its first build (`pipeline.on_accepted`, which may
    give it the advisory of the reports it now carries) before the customer is told."""
    request = requests.apply_triage(session, actor=actor, request_id=request_id, decision=decision)
    if request.status == Status.accepted:
        on_accepted(session, request=request, decision_id=f"v{request.version}", config=config)
    requests.announce_triage(session, request=request, decision=decision, config=config)
    return request
