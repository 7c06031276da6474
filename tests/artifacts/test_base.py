"""build-base: deterministic, signed, stored, tagged — or refused with nothing left behind."""

import stat
from datetime import UTC, datetime

import git
import pytest

from artifacts.base import build_base
from artifacts.bundle import BaseManifest, read_verified
from artifacts.digest import sha256_file
from artifacts.errors import GitRefError, RepoLayoutError, RuleCompileError
from artifacts.fixes import fix_false_positive
from artifacts.signing import FileKeySigner
from artifacts.yarax import YARA_X_VERSION

from .conftest import AUTHOR, BUILDER, FN_RULE, git_state, store_objects

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def build(sigrepo, tmp_path, key, store, ref="main", **kwargs):
    signer = FileKeySigner(key)
    return build_base(
        repo_path=sigrepo,
        ref=ref,
        out_dir=tmp_path / "out",
        signer=signer,
        store=store,
        builder=BUILDER,
        now=NOW,
        **kwargs,
    )


def test_bundle_layout_manifest_signature_store_and_tag(sigrepo, tmp_path, key, store):
    manifest = build(sigrepo, tmp_path, key, store)
    bundle = tmp_path / "out" / "2026.11.20.1"
    assert sorted(p.name for p in bundle.iterdir()) == ["allowlist.tsv", "manifest.json", "manifest.sig", "rules.yarc"]
    assert read_verified(bundle, public_key=key.public_key(), model=BaseManifest) == manifest
    repo = git.Repo(sigrepo)
    assert manifest.commit == repo.heads.main.commit.hexsha
    assert (manifest.rule_count, manifest.namespaces["trojan"], manifest.namespaces["testfile"]) == (300, 49, 6)
    assert (manifest.yara_x_version, manifest.builder, manifest.built_at) == (YARA_X_VERSION, BUILDER, NOW)
    assert manifest.parent_version is None and manifest.allowlist_entries == 0
    for name, entry in manifest.files.items():
        assert sha256_file(bundle / name) == entry.sha256
        assert store.get(entry.sha256) == (bundle / name).read_bytes()
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o444 for p in bundle.iterdir())
    tag = repo.tags["2026.11.20.1"]
    assert tag.tag is not None and tag.tag.tagger.name == BUILDER  # annotated
    assert tag.commit.hexsha == manifest.commit


def test_same_commit_builds_the_same_content_and_n_increments(sigrepo, tmp_path, key, store):
    first = build(sigrepo, tmp_path, key, store)
    second = build(sigrepo, tmp_path, key, store)
    assert (first.version, second.version) == ("2026.11.20.1", "2026.11.20.2")
    assert first.files == second.files  # rules.yarc and allowlist.tsv byte-identical
    assert second.parent_version == "2026.11.20.1"


def test_parent_version_defaults_to_newest_ancestor_base_and_can_be_given(sigrepo, tmp_path, key, store, fp_sample):
    build(sigrepo, tmp_path, key, store)
    fix = fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id="RR-1", author=AUTHOR)
    manifest = build(sigrepo, tmp_path, key, store, ref=fix.branch)
    assert (manifest.parent_version, manifest.allowlist_entries) == ("2026.11.20.1", 1)
    assert build(sigrepo, tmp_path, key, store, ref=fix.branch, parent_version="2026.11.20.2").parent_version == (
        "2026.11.20.2"
    )
    with pytest.raises(GitRefError, match="parent base version 2020.01.01.1 is not a base tag"):
        build(sigrepo, tmp_path, key, store, parent_version="2020.01.01.1")


def commit_file(sigrepo, path, text):
    repo = git.Repo(sigrepo)
    (sigrepo / path).parent.mkdir(parents=True, exist_ok=True)
    (sigrepo / path).write_text(text)
    repo.index.add([path])
    repo.index.commit("broken change")


@pytest.mark.parametrize(
    ("path", "text", "error", "message"),
    [
        (
            "rules/trojan/bad.yar",
            FN_RULE.replace("    $m\n}", "    $m and\n}"),
            RuleCompileError,
            r"rules/trojan/bad\.yar:12:1",
        ),
        (
            "rules/trojan/warn.yar",
            FN_RULE.replace("    $m\n}", "    $m and 1\n}"),
            RuleCompileError,
            r"warn\.yar:11:12: warning",
        ),
        ("rules/worm/dup.yar", FN_RULE.replace("Novel_Threat_A", "Worm_Win32_Usb_001"), RuleCompileError, "E012"),
        (
            "allowlist/sha256.tsv",
            "sha256\treason\trequest_id\twho\twhen\nabc\tx\tRR-1\tme\t2026-01-01\n",
            RepoLayoutError,
            r"allowlist/sha256\.tsv:2: sha256: Value error",
        ),
        (
            "rules/loose.yar",
            FN_RULE,
            RepoLayoutError,
            r"rules/loose\.yar: rule files must be rules/<family>/<name>\.yar",
        ),
    ],
    ids=["syntax-error", "warning", "duplicate", "bad-allowlist", "bad-layout"],
)
def test_broken_repo_refuses_the_build_and_leaves_nothing(sigrepo, tmp_path, key, store, path, text, error, message):
    commit_file(sigrepo, path, text)
    before = git_state(sigrepo)
    with pytest.raises(error, match=message):
        build(sigrepo, tmp_path, key, store)
    assert git_state(sigrepo) == before
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert store_objects(store) == []


def test_unknown_ref_is_refused(sigrepo, tmp_path, key, store):
    with pytest.raises(GitRefError, match="no such ref or commit 'nope'"):
        build(sigrepo, tmp_path, key, store, ref="nope")
