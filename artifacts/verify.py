"""Verify a base bundle before it is released.

Order matters: the signature and every file hash are checked first (a tampered bundle is refused
outright and no report is written). Then the request's samples (a fixed false positive is no
longer reported, a fixed false negative now is), the clean corpus (nothing detected), the
malicious corpus (each detected by its expected rule), ClamAV over the same corpus when
installed, and finally the detections are diffed against the previous base. The report is stored
beside the bundle as `verification.json`; `passed` is false if any check failed.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import git
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from artifacts.clamav import clamav_detected, clamscan_path
from artifacts.corpus import Corpus, load_corpus
from artifacts.errors import CrossCheckError, InvalidInput
from artifacts.gitops import open_repo, resolve_commit
from artifacts.progress import Progress, silent
from artifacts.scan import FileScan, Verdict, open_base_bundle, scan_bytes
from artifacts.signing import key_id
from artifacts.sigrepo import rule_sources

REPORT_FILE = "verification.json"
SampleSet = Literal["request", "clean", "malicious"]


class Check(BaseModel):
    name: str
    status: Literal["passed", "failed", "skipped"]
    detail: str


class SampleResult(BaseModel):
    set: SampleSet
    name: str
    expected: str
    verdict: Verdict
    rules: list[str]
    passed: bool


class DetectionChange(BaseModel):
    name: str
    before: Verdict
    after: Verdict
    before_rules: list[str]
    after_rules: list[str]


class VerificationReport(BaseModel):
    version: str
    commit: str
    verified_at: datetime
    public_key_id: str
    passed: bool
    checks: list[Check]
    samples: list[SampleResult]
    previous_version: str | None
    changes: list[DetectionChange]


def verify_base(
    *,
    bundle_dir: Path,
    public_key: Ed25519PublicKey,
    samples: list[Path],
    expect: Literal["clean", "detected"],
    previous: Path | None = None,
    repo_path: Path | None = None,
    now: datetime | None = None,
    progress: Progress = silent,
) -> VerificationReport:
    """Run every check and store the report beside the bundle; tampering raises instead."""
    bundle = open_base_bundle(bundle_dir, public_key=public_key)
    before = open_base_bundle(previous, public_key=public_key) if previous else None
    checks = [
        Check(
            name="signature-and-hashes",
            status="passed",
            detail=f"{len(bundle.manifest.files)} files match the manifest signed by {key_id(public_key)}",
        )
    ]
    items = [("request", path.name, _read(path), expect) for path in samples]
    commit = resolve_commit(open_repo(repo_path), bundle.manifest.commit) if repo_path else None
    corpus = load_corpus(commit) if commit else None
    if corpus is None:
        checks.append(Check(name="corpus", status="skipped", detail="no signature repository given (--repo)"))
    else:
        items += [("clean", s.name, s.render(), "clean") for s in corpus.clean]
        items += [("malicious", s.name, s.render(), s.expect) for s in corpus.malicious]
    results: list[SampleResult] = []
    changes: list[DetectionChange] = []
    for done, (sample_set, name, data, expected) in enumerate(items):
        progress(done, len(items), f"scanning {sample_set} sample {name}")
        scan = scan_bytes(bundle, data, name=name)
        results.append(_judge(sample_set, name, expected, scan))
        if before is not None:
            old = scan_bytes(before, data, name=name)
            if (old.verdict, old.rules) != (scan.verdict, scan.rules):
                changes.append(
                    DetectionChange(
                        name=name,
                        before=old.verdict,
                        after=scan.verdict,
                        before_rules=old.rules,
                        after_rules=scan.rules,
                    )
                )
    progress(len(items), len(items), "cross-checking")
    for sample_set in ("request", "clean", "malicious"):
        subset = [r for r in results if r.set == sample_set]
        if subset:
            failed = [r.name for r in subset if not r.passed]
            checks.append(
                Check(
                    name=f"{sample_set}-samples",
                    status="failed" if failed else "passed",
                    detail=f"{len(subset) - len(failed)}/{len(subset)} as expected"
                    + (f"; unexpected: {', '.join(failed)}" if failed else ""),
                )
            )
    checks.append(_clamav_check(commit, corpus))
    report = VerificationReport(
        version=bundle.manifest.version,
        commit=bundle.manifest.commit,
        verified_at=now or datetime.now(UTC),
        public_key_id=key_id(public_key),
        passed=all(check.status != "failed" for check in checks),
        checks=checks,
        samples=results,
        previous_version=before.manifest.version if before else None,
        changes=changes,
    )
    (bundle_dir / REPORT_FILE).write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return report


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read sample ({exc.strerror})") from exc


def _judge(sample_set: SampleSet, name: str, expected: str, scan: FileScan) -> SampleResult:
    if expected == "detected":
        passed = scan.verdict == "detected"
    elif expected == "clean":
        passed = scan.verdict in ("clean", "allowlisted")
    else:
        passed = scan.verdict == "detected" and expected in scan.rules
    return SampleResult(
        set=sample_set, name=name, expected=expected, verdict=scan.verdict, rules=scan.rules, passed=passed
    )


def _clamav_check(commit: git.Commit | None, corpus: Corpus | None) -> Check:
    if commit is None or corpus is None:
        return Check(name="clamav-cross-check", status="skipped", detail="no corpus (--repo) to cross-check")
    if clamscan_path() is None:
        return Check(name="clamav-cross-check", status="skipped", detail="clamscan is not installed")
    samples = {f"clean/{s.name}": s.render() for s in corpus.clean}
    samples |= {f"malicious/{s.name}": s.render() for s in corpus.malicious}
    try:
        flagged = clamav_detected(sources=rule_sources(commit), samples=samples)
    except CrossCheckError as exc:
        return Check(name="clamav-cross-check", status="failed", detail=str(exc))
    wrong = sorted(name for name in samples if (name in flagged) != name.startswith("malicious/"))
    detail = f"{len(samples) - len(wrong)}/{len(samples)} samples agree with YARA-X expectations"
    if wrong:
        detail += f"; disagree: {', '.join(wrong)}"
    return Check(name="clamav-cross-check", status="failed" if wrong else "passed", detail=detail)
