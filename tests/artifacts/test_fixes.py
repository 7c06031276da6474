"""FP/FN fixes: commits on fix/<request> by the engineer, refused with nothing committed otherwise."""

from datetime import UTC, datetime

import git
import pytest

from artifacts.allowlist import parse_allowlist
from artifacts.corpus import filler
from artifacts.digest import sha256_file
from artifacts.errors import DetectionError, GitRefError, InvalidInput, RuleCompileError
from artifacts.fixes import existing_fix, fix_false_negative, fix_false_positive
from artifacts.propose import propose_rule

from .conftest import AUTHOR, FN_RULE, FP_RULE, git_state

REQUEST = "RR-2026-000042"
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def test_false_positive_allowlists_the_sample_on_the_fix_branch(sigrepo, fp_sample):
    main_before = git.Repo(sigrepo).heads.main.commit.hexsha
    result = fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id=REQUEST, author=AUTHOR, now=NOW)
    repo = git.Repo(sigrepo)
    commit = repo.heads[f"fix/{REQUEST}"].commit
    assert result.branch == f"fix/{REQUEST}" and result.commit == commit.hexsha
    assert result.matched_rules == [FP_RULE]
    assert (commit.author.name, commit.author.email) == ("Jane Analyst", "jane@example.com")
    assert REQUEST in commit.message and FP_RULE in commit.message and result.sample_sha256 in commit.message
    allowlist = parse_allowlist((commit.tree / "allowlist/sha256.tsv").data_stream.read().decode(), origin="a")
    entry = allowlist[sha256_file(fp_sample)]
    # the line ships in public bases: an opaque reference and a neutral reason, never the request id
    assert (entry.request_id, entry.who, entry.when) == (result.fix_ref, AUTHOR, NOW)
    assert result.fix_ref.startswith("FX-") and f"Fix-Ref: {result.fix_ref}" in commit.message
    assert entry.reason == f"false positive of {FP_RULE}"
    assert REQUEST not in (commit.tree / "allowlist/sha256.tsv").data_stream.read().decode()
    # The engineer's checkout is untouched.
    assert repo.heads.main.commit.hexsha == main_before and repo.active_branch.name == "main"
    assert not repo.is_dirty(untracked_files=True)


def test_false_positive_refuses_an_undetected_sample(sigrepo, fn_sample):
    before = git_state(sigrepo)
    with pytest.raises(
        DetectionError, match=r"^missed\.bin \(sha256 [0-9a-f]{64}\): no rule detects it at [0-9a-f]{12}"
    ):
        fix_false_positive(repo_path=sigrepo, sample=fn_sample, request_id=REQUEST, author=AUTHOR)
    assert git_state(sigrepo) == before


def test_false_positive_refuses_an_already_allowlisted_sample(sigrepo, fp_sample):
    fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id=REQUEST, author=AUTHOR, fix_ref="FX-0000000001")
    before = git_state(sigrepo)
    with pytest.raises(DetectionError, match="already allowlisted \\(FX-0000000001\\)"):
        fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id=REQUEST, author=AUTHOR)
    assert git_state(sigrepo) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"author": "jane"}, "expected 'Name <mail@domain>'"),
        ({"request_id": "RR 1/../x"}, "request id"),
        ({"fix_ref": "FX 1/../x"}, "fix reference"),
    ],
)
def test_false_positive_refuses_bad_input(sigrepo, fp_sample, kwargs, message):
    before = git_state(sigrepo)
    args = {"repo_path": sigrepo, "sample": fp_sample, "request_id": REQUEST, "author": AUTHOR} | kwargs
    with pytest.raises(InvalidInput, match=message):
        fix_false_positive(**args)
    assert git_state(sigrepo) == before


def test_false_negative_adds_a_rule_that_detects_the_sample(sigrepo, fn_sample):
    result = fix_false_negative(
        repo_path=sigrepo, rule_text=FN_RULE, sample=fn_sample, request_id=REQUEST, author=AUTHOR, family="trojan"
    )
    commit = git.Repo(sigrepo).heads[f"fix/{REQUEST}"].commit
    assert result.path == f"rules/trojan/{result.fix_ref}.yar"  # the file name ships in bases: no request id
    assert (commit.tree / result.path).data_stream.read().decode() == FN_RULE
    assert result.matched_rules == ["trojan.Novel_Threat_A"]
    assert commit.parents[0].hexsha == result.parent


def bad_rules() -> list[tuple[str, str]]:
    return [
        (
            FN_RULE.replace("    $m\n}", "    $m and\n}"),
            r"rules/trojan/FX-[0-9a-f]{10}\.yar:12:1: error\[E001\] syntax error",
        ),
        (
            FN_RULE.replace("    $m\n}", "    $m and 1\n}"),
            r"rules/trojan/FX-[0-9a-f]{10}\.yar:11:12: warning\[non_bool_expr\]",
        ),
        (
            FN_RULE.replace("Novel_Threat_A", "Trojan_Win32_Dropper_001"),
            r"error\[E012\] duplicate rule `Trojan_Win32_Dropper_001`",
        ),
    ]


@pytest.mark.parametrize(("rule_text", "message"), bad_rules(), ids=["syntax-error", "warning", "duplicate"])
def test_false_negative_refuses_a_rule_that_does_not_compile_cleanly(sigrepo, fn_sample, rule_text, message):
    before = git_state(sigrepo)
    with pytest.raises(RuleCompileError, match=message):
        fix_false_negative(
            repo_path=sigrepo, rule_text=rule_text, sample=fn_sample, request_id=REQUEST, author=AUTHOR, family="trojan"
        )
    assert git_state(sigrepo) == before


def test_false_negative_refuses_a_rule_that_misses_the_sample(sigrepo, fp_sample):
    before = git_state(sigrepo)
    with pytest.raises(DetectionError, match=r"trojan\.Novel_Threat_A does not detect .*customer-tool\.exe"):
        fix_false_negative(
            repo_path=sigrepo, rule_text=FN_RULE, sample=fp_sample, request_id=REQUEST, author=AUTHOR, family="trojan"
        )
    assert git_state(sigrepo) == before


def test_false_negative_refuses_a_rule_that_hits_the_clean_corpus(sigrepo, tmp_path):
    sample = tmp_path / "pdf.bin"
    sample.write_bytes(b"%PDF-1.7\nnovel")
    broad = FN_RULE.replace('"NOVEL-THREAT-7f3a9c2e51d8"', '"%PDF-1.7"')
    before = git_state(sigrepo)
    with pytest.raises(DetectionError, match="also detects clean corpus sample pdf-like"):
        fix_false_negative(repo_path=sigrepo, rule_text=broad, sample=sample, request_id=REQUEST, author=AUTHOR)
    assert git_state(sigrepo) == before


def test_false_negative_refuses_a_bad_family(sigrepo, fn_sample):
    with pytest.raises(InvalidInput, match="family 'Trojans!'"):
        fix_false_negative(
            repo_path=sigrepo, rule_text=FN_RULE, sample=fn_sample, request_id=REQUEST, author=AUTHOR, family="Trojans!"
        )


def test_second_fix_stacks_on_the_fix_branch(sigrepo, fp_sample, fn_sample):
    first = fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id=REQUEST, author=AUTHOR)
    second = fix_false_negative(
        repo_path=sigrepo, rule_text=FN_RULE, sample=fn_sample, request_id=REQUEST, author=AUTHOR
    )
    assert second.parent == first.commit
    assert git.Repo(sigrepo).heads[f"fix/{REQUEST}"].commit.hexsha == second.commit


def test_proposed_rule_compiles_and_detects_the_sample(sigrepo, fn_sample, tmp_path):
    text = propose_rule(sample=fn_sample, author="Jane Analyst")
    assert "NOVEL-THREAT-7f3a9c2e51d8" in text
    result = fix_false_negative(repo_path=sigrepo, rule_text=text, sample=fn_sample, request_id=REQUEST, author=AUTHOR)
    assert result.matched_rules == [f"generic.Proposed_{result.sample_sha256[:12]}"]


def test_proposed_rule_falls_back_to_hex_for_binary_samples(sigrepo, tmp_path):
    sample = tmp_path / "packed.bin"
    sample.write_bytes(bytes(b | 0x80 for b in filler(4096, "packed")))  # no printable runs
    text = propose_rule(sample=sample, author="Jane Analyst")
    assert "$h0 = {" in text
    fix_false_negative(repo_path=sigrepo, rule_text=text, sample=sample, request_id=REQUEST, author=AUTHOR)


def test_existing_fix_resolves_a_pushed_ref(sigrepo, fp_sample):
    result = fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id=REQUEST, author=AUTHOR)
    assert existing_fix(repo_path=sigrepo, ref=f"fix/{REQUEST}") == result.commit
    with pytest.raises(GitRefError, match="no such ref or commit 'fix/RR-0'"):
        existing_fix(repo_path=sigrepo, ref="fix/RR-0")
