"""Private hotfix: licence first, then tag, cherry-picks, build, signed bundle private to one customer."""

from pathlib import Path

import git
import pytest

from artifacts.bundle import HotfixManifest, read_verified
from artifacts.errors import BuildFailed, CherryPickConflict, ConfigError, GitRefError, InvalidInput, LicenceRefused
from artifacts.hotfix import build_hotfix
from artifacts.licences import check_licence
from artifacts.products import load_products, product_spec
from artifacts.signing import FileKeySigner

from .conftest import BUILDER, store_objects

GRANTS = [{"product": "endpoint-agent", "versions": ">=11,<12"}]


def hotfix(product, tmp_path, key, store, commits, **kwargs):
    spec, _ = product
    args = {
        "product": spec,
        "version": "11.2.0",
        "commits": commits,
        "customer": "acme",
        "grants": GRANTS,
        "out_dir": tmp_path / "hotfixes",
        "signer": FileKeySigner(key),
        "store": store,
        "builder": BUILDER,
    }
    return build_hotfix(**(args | kwargs))


def branches(spec) -> set[str]:
    return {head.name for head in git.Repo(spec.repo).heads}


def test_hotfix_is_built_signed_stored_and_private(product, tmp_path, key, store):
    spec, commits = product
    manifest = hotfix(product, tmp_path, key, store, [commits["clean_fix"]])
    bundle = tmp_path / "hotfixes" / "acme" / "endpoint-agent" / "11.2.0-1"
    assert read_verified(bundle, public_key=key.public_key(), model=HotfixManifest) == manifest
    assert (manifest.private_to, manifest.branch, manifest.source_tag) == ("acme", "hotfix/acme/11.2.0-1", "v11.2.0")
    assert sorted(manifest.files) == ["build.log", "files/dist/agent.bin"]
    assert (bundle / "files/dist/agent.bin").read_text() == "int version = 1;\nint fixed_crash = 1;\n"
    assert b"built agent" in (bundle / "build.log").read_bytes()
    assert all(store.exists(entry.sha256) for entry in manifest.files.values())
    repo = git.Repo(spec.repo)
    tip = repo.heads["hotfix/acme/11.2.0-1"].commit
    assert tip.hexsha == manifest.commit and f"cherry picked from commit {commits['clean_fix']}" in tip.message
    assert tip.parents[0] == repo.tags["v11.2.0"].commit
    assert len(repo.git.worktree("list").splitlines()) == 1  # the build checkout is gone
    assert hotfix(product, tmp_path, key, store, [commits["clean_fix"]]).version == "11.2.0-2"


@pytest.mark.parametrize(
    ("grants", "version"),
    [([], "11.2.0"), ([{"product": "mail-gateway", "versions": ""}], "11.2.0"), (GRANTS, "12.0.0")],
    ids=["no-licence", "other-product", "version-not-covered"],
)
def test_unlicensed_hotfix_is_refused_before_anything(product, tmp_path, key, store, grants, version):
    spec, commits = product
    before = branches(spec)
    with pytest.raises(LicenceRefused, match=f"customer acme: licence does not cover endpoint-agent {version}"):
        hotfix(product, tmp_path, key, store, [commits["clean_fix"]], grants=grants, version=version)
    assert branches(spec) == before and not (tmp_path / "hotfixes").exists() and store_objects(store) == []


def test_version_without_tag_is_refused(product, tmp_path, key, store):
    spec, commits = product
    with pytest.raises(GitRefError, match="no release tag v11.3.0 for endpoint-agent 11.3.0"):
        hotfix(product, tmp_path, key, store, [commits["clean_fix"]], version="11.3.0")
    assert branches(spec) == {"main"}


def test_cherry_pick_conflict_lists_files_and_leaves_nothing(product, tmp_path, key, store):
    spec, commits = product
    with pytest.raises(CherryPickConflict, match=r"cherry-pick of [0-9a-f]{40} conflicts in: src/core\.c") as exc:
        hotfix(product, tmp_path, key, store, [commits["clean_fix"], commits["conflicting_fix"]])
    assert exc.value.files == ["src/core.c"]
    repo = git.Repo(spec.repo)
    assert branches(spec) == {"main"} and len(repo.git.worktree("list").splitlines()) == 1
    assert not repo.is_dirty(untracked_files=True) and store_objects(store) == []
    assert not (tmp_path / "hotfixes").exists()


@pytest.mark.parametrize(
    ("build", "timeout", "message"),
    [
        (
            ["sh", "-c", "echo compiling; echo boom >&2; exit 3"],
            30,
            r"build exited with 3; log ends: compiling \| boom",
        ),
        (["sh", "-c", "echo started; sleep 30"], 1, r"build timed out after 1 s; log ends: started"),
        (["sh", "-c", "echo nothing"], 30, r"build produced no file matching 'dist/\*\.bin'"),
        (["/no/such/compiler"], 30, r"cannot run '/no/such/compiler'"),
    ],
    ids=["exit-code", "timeout", "no-output", "no-program"],
)
def test_failed_build_is_reported_and_leaves_nothing(product, tmp_path, key, store, build, timeout, message):
    spec, commits = product
    broken = (spec.model_copy(update={"build": build, "timeout_seconds": timeout}), commits)
    with pytest.raises(BuildFailed, match=message):
        hotfix(broken, tmp_path, key, store, [commits["clean_fix"]])
    assert branches(spec) == {"main"} and store_objects(store) == []


def test_bad_inputs_are_refused(product, tmp_path, key, store):
    spec, commits = product
    with pytest.raises(InvalidInput, match="customer id 'ac/me'"):
        hotfix(product, tmp_path, key, store, [commits["clean_fix"]], customer="ac/me")
    with pytest.raises(GitRefError, match="no such ref or commit 'deadbeef'"):
        hotfix(product, tmp_path, key, store, ["deadbeef"])
    with pytest.raises(InvalidInput, match="at least one fix commit"):
        hotfix(product, tmp_path, key, store, [])
    assert branches(spec) == {"main"}


@pytest.mark.parametrize(
    ("versions", "version", "covered"),
    [("", "1.0", True), (">=11,<12", "11.9.9", True), (">=11,<12", "11.3.0rc1", True), ("==11.2.*", "11.3.0", False)],
)
def test_licence_specifiers(versions, version, covered):
    grants = [{"product": "endpoint-agent", "versions": versions}]
    if covered:
        assert (
            check_licence(customer="c", grants=grants, product="endpoint-agent", version=version).versions == versions
        )
    else:
        with pytest.raises(LicenceRefused, match=f"holds: endpoint-agent {versions}"):
            check_licence(customer="c", grants=grants, product="endpoint-agent", version=version)


def test_malformed_licence_or_version_is_invalid_input():
    with pytest.raises(InvalidInput, match=r"licence of c: grant\[0\]: Invalid specifier"):
        check_licence(customer="c", grants=[{"product": "p", "versions": "~>1"}], product="p", version="1.0")
    with pytest.raises(InvalidInput, match="not a PEP 440 version"):
        check_licence(customer="c", grants=[], product="p", version="eleven")


def test_products_config_of_the_repository_is_valid():
    products = load_products(Path(__file__).resolve().parents[2] / "config" / "products.toml")
    assert "endpoint-agent" in products
    agent = products["endpoint-agent"]
    assert agent.repo.is_absolute() and agent.tag_for("11.2.0") == "v11.2.0" and agent.build


def test_products_config_errors(tmp_path):
    path = tmp_path / "products.toml"
    path.write_text('[products.x]\nrepo = "r"\nbuild = []\ntimeout_seconds = 5\noutput = "*"\n')
    with pytest.raises(ConfigError, match=r"products\.toml: products\.x: build: List should have at least 1 item"):
        load_products(path)
    path.write_text('[products.x]\nrepo = "r"\nbuild = ["make"]\ntimeout_seconds = 5\noutput = "*"\n')
    assert product_spec(path, "x").repo == tmp_path / "r"
    with pytest.raises(ConfigError, match="no product 'y' \\(known: x\\)"):
        product_spec(path, "y")
