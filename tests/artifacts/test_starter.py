"""`sigrepo init`: a realistic starter that passes its own corpus."""

import git
import pytest
import yara_x

from artifacts.allowlist import HEADER
from artifacts.corpus import eicar, load_corpus
from artifacts.errors import InvalidInput
from artifacts.sigrepo import rule_sources
from artifacts.starter import init_sigrepo
from artifacts.yarax import compile_rules, matching_rules, rule_names


def test_starter_has_300_rules_in_families_with_metadata_and_one_commit(starter_template):
    repo = git.Repo(starter_template)
    commit = repo.head.commit
    assert repo.active_branch.name == "main"
    assert len(list(repo.iter_commits())) == 1
    assert commit.author.email == "signatures@example.com"
    sources = rule_sources(commit)
    names = rule_names(sources)
    assert len(names) == 300
    assert {s.namespace for s in sources} == {
        "trojan",
        "ransomware",
        "worm",
        "backdoor",
        "downloader",
        "adware",
        "testfile",
    }
    assert (commit.tree / "allowlist/sha256.tsv").data_stream.read().decode() == HEADER
    rules = compile_rules(sources)  # compiles with the metadata policy: every rule has all metadata
    match = yara_x.Scanner(rules).scan(eicar()).matching_rules[0]
    assert dict(match.metadata).keys() == {"author", "description", "severity", "created", "reference"}
    assert not repo.is_dirty(untracked_files=True)


def test_starter_passes_its_own_corpus(starter_template):
    commit = git.Repo(starter_template).head.commit
    scanner = yara_x.Scanner(compile_rules(rule_sources(commit)))
    corpus = load_corpus(commit)
    assert len(corpus.clean) >= 10
    assert {s.expect for s in corpus.malicious} == set(rule_names(rule_sources(commit)))
    for sample in corpus.clean:
        assert matching_rules(scanner, sample.render()) == [], sample.name
    for sample in corpus.malicious:
        assert sample.expect in matching_rules(scanner, sample.render()), sample.name


def test_no_full_eicar_string_is_stored_in_git(starter_template):
    repo = git.Repo(starter_template)
    for blob in repo.head.commit.tree.traverse():
        if blob.type == "blob":
            assert eicar() not in blob.data_stream.read(), blob.path


def test_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(InvalidInput, match="exists and is not empty"):
        init_sigrepo(path=tmp_path, author="A <a@example.com>")
    assert not (tmp_path / ".git").exists()
