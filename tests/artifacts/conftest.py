"""Fixtures for the artifacts tests: real git repositories in tmp dirs, the real YARA-X engine.

The 300-rule starter repository is generated once per session (`starter_template`, tests/conftest.py)
and copied per test (a copy costs a few milliseconds, generation ~0.2 s).
"""

from pathlib import Path

import git
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from artifacts.corpus import load_corpus
from artifacts.products import ProductSpec
from artifacts.store import LocalStore
from tests.conftest import copy_repo, make_product_repo

AUTHOR = "Jane Analyst <jane@example.com>"
BUILDER = "ci@build-host"

# A detected rule whose hit we will call a false positive, and a marker no starter rule knows.
FP_RULE = "trojan.Trojan_Win32_Dropper_001"
NEW_MARKER = "NOVEL-THREAT-7f3a9c2e51d8"
FN_RULE = f"""rule Novel_Threat_A {{
  meta:
    author = "Jane Analyst"
    description = "Novel threat reported by a customer"
    severity = "high"
    created = "2026-11-20"
    reference = "RR-2026-000042"
  strings:
    $m = "{NEW_MARKER}"
  condition:
    $m
}}
"""


@pytest.fixture
def sigrepo(starter_template, tmp_path) -> Path:
    return copy_repo(starter_template, tmp_path / "sigrepo")


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def fp_sample(sigrepo, tmp_path) -> Path:
    """A file one starter rule (FP_RULE) detects: the customer says it is clean."""
    corpus = load_corpus(git.Repo(sigrepo).head.commit)
    sample = next(s for s in corpus.malicious if s.expect == FP_RULE)
    path = tmp_path / "customer-tool.exe"
    path.write_bytes(b"MZ legit in-house tool " + sample.render())
    return path


@pytest.fixture
def fn_sample(tmp_path) -> Path:
    """A file no starter rule detects: the customer says it is malware."""
    path = tmp_path / "missed.bin"
    path.write_bytes(b"\x7fELF" + b"\x00" * 60 + NEW_MARKER.encode() + b"\x00" * 32)
    return path


def git_state(path: Path) -> tuple[dict[str, str], set[str], str]:
    """Branch tips, tags and status: equal before and after means nothing was committed."""
    repo = git.Repo(path)
    heads = {head.name: head.commit.hexsha for head in repo.heads}
    return heads, {tag.name for tag in repo.tags}, repo.git.status("--porcelain")


def store_objects(store: LocalStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


@pytest.fixture
def product(tmp_path) -> tuple[ProductSpec, dict[str, str]]:
    """A product repo: tag v11.2.0, then on main a clean fix, a core change and a conflicting fix."""
    return make_product_repo(tmp_path)
