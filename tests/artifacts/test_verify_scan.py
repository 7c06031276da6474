"""verify-base and scan: a fixed FP is no longer reported, a fixed FN now is, corpora hold."""

import json
import shutil

import pytest

from artifacts.base import build_base
from artifacts.clamav import clamav_detected
from artifacts.corpus import load_corpus
from artifacts.fixes import fix_false_negative, fix_false_positive
from artifacts.gitops import open_repo
from artifacts.scan import exit_code, open_base_bundle, scan_files
from artifacts.signing import FileKeySigner
from artifacts.sigrepo import rule_sources
from artifacts.verify import REPORT_FILE, VerificationReport, verify_base

from .conftest import AUTHOR, BUILDER, FN_RULE, FP_RULE


def build(sigrepo, tmp_path, key, store, ref):
    signer = FileKeySigner(key)
    manifest = build_base(
        repo_path=sigrepo, ref=ref, out_dir=tmp_path / "out", signer=signer, store=store, builder=BUILDER
    )
    return tmp_path / "out" / manifest.version


def test_fixed_false_positive_verifies_clean_and_is_diffed(sigrepo, tmp_path, key, store, fp_sample):
    before = build(sigrepo, tmp_path, key, store, "main")
    fix = fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id="RR-1", author=AUTHOR)
    after = build(sigrepo, tmp_path, key, store, fix.branch)
    report = verify_base(
        bundle_dir=after,
        public_key=key.public_key(),
        samples=[fp_sample],
        expect="clean",
        previous=before,
        repo_path=sigrepo,
    )
    assert report.passed, report.checks
    statuses = {c.name: c.status for c in report.checks}
    assert statuses["request-samples"] == statuses["clean-samples"] == statuses["malicious-samples"] == "passed"
    assert len([s for s in report.samples if s.set == "malicious"]) == 300
    [change] = report.changes
    assert (change.name, change.before, change.after, change.after_rules) == (
        fp_sample.name,
        "detected",
        "allowlisted",
        [FP_RULE],
    )
    stored = VerificationReport.model_validate_json((after / REPORT_FILE).read_text())
    assert stored == report
    # Against the old base the same expectation fails, and the report says so.
    failed = verify_base(bundle_dir=before, public_key=key.public_key(), samples=[fp_sample], expect="clean")
    assert not failed.passed
    assert [c.status for c in failed.checks if c.name == "request-samples"] == ["failed"]
    assert {c.name: c.status for c in failed.checks}["corpus"] == "skipped"
    assert json.loads((before / REPORT_FILE).read_text())["passed"] is False


def test_fixed_false_negative_verifies_detected(sigrepo, tmp_path, key, store, fn_sample):
    fix = fix_false_negative(repo_path=sigrepo, rule_text=FN_RULE, sample=fn_sample, request_id="RR-2", author=AUTHOR)
    bundle = build(sigrepo, tmp_path, key, store, fix.branch)
    report = verify_base(
        bundle_dir=bundle, public_key=key.public_key(), samples=[fn_sample], expect="detected", repo_path=sigrepo
    )
    assert report.passed
    [request] = [s for s in report.samples if s.set == "request"]
    assert request.rules == ["generic.Novel_Threat_A"]


def test_scan_honours_the_allowlist_and_sets_exit_codes(sigrepo, tmp_path, key, store, fp_sample, fn_sample):
    fix = fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id="RR-1", author=AUTHOR)
    bundle = open_base_bundle(build(sigrepo, tmp_path, key, store, fix.branch), public_key=key.public_key())
    malware = tmp_path / "eicar.com"
    corpus = load_corpus(open_repo(sigrepo).head.commit)
    malware.write_bytes(next(s for s in corpus.malicious if s.name == "eicar-test-file").render())
    results = scan_files(bundle, [fp_sample, fn_sample, malware, tmp_path / "absent"])
    assert [r.verdict for r in results] == ["allowlisted", "clean", "detected", "error"]
    assert results[0].rules == [FP_RULE] and results[2].rules == ["testfile.Eicar_Test_File"]
    assert "absent: No such file or directory" in results[3].error
    assert exit_code(results[:2]) == 0 and exit_code(results[:3]) == 1 and exit_code(results) == 2


def test_verify_fails_when_the_malicious_corpus_is_missed(sigrepo, tmp_path, key, store):
    bundle = build(sigrepo, tmp_path, key, store, "main")
    # A repo whose corpus expects a rule the base does not have: the regression check must fail.
    repo = open_repo(sigrepo)
    path = sigrepo / "corpus" / "malicious.toml"
    path.write_text(path.read_text().replace('expect = "worm.Worm_Win32_Usb_001"', 'expect = "worm.Worm_Missing"'))
    repo.index.add(["corpus/malicious.toml"])
    repo.index.commit("bad expectation")
    shutil.rmtree(bundle)
    bundle = build(sigrepo, tmp_path, key, store, "main")
    report = verify_base(bundle_dir=bundle, public_key=key.public_key(), samples=[], expect="clean", repo_path=sigrepo)
    assert not report.passed
    check = next(c for c in report.checks if c.name == "malicious-samples")
    assert check.status == "failed" and "worm-win32-usb-001" in check.detail


@pytest.mark.skipif(
    shutil.which("clamscan") is None, reason="clamscan (ClamAV) is not installed: apt-get install clamav"
)
def test_clamav_agrees_with_yara_x_on_the_corpus(sigrepo, tmp_path, key, store):
    commit = open_repo(sigrepo).head.commit
    corpus = load_corpus(commit)
    samples = {f"clean/{s.name}": s.render() for s in corpus.clean} | {
        f"bad/{s.name}": s.render() for s in corpus.malicious
    }
    flagged = clamav_detected(sources=rule_sources(commit), samples=samples)
    assert flagged == {name for name in samples if name.startswith("bad/")}
    bundle = build(sigrepo, tmp_path, key, store, "main")
    report = verify_base(bundle_dir=bundle, public_key=key.public_key(), samples=[], expect="clean", repo_path=sigrepo)
    assert {c.name: c.status for c in report.checks}["clamav-cross-check"] == "passed"
