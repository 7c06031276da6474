"""The release line's change model on a real git repository: apply, conflict, revert, depend, move."""

from __future__ import annotations

from datetime import UTC, datetime

import git
import pytest

from artifacts.fixes import fix_false_negative, fix_false_positive
from artifacts.releaseline import (
    FixConflict,
    FixDependency,
    LineMoved,
    advance_line,
    apply_change,
    change_of,
    contains,
    revert_change,
)
from tests.artifacts.conftest import AUTHOR, FN_RULE

WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
WHO = git.Actor("release-pipeline", "release-pipeline@vendor.example")


def second_sample(fp_sample, tmp_path):
    other = tmp_path / "other.exe"
    other.write_bytes(b"MZ another tool " + fp_sample.read_bytes())
    return other


def test_two_allowlist_fixes_from_one_tip_both_land_and_keep_their_change_id(sigrepo, fp_sample, tmp_path):
    repo = git.Repo(sigrepo)
    tip = repo.heads.main.commit.hexsha
    a = fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id="RR-1", author=AUTHOR, base=tip)
    b = fix_false_positive(
        repo_path=sigrepo, sample=second_sample(fp_sample, tmp_path), request_id="RR-2", author=AUTHOR, base=tip
    )
    advance_line(repo, branch="main", new=a.commit, expected=tip)
    change = change_of(repo, base=tip, commit=b.commit)
    rebased = apply_change(repo, change, onto=a.commit, branch="fix/RR-2b", message="m", author=WHO, when=WHEN)
    assert contains(repo, ancestor=a.commit, descendant=rebased)
    assert change_of(repo, base=a.commit, commit=rebased).change_id == change.change_id  # same diff reviewed
    text = (repo.commit(rebased).tree / "allowlist/sha256.tsv").data_stream.read().decode()
    assert a.sample_sha256 in text and b.sample_sha256 in text
    assert apply_change(repo, change, onto=rebased, branch="x", message="m", author=WHO, when=WHEN) == rebased


def test_the_same_rule_name_twice_is_a_conflict_naming_the_other_fix(sigrepo, fn_sample):
    repo = git.Repo(sigrepo)
    tip = repo.heads.main.commit.hexsha
    a = fix_false_negative(
        repo_path=sigrepo, rule_text=FN_RULE, sample=fn_sample, request_id="RR-1", author=AUTHOR, base=tip
    )
    b = fix_false_negative(
        repo_path=sigrepo, rule_text=FN_RULE, sample=fn_sample, request_id="RR-2", author=AUTHOR, base=tip
    )
    with pytest.raises(FixConflict, match="rule generic.Novel_Threat_A is already defined") as conflict:
        apply_change(
            repo,
            change_of(repo, base=tip, commit=b.commit),
            onto=a.commit,
            branch="y",
            message="m",
            author=WHO,
            when=WHEN,
        )
    assert conflict.value.refs == [a.fix_ref]


def test_revert_takes_out_one_fix_and_refuses_when_a_later_fix_changed_its_file(
    sigrepo, fp_sample, fn_sample, tmp_path
):
    repo = git.Repo(sigrepo)
    tip = repo.heads.main.commit.hexsha
    a = fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id="RR-1", author=AUTHOR, base=tip)
    b = fix_false_positive(
        repo_path=sigrepo, sample=second_sample(fp_sample, tmp_path), request_id="RR-2", author=AUTHOR, base=a.commit
    )
    reverted = revert_change(
        repo, change_of(repo, base=tip, commit=a.commit), onto=b.commit, branch="r", message="m", author=WHO, when=WHEN
    )
    text = (repo.commit(reverted).tree / "allowlist/sha256.tsv").data_stream.read().decode()
    assert a.sample_sha256 not in text and b.sample_sha256 in text

    rule = fix_false_negative(
        repo_path=sigrepo, rule_text=FN_RULE, sample=fn_sample, request_id="RR-3", author=AUTHOR, base=tip
    )
    with pytest.raises(FixDependency, match="changed again since the fix by FX-0000000009"):
        revert_change(
            repo,
            change_of(repo, base=tip, commit=rule.commit),
            onto=_with_file(repo, rule.commit, rule.path, FN_RULE.replace("high", "critical")),
            branch="r2",
            message="m",
            author=WHO,
            when=WHEN,
        )


def _with_file(repo: git.Repo, parent: str, path: str, text: str) -> str:
    from artifacts.gitops import commit_files

    commit = commit_files(
        repo,
        branch="tuned",
        parent=repo.commit(parent),
        files={path: text.encode()},
        message="tune the rule\n\nFix-Ref: FX-0000000009\n",
        author=WHO,
        when=WHEN,
    )
    return commit.hexsha


def test_the_line_moves_only_from_where_the_mover_expected(sigrepo, fp_sample):
    repo = git.Repo(sigrepo)
    tip = repo.heads.main.commit.hexsha
    fix = fix_false_positive(repo_path=sigrepo, sample=fp_sample, request_id="RR-1", author=AUTHOR, base=tip)
    advance_line(repo, branch="main", new=fix.commit, expected=tip)
    advance_line(repo, branch="main", new=fix.commit, expected=tip)  # a re-run: already there
    with pytest.raises(LineMoved, match="expected"):
        advance_line(repo, branch="main", new=tip, expected=tip)
    assert repo.heads.main.commit.hexsha == fix.commit
    assert not repo.is_dirty()  # the checked-out working tree followed the line
