"""The artifacts and sigrepo CLI through typer's CliRunner (build-hotfix's CLI is tested by the lead)."""

import json

import pytest
import typer
from typer.testing import CliRunner

from release_requests.cli.artifacts import artifacts_app, sigrepo_app
from release_requests.settings import get_settings

from .conftest import AUTHOR, FN_RULE, FP_RULE

app = typer.Typer()
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(sigrepo_app, name="sigrepo")


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()  # settings an earlier test cached would point at another data directory
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    yield invoke
    get_settings.cache_clear()


def test_every_command_has_help(run):
    for command in ["fix-fp", "fix-fn", "build-base", "verify-base", "scan", "build-hotfix", "public-key", "keygen"]:
        result = run("artifacts", command, "--help")
        assert result.exit_code == 0 and "--json" in result.output, command
    assert run("sigrepo", "init", "--help").exit_code == 0


def test_init_fix_build_verify_scan_round_trip(run, tmp_path, fp_sample, fn_sample):
    repo = tmp_path / "sigs"
    init = run("sigrepo", "init", repo, "--json")
    assert init.exit_code == 0 and json.loads(init.stdout)["rules"] == 300

    fp = run(
        "artifacts", "fix-fp", "--repo", repo, "--sample", fp_sample, "--request", "RR-7", "--author", AUTHOR, "--json"
    )
    assert fp.exit_code == 0, fp.output
    assert json.loads(fp.stdout)["branch"] == "fix/RR-7" and json.loads(fp.stdout)["matched_rules"] == [FP_RULE]
    rule = tmp_path / "rule.yar"
    rule.write_text(FN_RULE)
    fn = run(
        "artifacts",
        "fix-fn",
        "--repo",
        repo,
        "--rule",
        rule,
        "--sample",
        fn_sample,
        "--request",
        "RR-7",
        "--author",
        AUTHOR,
        "--family",
        "trojan",
        "--fix-ref",
        "FX-00000000a7",
    )
    assert fn.exit_code == 0 and "fix/RR-7" in fn.stdout and "rules/trojan/FX-00000000a7.yar" in fn.stdout

    out = tmp_path / "bundles"
    keyless = run("artifacts", "build-base", "--repo", repo, "--ref", "main", "--out", out)
    assert keyless.exit_code == 2 and "relreq artifacts keygen" in keyless.stderr  # never made as a side effect
    created = run("artifacts", "keygen", "--json")
    assert created.exit_code == 0 and json.loads(created.stdout)["created"] is True
    again = run("artifacts", "keygen", "--json")
    assert json.loads(again.stdout)["key_id"] == json.loads(created.stdout)["key_id"] and "kept it" in again.stderr
    pub = tmp_path / "pub.pem"
    pub.write_text(json.loads(created.stdout)["public_key"])
    old = json.loads(run("artifacts", "build-base", "--repo", repo, "--ref", "main", "--out", out, "--json").stdout)
    built = run("artifacts", "build-base", "--repo", repo, "--ref", "fix/RR-7", "--out", out, "--json")
    assert built.exit_code == 0, built.output
    manifest = json.loads(built.stdout)
    assert manifest["rule_count"] == 301 and manifest["parent_version"] == old["version"]
    bundle, previous = out / manifest["version"], out / old["version"]

    verified = run(
        "artifacts",
        "verify-base",
        bundle,
        "--sample",
        fp_sample,
        "--expect",
        "clean",
        "--previous",
        previous,
        "--repo",
        repo,
        "--public-key",
        pub,
    )
    assert verified.exit_code == 0, verified.output
    assert "PASSED" in verified.stdout and "clamav-cross-check" in verified.stdout
    failed = run(
        "artifacts", "verify-base", bundle, "--sample", fn_sample, "--expect", "clean", "--public-key", pub, "--json"
    )
    assert failed.exit_code == 1 and json.loads(failed.stdout)["passed"] is False

    keyless_scan = run("artifacts", "scan", "--bundle", bundle, fp_sample)
    assert keyless_scan.exit_code == 2 and "no public key" in keyless_scan.stderr
    key = ["--public-key", pub]
    assert run("artifacts", "scan", "--bundle", bundle, *key, fp_sample).exit_code == 0
    detected = run("artifacts", "scan", "--bundle", bundle, *key, fp_sample, fn_sample, "--json")
    assert detected.exit_code == 1
    assert [r["verdict"] for r in json.loads(detected.stdout)["results"]] == ["allowlisted", "detected"]
    assert run("artifacts", "scan", "--bundle", bundle, *key, tmp_path / "missing").exit_code == 2

    pem = run("artifacts", "public-key")
    assert pem.exit_code == 0 and pem.stdout == pub.read_text()


def test_errors_are_one_line_on_stderr_with_exit_2(run, tmp_path, sigrepo, fn_sample):
    result = run(
        "artifacts", "fix-fp", "--repo", sigrepo, "--sample", fn_sample, "--request", "RR-8", "--author", AUTHOR
    )
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "no rule detects it" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr

    assert run("artifacts", "keygen").exit_code == 0
    pub = tmp_path / "pub.pem"
    pub.write_text(run("artifacts", "public-key").stdout)
    out = tmp_path / "out"
    manifest = json.loads(
        run("artifacts", "build-base", "--repo", sigrepo, "--ref", "main", "--out", out, "--json").stdout
    )
    sig = out / manifest["version"] / "manifest.sig"
    sig.chmod(0o644)
    sig.write_text("AAAA\n")
    tampered = run("artifacts", "verify-base", out / manifest["version"], "--public-key", pub)
    assert tampered.exit_code == 2 and "signature does not verify" in tampered.stderr
    assert run("artifacts", "verify-base", out / manifest["version"], "--sample", fn_sample).exit_code == 2
