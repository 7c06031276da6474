"""Base versions `YYYY.MM.DD.N`: N counts the builds of that day, taken from the repo's tags."""

import re
from datetime import date

import git

from artifacts.errors import GitRefError

BASE_VERSION_RE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})\.(\d+)$")


def _key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


def next_base_version(repo: git.Repo, *, day: date) -> str:
    """One more than the highest N tagged on `day` (1 for the day's first build)."""
    prefix = day.strftime("%Y.%m.%d.")
    taken = [_key(tag.name)[3] for tag in repo.tags if tag.name.startswith(prefix) and BASE_VERSION_RE.match(tag.name)]
    return f"{prefix}{max(taken, default=0) + 1}"


def parent_base_version(repo: git.Repo, *, commit: git.Commit, requested: str | None) -> str | None:
    """The requested parent (which must be a tag), else the newest base tag the commit descends from."""
    bases = sorted((tag for tag in repo.tags if BASE_VERSION_RE.match(tag.name)), key=lambda t: _key(t.name))
    if requested is not None:
        if requested not in {tag.name for tag in bases}:
            raise GitRefError(f"{repo.working_dir}: parent base version {requested} is not a base tag")
        return requested
    for tag in reversed(bases):
        if repo.is_ancestor(tag.commit, commit):
            return tag.name
    return None
