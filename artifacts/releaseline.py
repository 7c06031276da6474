"""The release line: the one branch of the signature repository every shared base is built from.

A request's fix is kept as a *change*, not as a commit: the allowlist entries it adds or removes and
the files it writes, relative to the commit it was made on. That is what lets a fix be moved onto a
line that moved under it (another fix released first) and be taken out again later, one fix at a
time, the way a merge queue rebases a change onto the new tip:

- `apply_change` writes the change on top of the line tip. Two fixes touching *different* allowlist
  lines never conflict (git's own three-way merge would call two lines appended at the end of the
  same file a conflict); the same allowlist hash with another line, a rule file someone else changed
  meanwhile, or a rule name already defined elsewhere is a `FixConflict` naming the other fix.
- `revert_change` writes the inverse on top of the tip (a revert commit naming the request); a later
  fix that changed the same file makes it a `FixDependency` naming that fix.
- `change_id` is a fingerprint of the change alone (no context lines, no parent): equal ids mean the
  engineers would review the very same diff, so sign-offs given to one base hold for the other.
- `advance_line` moves the branch by compare-and-swap (`git update-ref NEW OLD`), so two publishers
  racing for the line cannot both win, and the checked-out working tree (the starter repository has
  one) follows with a two-way `read-tree` that keeps local edits.

Fixes name themselves with an opaque reference (`FX-…`), never with a customer's words: the allowlist
and the rule file names end up inside public bases. Commit messages, which stay in the vendor's own
repository, carry `Request:` and `Fix-Ref:` trailers so the line can say which requests it holds.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime

import git
from pydantic import BaseModel

from artifacts.allowlist import HEADER, parse_allowlist
from artifacts.errors import ArtifactError, GitRefError
from artifacts.gitops import commit_files, resolve_commit
from artifacts.sigrepo import ALLOWLIST_PATH, RULES_DIR, rule_sources
from artifacts.yarax import RuleSource, rule_names

_TRAILER_RE = re.compile(r"^(Request|Fix-Ref|Reverts-Request|Reverts-Commit): *(\S+)\s*$", re.MULTILINE)


class FixConflict(ArtifactError):
    """The change cannot be applied to the line: another fix holds the same allowlist line, file or rule."""

    def __init__(self, problems: list[str], refs: list[str]):
        self.problems, self.refs = problems, refs
        super().__init__("conflicts with the release line: " + "; ".join(problems))


class FixDependency(ArtifactError):
    """A revert would also undo (part of) later fixes that built on this one."""

    def __init__(self, problems: list[str], refs: list[str]):
        self.problems, self.refs = problems, refs
        super().__init__("cannot revert: " + "; ".join(problems))


class LineMoved(ArtifactError):
    """The release branch is no longer where the caller expected it (someone else advanced it)."""

    def __init__(self, branch: str, expected: str, actual: str):
        self.branch, self.expected, self.actual = branch, expected, actual
        super().__init__(f"release branch {branch} moved: expected {expected[:12]}, found {actual[:12]}")


class Change(BaseModel):
    """What one fix changes, independent of where it is applied."""

    base: str  # the commit the fix was made on
    commit: str  # the commit holding the fix
    allowlist_added: dict[str, str] = {}  # sha256 -> the whole TSV line (with its newline)
    allowlist_removed: dict[str, str] = {}
    files: dict[str, str | None] = {}  # path -> text after the fix (None: deleted); the allowlist apart
    before: dict[str, str | None] = {}  # path -> text at `base`

    @property
    def change_id(self) -> str:
        canonical = json.dumps(
            {"+": self.allowlist_added, "-": self.allowlist_removed, "files": self.files},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def line_tip(repo: git.Repo, branch: str) -> git.Commit:
    """The commit the release branch points at; a missing branch is a configuration error, said as such."""
    try:
        return repo.heads[branch].commit
    except (IndexError, AttributeError, ValueError) as exc:
        raise GitRefError(
            f"{repo.working_dir}: release branch {branch!r} does not exist (set [release_line] branch)"
        ) from exc


def contains(repo: git.Repo, *, ancestor: str, descendant: str) -> bool:
    """Whether `descendant` has every commit of `ancestor` (the publish-time invariant)."""
    return ancestor == descendant or repo.is_ancestor(ancestor, descendant)


def change_of(repo: git.Repo, *, base: str, commit: str) -> Change:
    """The change `commit` makes relative to `base` (its merge base with the line, for a pushed ref)."""
    old, new = resolve_commit(repo, base), resolve_commit(repo, commit)
    paths = [p for p in repo.git.diff("--name-only", "--no-renames", old.hexsha, new.hexsha).splitlines() if p]
    change = Change(base=old.hexsha, commit=new.hexsha)
    for path in paths:
        before, after = _text(old, path), _text(new, path)
        if path == ALLOWLIST_PATH:
            was, now = _allowlist_lines(before or HEADER), _allowlist_lines(after or HEADER)
            change.allowlist_added = {h: line for h, line in now.items() if was.get(h) != line}
            change.allowlist_removed = {h: line for h, line in was.items() if now.get(h) != line}
        else:
            change.files[path], change.before[path] = after, before
    return change


def apply_change(
    repo: git.Repo, change: Change, *, onto: str, branch: str, message: str, author: git.Actor, when: datetime
) -> str:
    """Commit `change` on top of `onto` on `branch`; `onto` itself when the line already holds all of it."""
    tip = resolve_commit(repo, onto)
    problems: list[str] = []
    refs: set[str] = set()
    text = _text(tip, ALLOWLIST_PATH) or HEADER
    lines = _allowlist_lines(text)
    entries = parse_allowlist(text, origin=ALLOWLIST_PATH)
    for digest, line in change.allowlist_added.items():
        if digest in lines and lines[digest] != line:
            other = entries[digest].request_id
            problems.append(f"allowlist entry {digest[:12]} is already on the line for {other}")
            refs.add(other)
    files: dict[str, str | None] = {}
    for path, after in change.files.items():
        current = _text(tip, path)
        if current == after:
            continue
        if current != change.before.get(path):
            others = touched_by(repo, since=change.base, until=tip.hexsha, path=path)
            problems.append(f"{path} was changed on the line since {change.base[:12]} by {', '.join(others) or '?'}")
            refs.update(others)
            continue
        files[path] = after
    problems += _rule_name_clashes(tip, change, refs)
    if problems:
        raise FixConflict(problems, sorted(refs))
    new_lines = {h: line for h, line in lines.items() if h not in change.allowlist_removed}
    new_lines.update(change.allowlist_added)
    return _commit_changes(
        repo, tip, files, allowlist=(text, lines, new_lines), branch=branch, message=message, author=author, when=when
    )


def revert_change(
    repo: git.Repo, change: Change, *, onto: str, branch: str, message: str, author: git.Actor, when: datetime
) -> str:
    """Commit the inverse of `change` on top of `onto`; `onto` itself when nothing of it is left."""
    tip = resolve_commit(repo, onto)
    problems: list[str] = []
    refs: set[str] = set()
    text = _text(tip, ALLOWLIST_PATH) or HEADER
    lines = _allowlist_lines(text)
    new_lines = dict(lines)
    for digest, line in change.allowlist_added.items():
        if lines.get(digest) == line:
            del new_lines[digest]
    for digest, line in change.allowlist_removed.items():
        new_lines.setdefault(digest, line)
    files: dict[str, str | None] = {}
    for path, after in change.files.items():
        current = _text(tip, path)
        if current == change.before.get(path):
            continue
        if current != after:
            others = touched_by(repo, since=change.commit, until=tip.hexsha, path=path)
            problems.append(f"{path} was changed again since the fix by {', '.join(others) or 'a later commit'}")
            refs.update(others)
            continue
        files[path] = change.before.get(path)
    if problems:
        raise FixDependency(problems, sorted(refs))
    return _commit_changes(
        repo, tip, files, allowlist=(text, lines, new_lines), branch=branch, message=message, author=author, when=when
    )


def advance_line(repo: git.Repo, *, branch: str, new: str, expected: str) -> None:
    """Move the release branch from `expected` to `new`, or LineMoved if it is elsewhere now."""
    actual = line_tip(repo, branch).hexsha
    if actual == new:
        return  # already there (a re-run after a crash)
    if actual != expected:
        raise LineMoved(branch, expected, actual)
    try:
        repo.git.update_ref(f"refs/heads/{branch}", new, expected, m=f"release line: {new[:12]}")
    except git.GitCommandError as exc:
        raise LineMoved(branch, expected, line_tip(repo, branch).hexsha) from exc
    checked_out = not repo.bare and not repo.head.is_detached and repo.active_branch.name == branch
    if checked_out:  # the line moved: bring the working tree along (a two-way merge keeps local edits)
        try:
            repo.git.update_index("-q", "--refresh", with_exceptions=False)
            repo.git.read_tree("-m", "-u", expected, new)
        except git.GitCommandError:
            pass  # local edits in the way: `git status` shows the difference; committing them needs a rebase


def trailers(message: str) -> dict[str, list[str]]:
    """`Request:` / `Fix-Ref:` / `Reverts-Request:` / `Reverts-Commit:` trailers of a commit message."""
    found: dict[str, list[str]] = {}
    for key, value in _TRAILER_RE.findall(message):
        found.setdefault(key, []).append(value)
    return found


def requests_between(repo: git.Repo, *, since: str | None, until: str) -> list[str]:
    """Requests whose fixes (or reverts) joined between two line commits, oldest first."""
    spec = f"{since}..{until}" if since else until
    seen: dict[str, None] = {}
    for commit in reversed(list(repo.iter_commits(spec))):
        for value in trailers(commit.message).get("Request", []):
            seen.setdefault(value)
    return list(seen)


def reverted_since(repo: git.Repo, *, base: str, until: str) -> list[str]:
    """Fix commits contained in `base` that a revert between `base` and `until` took off the line."""
    reverted = [
        sha
        for commit in repo.iter_commits(f"{base}..{until}")
        for sha in trailers(commit.message).get("Reverts-Commit", [])
    ]
    return [sha for sha in reverted if contains(repo, ancestor=sha, descendant=base)]


def touched_by(repo: git.Repo, *, since: str, until: str, path: str) -> list[str]:
    """The fix references (else short shas) of commits after `since` up to `until` that changed `path`."""
    who: dict[str, None] = {}
    for commit in repo.iter_commits(f"{since}..{until}", paths=path):
        found = trailers(commit.message)
        for ref in found.get("Fix-Ref") or found.get("Request") or [commit.hexsha[:12]]:
            who.setdefault(ref)
    return list(who)


def _rule_name_clashes(tip: git.Commit, change: Change, refs: set[str]) -> list[str]:
    """Rules the change defines that the line already defines in another file (YARA-X would refuse both)."""
    mine = [
        RuleSource(namespace=path.split("/")[1], path=path, text=text)
        for path, text in change.files.items()
        if text is not None and path.startswith(f"{RULES_DIR}/") and path.endswith(".yar")
    ]
    if not mine:
        return []
    new = set(rule_names(mine))
    problems = []
    for source in rule_sources(tip):
        if source.path in change.files:
            continue
        for name in sorted(new & set(rule_names([source]))):
            other = source.path.rsplit("/", 1)[-1].removesuffix(".yar")
            problems.append(f"rule {name} is already defined in {source.path}")
            refs.add(other)
    return problems


def _text(commit: git.Commit, path: str) -> str | None:
    try:
        return (commit.tree / path).data_stream.read().decode("utf-8")
    except KeyError:
        return None


def _allowlist_lines(text: str) -> dict[str, str]:
    """sha256 -> its line (newline included), for every entry line after the header."""
    return {line.split("\t", 1)[0]: line + "\n" for line in text.split("\n")[1:] if line.strip()}


def _render_allowlist(text: str, lines: dict[str, str], new_lines: dict[str, str]) -> str:
    """The allowlist with `new_lines`: kept lines in their order, new ones appended (small, reviewable diffs)."""
    if new_lines == lines:
        return text
    kept = [line for digest, line in lines.items() if new_lines.get(digest) == line]
    added = [line for digest, line in new_lines.items() if lines.get(digest) != line]
    return HEADER + "".join(kept + added)


def _commit_changes(
    repo: git.Repo,
    tip: git.Commit,
    files: dict[str, str | None],
    *,
    allowlist: tuple[str, dict[str, str], dict[str, str]],
    **commit,
) -> str:
    """Commit `files` and the allowlist's new lines on top of `tip`; `tip` itself when nothing changes."""
    text, lines, new_lines = allowlist
    new_text = _render_allowlist(text, lines, new_lines)
    if new_text != text:
        files[ALLOWLIST_PATH] = new_text
    if not files:
        return tip.hexsha
    encoded = {path: None if content is None else content.encode() for path, content in files.items()}
    return commit_files(repo, parent=tip, files=encoded, **commit).hexsha
