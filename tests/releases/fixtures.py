"""Fixtures for update channels: real signed bundles, registered once per session (loaded by tests/conftest.py
as a plugin, so that every folder shares the one registration), served by the real API.

Two bases are built from a real starter signature repository with the server's own signing key: `v1`, and
`v2` after a false-positive fix (its allowlist holds the fixed sample's sha256). A private hotfix for one
customer comes from a tiny product repository. Channel state lives in the shared test database, so tests
that publish to the shared `internal`/`canary`/`global` channels start from whatever is current (`put`);
tests that need a channel of their own use a fresh customer's channel.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import git
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from artifacts.base import build_base
from artifacts.corpus import load_corpus
from artifacts.fixes import fix_false_positive
from artifacts.hotfix import build_hotfix
from artifacts.signing import FileKeySigner
from artifacts.store import LocalStore
from release_requests import db
from release_requests.audit.service import Actor
from release_requests.clock import db_now
from release_requests.people.models import Person
from release_requests.releases import publishing, registry, stopping
from release_requests.releases.models import ChannelPointer
from release_requests.requests.lifecycle import transition
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.schemas import SubmitRequest
from release_requests.requests.states import Status
from release_requests.settings import get_settings
from release_requests.workflows import intake
from tests.artifacts.conftest import FP_RULE
from tests.conftest import User, copy_repo, make_product_repo

SYSTEM = Actor.system("tests")
AUTHOR = "Jane Analyst <jane@example.com>"
PRODUCT = "endpoint-agent"


@dataclass
class Bundles:
    repo: Path
    out: Path
    v1: Path
    v2: Path
    hotfix: Path
    fp_sha256: str  # on v2's allowlist
    hotfix_customer: str

    def build_base(self, settings, ref: str | None = None) -> Path:
        """Another base, from the fixed commit unless `ref` says otherwise (a new version, same rules): for tests
        that own their release."""
        manifest = build_base(
            repo_path=self.repo,
            ref=ref or f"fix/{FP_REQUEST}",
            out_dir=self.out,
            signer=FileKeySigner.load(settings.data_dir),
            store=LocalStore(settings.artifacts_dir),
            builder="ci@tests",
        )
        return self.out / manifest.version


FP_REQUEST = "RR-2026-900001"


@pytest.fixture(scope="session")
def bundles(settings, world, tmp_path_factory, starter_template) -> Bundles:
    root = tmp_path_factory.mktemp("releases")
    signer, _ = FileKeySigner.create(settings.data_dir)
    store = LocalStore(settings.artifacts_dir)
    repo = copy_repo(starter_template, root / "sigrepo")
    # publishing checks a base against the release line of the signature repository these bases come from
    os.environ["RR_SIGREPO"] = str(repo)
    get_settings.cache_clear()
    out = root / "bases"
    common = {"repo_path": repo, "out_dir": out, "signer": signer, "store": store, "builder": "ci@tests"}
    v1 = build_base(ref="main", **common)
    sample = next(s for s in load_corpus(git.Repo(repo).head.commit).malicious if s.expect == FP_RULE)
    fp = root / "customer-tool.exe"
    fp.write_bytes(b"MZ legit in-house tool " + sample.render())
    fix_false_positive(repo_path=repo, sample=fp, request_id=FP_REQUEST, author=AUTHOR)
    v2 = build_base(ref=f"fix/{FP_REQUEST}", **common)
    customer = world.customer()
    spec, commits = make_product_repo(root, padding_lines=2000)
    hotfix = build_hotfix(
        product=spec,
        version="11.2.0",
        commits=[commits["clean_fix"]],
        customer=customer,
        grants=[{"product": PRODUCT, "versions": ""}],
        out_dir=root / "hotfixes",
        signer=signer,
        store=store,
        builder="ci@tests",
    )
    return Bundles(
        repo=repo,
        out=out,
        v1=out / v1.version,
        v2=out / v2.version,
        hotfix=root / "hotfixes" / customer / PRODUCT / hotfix.version,
        fp_sha256=hashlib.sha256(fp.read_bytes()).hexdigest(),
        hotfix_customer=customer,
    )


@dataclass
class Registered:
    v1: str
    v2: str
    hotfix: str
    hotfix_customer: str
    fp_sha256: str


@pytest.fixture(scope="session")
def releases(bundles, settings, world) -> Registered:
    store = LocalStore(settings.artifacts_dir)
    with db.transaction(world.sessions) as s:
        keys = [
            registry.register_release(
                s,
                actor=SYSTEM,
                bundle_dir=path,
                store=store,
                request_id=None,
                public_key=registry.server_public_key(settings.data_dir),
            ).version
            for path in (bundles.v1, bundles.v2, bundles.hotfix)
        ]
    return Registered(*keys, hotfix_customer=bundles.hotfix_customer, fp_sha256=bundles.fp_sha256)


def put(session: Session, channel: str, *versions: str, config, actor: Actor = SYSTEM) -> ChannelPointer:
    """Publish `versions` in order from whatever the channel holds now; each canary step is completed.

    The last version is left where publishing puts it (the first canary step on `canary`).
    """
    pointer = None
    for i, version in enumerate(versions):
        current = session.get(ChannelPointer, channel, populate_existing=True)
        pointer = publishing.publish(
            session,
            actor=actor,
            channel=channel,
            version=version,
            expected_current=current.version if current else None,
            request_id=None,
            config=config,
            repo_path=get_settings().signature_repo,
        )
        if i < len(versions) - 1:
            later = db_now(session) + timedelta(days=1)
            for _ in config.stages.canary.steps:
                publishing.advance_rollout(session, actor=actor, channel=channel, now=later, config=config)
                later += timedelta(days=1)
    return pointer


def release_request_in(
    session: Session, *, customer_id: str, submitter_id: int, config, status: Status
) -> ReleaseRequest:
    """A false-positive request walked through the real transitions up to `status`."""
    from release_requests.people.models import Person

    submitter = session.get(Person, submitter_id)
    data = SubmitRequest(
        customer_id=customer_id,
        kind="false_positive",
        severity=2,
        channel="portal",
        title=f"FP on in-house tool {uuid.uuid4().hex[:6]}",
    )
    request = intake.submit(session, actor=submitter, data=data, config=config)
    path = [Status.accepted, Status.building, Status.verifying, Status.awaiting_approval, Status.releasing]
    for step in path[: path.index(status) + 1]:
        transition(session, actor=SYSTEM, request=request, target=step, action=f"request.{step}")
    return request


@pytest.fixture
def fresh_base(bundles, settings, world):
    """A base of the test's own (version unique to the test), not yet registered."""
    return bundles.build_base(settings)


@dataclass(frozen=True)
class Client:
    """An update client enrolled through the real API: its server-chosen id, secret and organisation."""

    id: str
    secret: str
    organisation: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def enrol(world, user: User, *, name: str | None = None) -> Client:
    with world.client(user) as http:
        response = http.post("/api/v1/clients", json={"name": name} if name else {})
    assert response.status_code == 201, response.text
    body = response.json()
    return Client(body["client_id"], body["secret"], body["organisation"])


def batch(*detections: dict, batch_id: str | None = None, sent_at: datetime | None = None, **extra) -> dict:
    """A telemetry batch as an update client sends it: a fresh id and the current time unless given."""
    return {
        "batch_id": batch_id or str(uuid.uuid4()),
        "sent_at": (sent_at or datetime.now(UTC)).isoformat(),
        "detections": list(detections),
        **extra,
    }


@pytest.fixture
def resumes_halted_channels(world):
    """Tests that halt a shared public channel leave it open for the next ones, even when they fail midway."""
    yield
    admin = world.user("admin")
    with db.transaction(world.sessions) as s:
        person = s.get(Person, admin.id)
        halted = select(ChannelPointer.channel).where(ChannelPointer.halted_at.is_not(None))
        for channel in s.scalars(halted).all():
            stopping.resume(s, person=person, channel=channel, reason="test teardown")
