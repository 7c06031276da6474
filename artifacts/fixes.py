"""Detection fixes as commits on `fix/<request-id>`, authored by the engineer who made them.

- False positive: allowlist the sample's sha256. The engine's own hit is the evidence (the
  matching rules go into the commit message); a sample no rule detects is refused.
- False negative: an analyst's rule, compiled with the whole repository (errors, warnings and
  duplicate names refuse it), which must detect the sample and no clean-corpus sample.
- Or a ref an engineer already pushed: `existing_fix` checks it and returns its commit.

Every check runs before the commit is written, so a refused fix leaves nothing behind. If the fix
branch already holds fixes made on `base` (a request may need several), the new commit goes on top
of them; a branch made on another base is started again from `base`. The pipeline gives every build
attempt its own branch, so a later attempt never mistakes an earlier attempt's commit for its own.

What ends up inside a base is public: the allowlist line and the rule file name carry the fix's
opaque reference (`fix_ref`, resolved to a request only by staff) and a neutral reason, never the
request id or anything a customer wrote. The commit message, which stays in the vendor's repository,
names the request in a `Request:` trailer.
"""

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import git
import yara_x
from pydantic import BaseModel

from artifacts.allowlist import make_entry, parse_allowlist
from artifacts.corpus import load_corpus
from artifacts.digest import sha256_bytes
from artifacts.errors import DetectionError, InvalidInput
from artifacts.gitops import branch_exists, check_ref_part, commit_files, open_repo, parse_author, resolve_commit
from artifacts.sigrepo import ALLOWLIST_PATH, FAMILY_RE, read_text, rule_path, rule_sources
from artifacts.yarax import RuleSource, compile_rules, matching_rules, rule_names


class FixResult(BaseModel):
    kind: Literal["false_positive", "false_negative"]
    request_id: str
    fix_ref: str
    branch: str
    commit: str
    parent: str
    path: str
    sample_sha256: str
    matched_rules: list[str]


def fix_false_positive(
    *,
    repo_path: Path,
    sample: Path,
    request_id: str,
    author: str,
    fix_ref: str | None = None,
    base: str = "HEAD",
    branch: str | None = None,
    now: datetime | None = None,
) -> FixResult:
    """Allowlist a wrongly detected sample on `branch` (default `fix/<request_id>`)."""
    now = now or datetime.now(UTC)
    fix_ref = fix_ref or new_fix_ref()
    repo, branch, parent, actor = _prepare(repo_path, request_id, fix_ref, author, base, branch)
    data = _read_sample(sample)
    digest = sha256_bytes(data)
    matched = matching_rules(yara_x.Scanner(compile_rules(rule_sources(parent))), data)
    if not matched:
        raise DetectionError(
            f"{sample.name} (sha256 {digest}): no rule detects it at {parent.hexsha[:12]}; "
            "not a false positive of this base"
        )
    text = read_text(parent, ALLOWLIST_PATH)
    known = parse_allowlist(text, origin=ALLOWLIST_PATH)
    if digest in known:
        raise DetectionError(f"{sample.name}: sha256 {digest} already allowlisted ({known[digest].request_id})")
    entry = make_entry(
        sha256=digest,
        reason=f"false positive of {', '.join(matched)}",
        request_id=fix_ref,
        who=f"{actor.name} <{actor.email}>",
        when=now,
    )
    new_text = text if text.endswith("\n") else text + "\n"
    message = _message(f"fix(fp): allowlist {digest[:12]} for {request_id}", request_id, fix_ref, digest, matched)
    commit = commit_files(
        repo,
        branch=branch,
        parent=parent,
        files={ALLOWLIST_PATH: (new_text + entry.to_line()).encode()},
        message=message,
        author=actor,
        when=now,
    )
    return FixResult(
        kind="false_positive",
        request_id=request_id,
        fix_ref=fix_ref,
        branch=branch,
        commit=commit.hexsha,
        parent=parent.hexsha,
        path=ALLOWLIST_PATH,
        sample_sha256=digest,
        matched_rules=matched,
    )


def fix_false_negative(
    *,
    repo_path: Path,
    rule_text: str,
    sample: Path,
    request_id: str,
    author: str,
    fix_ref: str | None = None,
    family: str = "generic",
    base: str = "HEAD",
    branch: str | None = None,
    now: datetime | None = None,
) -> FixResult:
    """Add an analyst's rule as `rules/<family>/<fix_ref>.yar` on `branch` (default `fix/<request_id>`)."""
    now = now or datetime.now(UTC)
    if not FAMILY_RE.match(family):
        raise InvalidInput(f"family {family!r}: must match {FAMILY_RE.pattern} (it becomes the namespace)")
    fix_ref = fix_ref or new_fix_ref()
    repo, branch, parent, actor = _prepare(repo_path, request_id, fix_ref, author, base, branch)
    data = _read_sample(sample)
    digest = sha256_bytes(data)
    path = rule_path(family, fix_ref)
    new_rules = set(rule_names([RuleSource(namespace=family, path=path, text=rule_text)]))
    if not new_rules:
        raise InvalidInput(f"{path}: declares no rule")
    scanner = yara_x.Scanner(compile_rules(rule_sources(parent, overrides={path: rule_text})))
    matched = matching_rules(scanner, data)
    if not new_rules & set(matched):
        raise DetectionError(f"{path}: {', '.join(sorted(new_rules))} does not detect {sample.name} (sha256 {digest})")
    allowlist = parse_allowlist(read_text(parent, ALLOWLIST_PATH), origin=ALLOWLIST_PATH)
    if digest in allowlist:
        raise DetectionError(
            f"{sample.name}: sha256 {digest} is allowlisted by {allowlist[digest].request_id} in {ALLOWLIST_PATH}; "
            "remove that entry first"
        )
    for clean in load_corpus(parent).clean:
        hits = new_rules & set(matching_rules(scanner, clean.render()))
        if hits:
            raise DetectionError(f"{path}: {', '.join(sorted(hits))} also detects clean corpus sample {clean.name}")
    commit = commit_files(
        repo,
        branch=branch,
        parent=parent,
        files={path: rule_text.encode()},
        message=_message(
            f"fix(fn): detect {digest[:12]} for {request_id}", request_id, fix_ref, digest, sorted(new_rules)
        ),
        author=actor,
        when=now,
    )
    return FixResult(
        kind="false_negative",
        request_id=request_id,
        fix_ref=fix_ref,
        branch=branch,
        commit=commit.hexsha,
        parent=parent.hexsha,
        path=path,
        sample_sha256=digest,
        matched_rules=matched,
    )


def new_fix_ref() -> str:
    """An opaque, unguessable reference for a fix (request ids are sequential, so a hash of one is not)."""
    return f"FX-{secrets.token_hex(5)}"


def existing_fix(*, repo_path: Path, ref: str) -> str:
    """Commit sha of a fix an engineer already pushed (branch, tag or sha)."""
    return resolve_commit(open_repo(repo_path), ref).hexsha


def _prepare(
    repo_path: Path, request_id: str, fix_ref: str, author: str, base: str, branch: str | None
) -> tuple[git.Repo, str, git.Commit, git.Actor]:
    """Validate inputs and find the commit the fix goes on: the fix branch tip if it builds on `base`."""
    check_ref_part(request_id, what="request id")
    check_ref_part(fix_ref, what="fix reference")
    actor = parse_author(author)
    repo = open_repo(repo_path)
    branch = branch or f"fix/{request_id}"
    check_ref_part(branch.removeprefix("fix/"), what="fix branch")
    parent = resolve_commit(repo, base)
    if branch_exists(repo, branch):
        tip = repo.heads[branch].commit
        if tip != parent and repo.is_ancestor(parent, tip):
            parent = tip
    return repo, branch, parent, actor


def _read_sample(sample: Path) -> bytes:
    try:
        return sample.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{sample.name}: cannot read sample ({exc.strerror})") from exc


def _message(subject: str, request_id: str, fix_ref: str, digest: str, rules: list[str]) -> str:
    return (
        f"{subject}\n\nSample-SHA256: {digest}\nRules: {', '.join(rules)}\nRequest: {request_id}\nFix-Ref: {fix_ref}\n"
    )
