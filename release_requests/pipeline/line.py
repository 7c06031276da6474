"""The release line in the pipeline: which requests' fixes are on it, rebuilding a request when the line
moved under it, and taking one fix out again.

The rules (docs/releases.md, "The release line"):
- A base is built from the line tip plus the request's fix. The fix joins the line (the branch moves,
  by compare-and-swap) when its base is first published, at the first stage.
- A base that does not descend from what a channel serves is never published (releases.publish checks
  it by git ancestry): the request is rebuilt on the current tip instead, and re-verified.
- When the line moves, every request whose candidate is not on it yet is rebuilt at once, so conflicts
  surface early; sign-offs carry over when the fix's own change (its change id) is unchanged.
- A rejected, halted, cancelled or explicitly reverted request takes its change off the line with a
  revert commit naming the request; other fixes stay.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import git
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from artifacts import releaseline
from artifacts.errors import ArtifactError, GitRefError
from artifacts.gitops import open_repo
from release_requests import access
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import Actor, record, record_now
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.errors import Conflict, ServiceUnavailable
from release_requests.people.models import Person
from release_requests.people.service import actor_of
from release_requests.pipeline.models import Build, StageRun
from release_requests.pipeline.queue import PIPELINE, enqueue, latest_build
from release_requests.requests.lifecycle import get_visible, transition
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.states import TRANSITIONS, Status

log = logging.getLogger(__name__)
_FIX_REF_RE = re.compile(r"\bFX-[0-9a-f]{10}\b")
LINE_AUTHOR = git.Actor("release-pipeline", "release-pipeline@vendor.example")


def open_line(repo_path: Path, config: AppConfig) -> tuple[git.Repo, str]:
    """The signature repository and its release branch. The error names the setting, not the server path:
    build errors reach customers."""
    try:
        return open_repo(repo_path), config.stages.release_line.branch
    except GitRefError:
        raise GitRefError("the signature repository is missing or not a git repository (check RR_SIGREPO)") from None


def requests_of_refs(session: Session, refs: list[str] | str) -> list[str]:
    """Request ids behind opaque fix references (given as a list, or found in a message)."""
    wanted = _FIX_REF_RE.findall(refs) if isinstance(refs, str) else [r for r in refs if _FIX_REF_RE.fullmatch(r)]
    if not wanted:
        return []
    rows = session.scalars(select(Build.request_id).where(Build.fix_ref.in_(wanted)).distinct())
    return sorted(rows)


def fix_ref_for(session: Session, *, request_id: str) -> str | None:
    """The request's fix reference, kept across attempts so the line names one fix once."""
    return session.scalar(
        select(Build.fix_ref).where(Build.request_id == request_id, Build.fix_ref.is_not(None)).limit(1)
    )


def on_line(repo: git.Repo, branch: str, build: Build) -> bool:
    """Whether the build's candidate is already part of the release line."""
    if not build.commit:
        return False
    try:
        return releaseline.contains(repo, ancestor=build.commit, descendant=releaseline.line_tip(repo, branch).hexsha)
    except (ValueError, git.GitCommandError):
        return False


def request_rebuild(session: Session, *, request: ReleaseRequest, build: Build, reason: str, decision: str) -> Build:
    """Open the next attempt as a rebase of `build` onto the current line tip; its unpublished stages stop."""
    newest = latest_build(session, request_id=request.id)
    if newest.id != build.id:
        return newest  # already rebuilt (a second refusal of the same stale base, or a re-run)
    for run in session.scalars(select(StageRun).where(StageRun.build_id == build.id, StageRun.status != "published")):
        run.status = "superseded"
    rebuilt = Build(
        request_id=request.id,
        attempt=build.attempt + 1,
        kind=build.kind,
        status="pending",
        fix={"type": "rebase", "from_build": build.id},
        builder=build.builder,
        builder_person_id=build.builder_person_id,
        fix_ref=build.fix_ref,
        rebased_from_id=build.id,
    )
    session.add(rebuilt)
    session.flush()
    event = record_now(
        session,
        actor=PIPELINE,
        action="build.rebase_requested",
        entity_type="build",
        entity_id=str(rebuilt.id),
        request_id=request.id,
        before={"attempt": build.attempt, "version": build.version, "commit": build.commit},
        after={"attempt": rebuilt.attempt, "fix": rebuilt.fix},
        reason=reason,
    )
    if request.status == Status.awaiting_approval:  # nobody can sign a base that is being replaced
        transition(
            session,
            actor=PIPELINE,
            request=request,
            target=Status.building,
            action="request.building",
            details={"attempt": rebuilt.attempt, "rebuild": True},
        )
    enqueue(session, request_id=request.id, step=f"build:{rebuilt.attempt}", decision_id=f"{decision}-{event.seq}")
    return rebuilt


def rebase_stale(session: Session, *, repo: git.Repo, branch: str, reason: str) -> list[str]:
    """Rebuild every request waiting for sign-off whose candidate is neither on the line nor on its tip."""
    tip = releaseline.line_tip(repo, branch).hexsha
    rebuilt = []
    for request, build in _waiting_bases(session, not_on=tip):
        if not on_line(repo, branch, build):
            request_rebuild(session, request=request, build=build, reason=reason, decision=f"line-{tip[:12]}")
            rebuilt.append(request.id)
    return rebuilt


def _waiting_bases(session: Session, *, not_on: str | None = None) -> list[tuple[ReleaseRequest, Build]]:
    """Requests waiting for sign-off with their newest, verified base (locked: a rebuild may follow)."""
    newest = select(Build.request_id, func.max(Build.attempt).label("attempt")).group_by(Build.request_id).subquery()
    query = (
        select(ReleaseRequest, Build)
        .join(Build, Build.request_id == ReleaseRequest.id)
        .join(newest, (newest.c.request_id == Build.request_id) & (newest.c.attempt == Build.attempt))
        .where(
            ReleaseRequest.status == Status.awaiting_approval,
            Build.kind == "base",
            Build.status == "verified",
            Build.line_base.is_not(None),
        )
        # a request locked right now is being published or rebuilt: its own publish re-checks the line, and the
        # reconciler sweeps again (waiting for it here could deadlock on the audit chain's lock)
        .with_for_update(of=ReleaseRequest, key_share=True, skip_locked=True)
    )
    if not_on is not None:
        query = query.where(Build.line_base != not_on)
    return [(request, build) for request, build in session.execute(query)]


def join_line(session: Session, *, repo: git.Repo, branch: str, request: ReleaseRequest, build: Build) -> bool:
    """Move the line to the build's candidate (compare-and-swap). False: the line moved, rebuild instead.

    Git moves before the database commits; a re-run after a crash in between finds the candidate on the
    line without its audit event and completes the record (and the rebuilds of the others) then.
    """
    if on_line(repo, branch, build):
        if build.commit == build.line_base or _recorded(
            session, action="line.advanced", request_id=request.id, tip=build.commit
        ):
            return True  # the line holds it already (and says so)
    else:
        try:
            releaseline.advance_line(repo, branch=branch, new=build.commit, expected=build.line_base)
        except releaseline.LineMoved:
            return False
    record(
        session,
        actor=PIPELINE,
        action="line.advanced",
        entity_type="release_line",
        entity_id=branch,
        request_id=request.id,
        before={"tip": build.line_base},
        after={"tip": build.commit, "fix_ref": build.fix_ref, "change_id": build.change_id},
        reason=f"{request.id}'s fix joined the release line with base {build.version}",
    )
    rebase_stale(session, repo=repo, branch=branch, reason="the release line moved: another fix was released first")
    return True


def _recorded(session: Session, *, action: str, request_id: str, tip: str) -> bool:
    return (
        session.scalar(
            select(AuditEvent.seq)
            .where(
                AuditEvent.action == action, AuditEvent.request_id == request_id, AuditEvent.after["tip"].astext == tip
            )
            .limit(1)
        )
        is not None
    )


def take_off_line(
    session: Session, *, repo: git.Repo, branch: str, request: ReleaseRequest, actor: Actor, reason: str
) -> str | None:
    """Revert the request's change on the line (a commit naming the request); None if it was never on it.

    Raises releaseline.FixDependency when a later fix changed the same file: that one must go first.
    """
    build = _line_build(repo, branch, session, request_id=request.id)
    if build is None:
        return None
    change = releaseline.change_of(repo, base=build.line_base, commit=build.commit)
    tip = releaseline.line_tip(repo, branch).hexsha
    message = (
        f"revert: take {build.fix_ref} off the release line\n\n{reason}\n\n"
        f"Reverts-Request: {request.id}\nReverts-Commit: {build.commit}\nFix-Ref: {build.fix_ref}\n"
    )
    try:
        commit = releaseline.revert_change(
            repo,
            change,
            onto=tip,
            branch=f"revert/{request.id}",
            message=message,
            author=LINE_AUTHOR,
            when=db_now(session),
        )
    except releaseline.FixDependency as exc:
        exc.requests = requests_of_refs(session, exc.refs)  # the ids staff act on
        raise
    if commit == tip:  # nothing left to revert: done before, or done in git by a run that crashed before its record
        commit = _unrecorded_revert(repo, session, build=build, request_id=request.id, until=tip)
        if commit is None:
            return None
        tip = repo.commit(commit).parents[0].hexsha
    else:
        releaseline.advance_line(repo, branch=branch, new=commit, expected=tip)
    record(
        session,
        actor=actor,
        action="line.reverted",
        entity_type="release_line",
        entity_id=branch,
        request_id=request.id,
        before={"tip": tip},
        after={"tip": commit, "fix_ref": build.fix_ref, "reverted_commit": build.commit},
        reason=reason,
    )
    why = f"the release line moved: a fix was reverted ({reason})"
    rebase_stale(session, repo=repo, branch=branch, reason=why)
    _rebuild_containing(
        session, repo=repo, commit=build.commit, reason=why, decision=f"revert-{commit[:12]}", reverted=request.id
    )
    return commit


_FIXES_MADE = select(Build.id).where(
    Build.kind == "base", Build.line_base.is_not(None), Build.commit != Build.line_base
)


def revert_fix(
    session: Session, *, actor: Person, request_id: str, reason: str, repo_path: Path, config: AppConfig
) -> str:
    """A person takes one request's fix off the release line (a revert commit naming the request).

    The request fails with the reason if its state allows it; the next base built from the line, for any
    request, no longer carries the fix. A later fix that changed the same file must be reverted first
    (Conflict naming it). Returns the revert commit.
    """
    access.authorize(actor, "fix.revert")
    request = get_visible(session, actor=actor, request_id=request_id, lock=True)
    try:
        repo, branch = open_line(repo_path, config)
    except GitRefError as exc:  # the server's set-up, not the caller's mistake
        raise ServiceUnavailable(str(exc)) from None
    try:
        commit = take_off_line(session, repo=repo, branch=branch, request=request, actor=actor_of(actor), reason=reason)
    except releaseline.FixDependency as exc:
        raise Conflict(
            f"{exc}; revert {', '.join(exc.requests) or 'the later fix'} first", depends_on=exc.requests
        ) from None
    except releaseline.LineMoved as exc:
        raise Conflict(f"{exc}; another change landed meanwhile: try again") from None
    except ArtifactError as exc:
        raise ServiceUnavailable(f"the signature repository cannot be changed now: {exc}") from None
    if commit is None:
        raise Conflict(f"{request.id} has no fix on the release line (never released, or reverted already)")
    if Status.failed in TRANSITIONS[Status(request.status)]:
        who = actor_of(actor)
        transition(session, actor=who, request=request, target=Status.failed, action="request.failed", reason=reason)
    return commit


def take_off_line_if_any(
    session: Session, *, request: ReleaseRequest, actor: Actor, reason: str, repo_path: Path, config: AppConfig
) -> None:
    """After a rejection or a halt: revert the request's fix if it joined the line.

    Never undoes the decision that called it: a later fix depending on this one keeps it on the line (that
    is recorded), and a git failure (the repository unreachable, the line moving meanwhile) is logged; the
    reconciler takes the fixes of failed requests off the line on its next round either way.
    """
    if not session.scalar(select(_FIXES_MADE.where(Build.request_id == request.id).exists())):
        return  # no fix commit was ever made: nothing can be on the line
    try:
        with session.begin_nested():
            repo, branch = open_line(repo_path, config)
            take_off_line(session, repo=repo, branch=branch, request=request, actor=actor, reason=reason)
    except releaseline.FixDependency as exc:
        record(
            session,
            actor=actor,
            action="line.revert_refused",
            entity_type="release_line",
            entity_id=config.stages.release_line.branch,
            request_id=request.id,
            after={"depends_on": exc.requests},
            reason=str(exc),
        )
    except (ArtifactError, git.GitCommandError, ValueError) as exc:
        log.warning("%s: taking the fix off the release line failed (%s); the reconciler retries", request.id, exc)


def revert_abandoned(session: Session, *, repo_path: Path, config: AppConfig) -> list[str]:
    """Fixes still on the line whose request failed or was cancelled since: take them off (the reconciler).

    A fix that other customers' reports share stays until a person decides (`relreq revert-fix`): their
    customers may already run it, and the request that carried it is not theirs. Each request is handled
    in its own savepoint, so one that cannot be reverted now does not hold the others back.
    """
    handled = select(AuditEvent.seq).where(  # per request, through the audit log's request index
        AuditEvent.request_id == ReleaseRequest.id, AuditEvent.action.in_(("line.reverted", "line.revert_held"))
    )
    shared = select(ReleaseRequest.duplicate_of_id).where(ReleaseRequest.duplicate_of_id.is_not(None))
    requests = session.scalars(
        select(ReleaseRequest)
        .where(
            ReleaseRequest.status.in_((Status.failed, Status.cancelled)),
            _FIXES_MADE.where(Build.request_id == ReleaseRequest.id).exists(),
            ~handled.exists(),
        )
        .order_by(ReleaseRequest.id)
    ).all()
    if not requests:
        return []
    repo, branch = open_line(repo_path, config)
    sharing = set(session.scalars(shared.where(ReleaseRequest.duplicate_of_id.in_([r.id for r in requests]))))
    reverted = []
    for request in requests:
        if _line_build(repo, branch, session, request_id=request.id) is None:
            continue  # never joined the line (failed before its first publish)
        if request.id in sharing:
            record(
                session,
                actor=PIPELINE,
                action="line.revert_held",
                entity_type="release_line",
                entity_id=branch,
                request_id=request.id,
                reason=f"{request.id} is {request.status}, but other reports share its fix: "
                "it stays on the release line until a person reverts it (relreq revert-fix)",
            )
            continue
        try:
            with session.begin_nested():
                commit = take_off_line(
                    session,
                    repo=repo,
                    branch=branch,
                    request=request,
                    actor=PIPELINE,
                    reason=f"{request.id} is {request.status}: its fix leaves the release line",
                )
        except releaseline.FixDependency:
            continue  # recorded when the revert was first refused; a person decides
        except (ArtifactError, git.GitCommandError) as exc:
            log.warning("%s: taking the fix off the release line failed (%s); retrying next round", request.id, exc)
            continue
        if commit is not None:
            reverted.append(request.id)
    return reverted


def _rebuild_containing(
    session: Session, *, repo: git.Repo, commit: str, reason: str, decision: str, reverted: str
) -> None:
    """Requests waiting for sign-off whose base carries a reverted fix get a base without it (not the request
    whose fix it is: that one leaves the pipeline)."""
    for request, build in _waiting_bases(session):
        if request.id != reverted and releaseline.contains(repo, ancestor=commit, descendant=build.commit):
            request_rebuild(session, request=request, build=build, reason=reason, decision=decision)


def housekeeping(session: Session, *, repo_path: Path, config: AppConfig) -> dict:
    """The reconciler's part: fixes of failed or cancelled requests leave the line, and requests whose base
    is behind the line (a trigger lost in a crash) are rebuilt."""
    reverted = revert_abandoned(session, repo_path=repo_path, config=config)
    rebuilt = []
    if _waiting_bases(session):  # nothing waits: no need for the repository (it may not even exist yet)
        repo, branch = open_line(repo_path, config)
        why = "the release line moved since this base was built"
        rebuilt = rebase_stale(session, repo=repo, branch=branch, reason=why)
    return {"line_reverted": reverted, "line_rebuilt": rebuilt}


def _unrecorded_revert(repo: git.Repo, session: Session, *, build: Build, request_id: str, until: str) -> str | None:
    """The line's revert commit of this fix when the audit log does not know it yet (a crash in between)."""
    for commit in repo.iter_commits(f"{build.commit}..{until}"):
        if build.commit in releaseline.trailers(commit.message).get("Reverts-Commit", []):
            recorded = _recorded(session, action="line.reverted", request_id=request_id, tip=commit.hexsha)
            return None if recorded else commit.hexsha
    return None


def _line_build(repo: git.Repo, branch: str, session: Session, *, request_id: str) -> Build | None:
    """The newest build of the request whose candidate is on the line (the one whose change to revert)."""
    builds = session.scalars(
        select(Build)
        .where(Build.request_id == request_id, Build.kind == "base", Build.commit.is_not(None))
        .order_by(Build.attempt.desc())
    )
    return next((b for b in builds if b.line_base not in (None, b.commit) and on_line(repo, branch, b)), None)
