"""A real pipeline world: signature repo (git + YARA-X), signing key, store, database clone."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import git
import pytest

from artifacts.corpus import load_corpus
from artifacts.signing import create_signing_key
from release_requests import db
from release_requests.config import load_config
from release_requests.pipeline import segments
from release_requests.pipeline.models import SegmentTrigger
from release_requests.requests.schemas import Accept
from release_requests.settings import Settings, get_settings
from release_requests.workflows import intake
from tests.conftest import REPO, Builder, copy_repo

FP_RULE = "trojan.Trojan_Win32_Dropper_001"


@dataclass
class PipelineWorld:
    settings: Settings
    seg: segments.Segment
    url: str
    config: object

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "RR_DATABASE_URL": self.url,
            "RR_DATA_DIR": str(self.settings.data_dir),
            "RR_CONFIG_DIR": str(self.settings.config_dir),
            **extra,
        }

    def worker(self, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
        env = self.env(**({"RR_CRASH_AT": crash_at} if crash_at else {}))
        return subprocess.run(
            [sys.executable, "-m", "tests.pipeline.segment_worker", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def trigger(self, request_id: str, step_prefix: str) -> SegmentTrigger:
        from sqlalchemy import select

        with db.transaction(self.seg.sessions) as s:
            return s.scalars(
                select(SegmentTrigger)
                .where(SegmentTrigger.request_id == request_id, SegmentTrigger.step.startswith(step_prefix))
                .order_by(SegmentTrigger.id)
            ).all()[-1]


@pytest.fixture
def world_pipeline(committed_db, tmp_path, starter_template, monkeypatch) -> PipelineWorld:
    data = tmp_path / "data"
    # its own signature repository, whatever RR_SIGREPO an earlier session fixture left in the environment
    settings = Settings(database_url=committed_db, data_dir=data, config_dir=REPO / "config", sigrepo=data / "sigrepo")
    copy_repo(starter_template, settings.signature_repo)
    create_signing_key(data_dir=data)
    # decisions taken through the services (a rejection reverting a fix) find the same signature repository
    monkeypatch.setenv("RR_SIGREPO", str(settings.signature_repo))
    get_settings.cache_clear()
    engine = db.make_engine(committed_db, pool_size=4)
    config = load_config(REPO / "config")
    yield PipelineWorld(
        settings, segments.Segment(db.make_sessionmaker(engine), settings, config), committed_db, config
    )
    engine.dispose()
    # the settings cached during the test name this world's RR_SIGREPO, which goes with it: later tests (the
    # release tests' session bases) must read their own
    get_settings.cache_clear()


@pytest.fixture
def fp_request(world_pipeline):
    """An accepted critical false positive whose sample a starter rule detects: the build is triggered."""
    w = world_pipeline
    corpus = load_corpus(git.Repo(w.settings.signature_repo).head.commit)
    content = b"MZ payroll 4.2.1 " + next(s for s in corpus.malicious if s.expect == FP_RULE).render()
    with db.transaction(w.seg.sessions) as s:
        b = Builder(s, w.config)
        customer = b.customer()
        tam = b.person("tam", tam_for=[customer.id])
        duty = b.person("duty_manager")
        b.shift(duty, datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1))
        people = {role: b.person(role) for role in ("triage", "build_engineer", "release_manager")}
        people["release_manager_2"] = b.person("release_manager")
        request = b.request(by=tam, customer=customer, severity=1)
        intake.add_sample(
            s,
            actor=tam,
            request_id=request.id,
            config=w.config,
            samples_dir=w.settings.samples_dir,
            stream=io.BytesIO(content),
            filename="payroll.exe",
            declared_sha256=None,
        )
        intake.triage(
            s, actor=people["triage"], request_id=request.id, decision=Accept(decision="accept"), config=w.config
        )
        return {"id": request.id, "customer": customer.id, "tam": tam, **people}


@pytest.fixture
def staff(world_pipeline) -> dict:
    w = world_pipeline
    with db.transaction(w.seg.sessions) as s:
        b = Builder(s, w.config)
        duty = b.person("duty_manager")
        b.shift(duty, datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1))
        people = {role: b.person(role) for role in ("triage", "build_engineer", "release_manager")}
        people["release_manager_2"] = b.person("release_manager")
        people["analyst"] = b.person("build_engineer")  # writes fixes, so never signs them
        return people
