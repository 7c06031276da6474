"""Driving the real pipeline in tests as the dispatcher and engineers would: requests with their own
samples, pending segments run in order, stages signed by the policy's roles, channels fetched with the
update client through a real API server."""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import git
from sqlalchemy import select

from artifacts.corpus import load_corpus
from artifacts.scan import open_base_bundle, scan_files
from artifacts.signing import public_key_pem, signing_key
from release_requests import db
from release_requests.api.app import create_app
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import Actor
from release_requests.customers.models import Customer
from release_requests.people.service import issue_token
from release_requests.pipeline import segments, service
from release_requests.pipeline.models import SegmentTrigger, StageRun
from release_requests.pipeline.schemas import SignoffIn
from release_requests.releases.models import ChannelPointer, Release
from release_requests.requests.schemas import Accept
from release_requests.update_client import fetch
from release_requests.workflows import intake
from tests.conftest import Builder, serve_app
from tests.pipeline.conftest import FP_RULE

SIGNERS = {
    "internal": ["build_engineer"],
    "canary": ["build_engineer", "release_manager"],
    "customer": ["build_engineer", "release_manager"],
    "global": ["release_manager", "release_manager_2"],
}
STAGES = list(SIGNERS)


def sample_bytes(w, label: str) -> bytes:
    """A file the starter rule FP_RULE detects, different per label (its own sha256)."""
    corpus = load_corpus(git.Repo(w.settings.signature_repo).head.commit)
    return f"MZ {label} ".encode() + next(s for s in corpus.malicious if s.expect == FP_RULE).render()


def new_request(
    w,
    staff,
    content: bytes,
    *,
    kind: str = "false_positive",
    accept: bool = True,
    customer_id: str | None = None,
    title: str = "Payroll flagged",
) -> str:
    with db.transaction(w.seg.sessions) as s:
        b = Builder(s, w.config)
        customer = b.session.get(Customer, customer_id) if customer_id else b.customer()
        tam = b.person("tam", tam_for=[customer.id])
        request = b.request(by=tam, customer=customer, severity=1, kind=kind, title=title)
        intake.add_sample(
            s,
            actor=tam,
            request_id=request.id,
            config=w.config,
            samples_dir=w.settings.samples_dir,
            stream=io.BytesIO(content),
            filename="tool.exe",
            declared_sha256=None,
        )
        if accept:
            intake.triage(
                s, actor=staff["triage"], request_id=request.id, decision=Accept(decision="accept"), config=w.config
            )
        return request.id


def run_pending(w, request_id: str) -> list[str]:
    """Run every pending segment of the request, as the dispatcher would, until none is left."""
    results = []
    while True:
        with db.transaction(w.seg.sessions) as s:
            trigger = s.scalar(
                select(SegmentTrigger)
                .where(SegmentTrigger.request_id == request_id, SegmentTrigger.status == "pending")
                .order_by(SegmentTrigger.id)
                .limit(1)
            )
            if trigger is None:
                return results
            trigger.status = "dispatched"
            step, key = trigger.step, trigger.key
        kind, _, rest = step.partition(":")
        if kind == "build":
            results.append(segments.run_build(w.seg, request_id=request_id, attempt=int(rest), trigger_key=key))
        else:
            stage, _, build_id = rest.partition(":")
            results.append(
                segments.run_publish(w.seg, request_id=request_id, stage=stage, build_id=int(build_id), trigger_key=key)
            )


def sign(w, staff, request_id: str, stage: str) -> None:
    for role in SIGNERS[stage]:
        with db.transaction(w.seg.sessions) as s:
            service.sign(
                s,
                actor=staff[role],
                request_id=request_id,
                data=SignoffIn(stage=stage),
                config=w.config,
                repo_path=w.settings.signature_repo,
            )


def release(w, staff, request_id: str, stages: list[str]) -> None:
    """Sign and publish each stage, after any rebuild the moving line asked for."""
    for stage in stages:
        run_pending(w, request_id)
        sign(w, staff, request_id, stage)
        run_pending(w, request_id)
        assert stage_status(w, request_id)[stage] == "published", (stage, audit(w, request_id)[-5:])


def stage_status(w, request_id: str) -> dict[str, str]:
    with db.transaction(w.seg.sessions) as s:
        build = service.latest_build(s, request_id=request_id)
        return {r.stage: r.status for r in s.scalars(select(StageRun).where(StageRun.build_id == build.id))}


def audit(w, request_id: str) -> list[tuple[str, dict | None, str | None]]:
    with db.transaction(w.seg.sessions) as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(AuditEvent.seq))
        return [(e.action, e.after, e.reason) for e in events]


def served(w, channel: str) -> Release:
    with db.transaction(w.seg.sessions) as s:
        return s.get(Release, s.get(ChannelPointer, channel).version)


@contextmanager
def api_for(w):
    """The real API over the pipeline world's database and data directory."""
    engine = db.make_engine(w.url, pool_size=2)
    app = create_app(settings=w.settings, config=w.config, sessions=db.make_sessionmaker(engine))
    try:
        with serve_app(app) as url:
            yield url
    finally:
        engine.dispose()


def token_for(w, person) -> str:
    with db.transaction(w.seg.sessions) as s:
        return issue_token(s, actor=Actor.system("tests"), person=s.merge(person))


def scan_channel(w, channel: str, files: list[Path], dest: Path) -> list[str]:
    """Fetch the channel as a customer's machine would (`relreq client fetch`) and scan the files with it."""
    key = signing_key(data_dir=w.settings.data_dir)
    with api_for(w) as url:
        installed = fetch(
            api_url=url, channel=channel, client_id="ws-0001", dest=dest, public_key_pem=public_key_pem(key)
        )
    bundle = open_base_bundle(Path(installed.path), public_key=key.public_key())
    return [r.verdict for r in scan_files(bundle, files)]


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def build_dir(w, request_id: str) -> str:
    with db.transaction(w.seg.sessions) as s:
        return service.latest_build(s, request_id=request_id).bundle_dir
