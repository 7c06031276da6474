"""Fixtures for the artifacts tests: real git repositories in tmp dirs, the real YARA-X engine.

The 300-rule starter repository is generated once per session and copied per test (a copy costs
a few milliseconds, generation ~0.2 s).
"""

import shutil
import subprocess
from pathlib import Path

import git
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from artifacts.corpus import load_corpus
from artifacts.products import ProductSpec
from artifacts.starter import init_sigrepo
from artifacts.store import LocalStore

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


@pytest.fixture(scope="session")
def starter_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("starter") / "sigrepo"
    init_sigrepo(path=path, author="Signature Team <signatures@example.com>")
    return path


@pytest.fixture
def sigrepo(starter_template, tmp_path) -> Path:
    path = tmp_path / "sigrepo"
    shutil.copytree(starter_template, path, symlinks=True)
    return path


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


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def product(tmp_path) -> tuple[ProductSpec, dict[str, str]]:
    """A product repo: tag v11.2.0, then on main a clean fix, a core change and a conflicting fix."""
    repo = tmp_path / "endpoint-agent"
    (repo / "src").mkdir(parents=True)
    _git(tmp_path, "init", "-q", "-b", "main", str(repo))
    _git(repo, "config", "user.name", "Dev One")
    _git(repo, "config", "user.email", "dev1@example.com")
    (repo / "src" / "core.c").write_text("int version = 1;\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "release 11.2.0")
    _git(repo, "tag", "-a", "v11.2.0", "-m", "11.2.0")
    (repo / "src" / "fix.c").write_text("int fixed_crash = 1;\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "fix crash on scan")
    commits = {"clean_fix": _git(repo, "rev-parse", "HEAD")}
    (repo / "src" / "core.c").write_text("int version = 2;\n")
    _git(repo, "commit", "-qam", "core v2")
    (repo / "src" / "core.c").write_text("int version = 3;\n")
    _git(repo, "commit", "-qam", "core v3 (conflicts with 11.2.0)")
    commits["conflicting_fix"] = _git(repo, "rev-parse", "HEAD")
    spec = ProductSpec(
        name="endpoint-agent",
        repo=repo,
        build=["sh", "-c", "mkdir -p dist && cat src/*.c > dist/agent.bin && echo built agent"],
        timeout_seconds=30,
        output="dist/*.bin",
    )
    return spec, commits
