"""Layout of a signature repository, read straight from a commit (never from a working tree).

    rules/<family>/*.yar     one folder per family; the folder name is the YARA-X namespace
    allowlist/sha256.tsv     reviewed false-positive allowlist (see artifacts.allowlist)
    corpus/clean.toml        synthetic clean samples (see artifacts.corpus)
    corpus/malicious.toml    synthetic malicious samples with the rule expected to hit each

Reading from the commit means a build of commit X depends on X alone, whatever is checked out.
"""

import re

import git

from artifacts.errors import RepoLayoutError
from artifacts.yarax import RuleSource

RULES_DIR = "rules"
ALLOWLIST_PATH = "allowlist/sha256.tsv"
CLEAN_CORPUS_PATH = "corpus/clean.toml"
MALICIOUS_CORPUS_PATH = "corpus/malicious.toml"
FAMILY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def read_text(commit: git.Commit, path: str) -> str:
    """A UTF-8 file of the commit, or a RepoLayoutError naming the path and commit."""
    try:
        blob = commit.tree / path
    except KeyError as exc:
        raise RepoLayoutError(f"{path}: missing in commit {commit.hexsha[:12]}") from exc
    try:
        return blob.data_stream.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RepoLayoutError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc


def rule_sources(commit: git.Commit, *, overrides: dict[str, str] | None = None) -> list[RuleSource]:
    """Every `rules/<family>/*.yar` of the commit, with `overrides` (path -> text) applied on top."""
    texts: dict[str, str] = {}
    try:
        rules_tree = commit.tree / RULES_DIR
    except KeyError:
        rules_tree = None
    if rules_tree is not None:
        for item in rules_tree.traverse():
            if item.type == "blob":
                texts[item.path] = read_text(commit, item.path)
    texts.update(overrides or {})
    return [RuleSource(namespace=_family_of(path), path=path, text=text) for path, text in sorted(texts.items())]


def _family_of(path: str) -> str:
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != RULES_DIR or not parts[2].endswith(".yar"):
        raise RepoLayoutError(f"{path}: rule files must be {RULES_DIR}/<family>/<name>.yar")
    if not FAMILY_RE.match(parts[1]):
        raise RepoLayoutError(f"{path}: family folder {parts[1]!r} must match {FAMILY_RE.pattern}")
    return parts[1]


def rule_path(family: str, name: str) -> str:
    """Repository path of a rule file in a family folder."""
    return f"{RULES_DIR}/{family}/{name}.yar"
