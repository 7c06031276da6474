"""Git plumbing shared by signature fixes, base builds and hotfixes (GitPython only).

Fix commits are written straight into the object database (temporary index, no checkout), so an
engineer's working tree and HEAD are never touched and a refused fix leaves nothing behind.
"""

import io
import re
from datetime import datetime

import git
from git.index.typ import BaseIndexEntry
from gitdb import IStream

from artifacts.errors import GitRefError, InvalidInput

_AUTHOR_RE = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+@[^<>\s]+)>\s*$")
_REF_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FILE_MODE = 0o100644


def open_repo(path) -> git.Repo:
    """Open a git repository, turning GitPython's exceptions into a domain error."""
    try:
        return git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise GitRefError(f"{path}: not a git repository") from exc


def resolve_commit(repo: git.Repo, ref: str) -> git.Commit:
    """The commit a ref (branch, tag, sha) names, or a GitRefError naming the ref and repo."""
    try:
        return repo.commit(ref)
    except (git.BadName, ValueError, git.GitCommandError) as exc:
        raise GitRefError(f"{repo.working_dir}: no such ref or commit {ref!r}") from exc


def parse_author(text: str) -> git.Actor:
    """`"Name <mail>"` -> Actor; fixes must be attributable to a person."""
    match = _AUTHOR_RE.match(text)
    if not match:
        raise InvalidInput(f"author {text!r}: expected 'Name <mail@domain>'")
    return git.Actor(match["name"], match["email"])


def check_ref_part(value: str, *, what: str) -> str:
    """Refuse values that would make a surprising or invalid branch/tag name component."""
    if not _REF_PART_RE.match(value) or ".." in value or value.endswith((".", ".lock")):
        raise InvalidInput(f"{what} {value!r}: use letters, digits, '.', '_' or '-' only")
    return value


def branch_exists(repo: git.Repo, branch: str) -> bool:
    return f"refs/heads/{branch}" in {ref.path for ref in repo.branches}


def commit_files(
    repo: git.Repo,
    *,
    branch: str,
    parent: git.Commit,
    files: dict[str, bytes | None],
    message: str,
    author: git.Actor,
    when: datetime,
) -> git.Commit:
    """Commit `files` (path -> content; None deletes) on top of `parent` and point `branch` at the result."""
    if not repo.bare and not repo.head.is_detached and repo.active_branch.name == branch:
        raise GitRefError(f"{repo.working_dir}: {branch} is checked out; switch branch before fixing")
    index = git.IndexFile.from_tree(repo, parent)
    entries = []
    for path, content in files.items():
        if content is None:
            index.entries.pop((path, 0), None)
            continue
        blob = repo.odb.store(IStream("blob", len(content), io.BytesIO(content)))
        entries.append(BaseIndexEntry((_FILE_MODE, blob.binsha, 0, path)))
    index.add(entries, write=False)
    commit = git.Commit.create_from_tree(
        repo,
        index.write_tree(),
        message,
        parent_commits=[parent],
        head=False,
        author=author,
        committer=author,
        author_date=when,
        commit_date=when,
    )
    if branch_exists(repo, branch):
        repo.heads[branch].commit = commit
    else:
        repo.create_head(branch, commit)
    return commit


def identity_env(name: str, email: str) -> dict[str, str]:
    """Environment giving git commands an explicit identity (no reliance on ~/.gitconfig)."""
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def create_annotated_tag(repo: git.Repo, *, name: str, commit: git.Commit, message: str, tagger: str) -> None:
    """Annotated tag so the tag itself records who built and when."""
    if name in {tag.name for tag in repo.tags}:
        raise GitRefError(f"{repo.working_dir}: tag {name} already exists")
    repo.git.tag("-a", name, commit.hexsha, "-m", message, env=identity_env(tagger, tagger))
