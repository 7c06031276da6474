"""The release line through the real pipeline (git, YARA-X, signing, Postgres, the update client):
no fix is ever lost between requests, conflicts are reported on both, a revert takes out one fix."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import git
import pytest
from sqlalchemy import func, select

from artifacts import releaseline
from artifacts.scan import open_base_bundle, scan_files
from artifacts.signing import signing_key
from release_requests import db
from release_requests.clock import db_now
from release_requests.errors import Conflict, Forbidden
from release_requests.notifications.models import Notification
from release_requests.pipeline import line, service, triggers
from release_requests.pipeline.models import Build
from release_requests.pipeline.schemas import FixInput, SignoffIn
from release_requests.releases import stopping
from release_requests.releases.models import ChannelPointer
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.schemas import Cancel
from release_requests.requests.service import cancel
from release_requests.requests.states import Status
from release_requests.sla.service import status_of
from tests.conftest import Builder
from tests.pipeline.driving import (
    STAGES,
    audit,
    build_dir,
    new_request,
    release,
    run_pending,
    sample_bytes,
    scan_channel,
    served,
    sign,
    stage_status,
    write,
)


def two_fixes_on_the_line(w, staff) -> tuple[str, str, bytes, bytes]:
    """Requests A then B released to `internal`: both fixes on the line, B's base holding A's fix."""
    a_bytes, b_bytes = sample_bytes(w, "payroll"), sample_bytes(w, "ledger")
    a, b = new_request(w, staff, a_bytes), new_request(w, staff, b_bytes)
    release(w, staff, a, ["internal"])
    release(w, staff, b, ["internal"])
    return a, b, a_bytes, b_bytes


def test_two_requests_released_one_after_the_other_keep_both_fixes(world_pipeline, staff, tmp_path):
    w = world_pipeline
    a_bytes, b_bytes = sample_bytes(w, "payroll"), sample_bytes(w, "ledger")
    a = new_request(w, staff, a_bytes)
    release(w, staff, a, STAGES)
    b = new_request(w, staff, b_bytes)
    release(w, staff, b, STAGES)

    files = [write(tmp_path, "a.exe", a_bytes), write(tmp_path, "b.exe", b_bytes)]
    assert scan_channel(w, "global", files, tmp_path / "client") == ["allowlisted", "allowlisted"]
    repo = git.Repo(w.settings.signature_repo)
    tip = repo.heads[w.config.stages.release_line.branch].commit.hexsha
    assert served(w, "global").manifest["commit"] == tip  # the line is what global serves
    with db.transaction(w.seg.sessions) as s:
        assert {r.status for r in s.scalars(select(ReleaseRequest).where(ReleaseRequest.id.in_([a, b])))} == {
            Status.released
        }


def test_requests_in_flight_at_once_rebuild_on_the_new_tip_and_keep_their_signoffs(world_pipeline, staff, tmp_path):
    w = world_pipeline
    a_bytes, b_bytes = sample_bytes(w, "payroll"), sample_bytes(w, "ledger")
    a, b = new_request(w, staff, a_bytes), new_request(w, staff, b_bytes)
    run_pending(w, a)
    run_pending(w, b)
    sign(w, staff, b, "internal")  # B is signed on its first base, before A moves the line
    sign(w, staff, a, "internal")
    run_pending(w, a)
    assert stage_status(w, a)["internal"] == "published"

    outcome = run_pending(w, b)  # B's first publish is superseded; the rebuild verifies and publishes itself
    assert any("superseded" in r for r in outcome) and any("verified" in r for r in outcome), outcome
    assert stage_status(w, b)["internal"] == "published"
    rebased = next(after for action, after, _ in audit(w, b) if action == "build.rebased")
    assert rebased["signoffs_carried"] is True
    assert served(w, "internal").version == rebased["version"]  # internal serves B's rebuilt base: A + B
    files = [write(tmp_path, "a.exe", a_bytes), write(tmp_path, "b.exe", b_bytes)]
    key = signing_key(data_dir=w.settings.data_dir)
    bundle = open_base_bundle(Path(build_dir(w, b)), public_key=key.public_key())
    assert [r.verdict for r in scan_files(bundle, files)] == ["allowlisted", "allowlisted"]


FN_RULE = """rule Novel_Shared_Marker {
  meta:
    author = "Jane Analyst"
    description = "Novel threat reported by two customers"
    severity = "high"
    created = "2026-11-30"
    reference = "internal"
  strings:
    $m = "NOVEL-SHARED-MARKER-51d8"
  condition:
    $m
}
"""


def test_two_fixes_defining_the_same_rule_conflict_and_both_requests_say_so(world_pipeline, staff):
    w = world_pipeline
    a = new_request(w, staff, b"NOVEL-SHARED-MARKER-51d8 first host", kind="false_negative")
    b = new_request(w, staff, b"NOVEL-SHARED-MARKER-51d8 second host", kind="false_negative")
    for rid in (a, b):
        with db.transaction(w.seg.sessions) as s:
            service.provide_fix(
                s, actor=staff["analyst"], request_id=rid, data=FixInput(type="rule", rule_text=FN_RULE)
            )
        outcome = run_pending(w, rid)
        assert any("verified" in r for r in outcome), outcome
    release(w, staff, a, ["internal"])
    outcome = run_pending(w, b)
    assert any("failed" in r for r in outcome), outcome
    with db.transaction(w.seg.sessions) as s:
        failed = service.latest_build(s, request_id=b)
        assert failed.status == "failed" and "rule trojan.Novel_Shared_Marker" not in failed.error
        assert "Novel_Shared_Marker is already defined" in failed.error
        assert s.get(ReleaseRequest, b).status == Status.failed
    assert any(action == "line.conflict" and after["with_request"] == b for action, after, _ in audit(w, a))
    assert any(action == "line.conflict" and after["with_request"] == a for action, after, _ in audit(w, b))


def test_reverting_the_first_fix_keeps_the_second(world_pipeline, staff, tmp_path):
    w = world_pipeline
    a, b, a_bytes, b_bytes = two_fixes_on_the_line(w, staff)
    with db.transaction(w.seg.sessions) as s, pytest.raises(Forbidden, match="role 'build_engineer'"):
        line.revert_fix(
            s,
            actor=staff["build_engineer"],
            request_id=a,
            reason="x",
            repo_path=w.settings.signature_repo,
            config=w.config,
        )
    with db.transaction(w.seg.sessions) as s:
        commit = line.revert_fix(
            s,
            actor=staff["release_manager"],
            request_id=a,
            reason="customer withdrew the report",
            repo_path=w.settings.signature_repo,
            config=w.config,
        )
        assert s.get(ReleaseRequest, a).status == Status.failed
    repo = git.Repo(w.settings.signature_repo)
    assert f"Reverts-Request: {a}" in repo.commit(commit).message
    with db.transaction(w.seg.sessions) as s, pytest.raises(Conflict, match="no fix on the release line"):
        line.revert_fix(
            s,
            actor=staff["release_manager"],
            request_id=a,
            reason="again",
            repo_path=w.settings.signature_repo,
            config=w.config,
        )
    run_pending(w, b)  # B carried A's fix: it is rebuilt without it and goes on
    release(w, staff, b, ["canary", "customer", "global"])
    files = [write(tmp_path, "a.exe", a_bytes), write(tmp_path, "b.exe", b_bytes)]
    assert scan_channel(w, "global", files, tmp_path / "client") == ["detected", "allowlisted"]
    assert any(action == "line.reverted" for action, _, _ in audit(w, a))


def test_a_stale_channel_expectation_replans_the_stage(world_pipeline, staff):
    w = world_pipeline
    a, b, _, _ = two_fixes_on_the_line(w, staff)  # both canary stages opened expecting "nothing"
    release(w, staff, a, ["canary"])
    release(w, staff, b, ["canary"])  # canary moved under B, but B's base holds A's: re-planned, not rebuilt
    actions = [action for action, _, _ in audit(w, b)]
    assert "stage.replanned" in actions and "line.publish_refused" not in actions
    assert served(w, "canary").manifest["commit"] == git.Repo(w.settings.signature_repo).heads.main.commit.hexsha


def test_a_later_stage_never_replaces_a_base_holding_more_fixes(world_pipeline, staff):
    w = world_pipeline
    a, b, _, _ = two_fixes_on_the_line(w, staff)
    release(w, staff, b, ["canary"])  # B (holding A's fix too) reaches canary first
    sign(w, staff, a, "canary")
    outcome = run_pending(w, a)  # A's own base lacks B's fix: refused, rebuilt as the line's tip, published
    assert any("refused, rebuilding" in r for r in outcome), outcome
    assert "line.publish_refused" in [action for action, _, _ in audit(w, a)]
    assert stage_status(w, a)["canary"] == "published"
    assert served(w, "canary").manifest["commit"] == git.Repo(w.settings.signature_repo).heads.main.commit.hexsha


def test_a_storm_of_reports_on_one_sample_shares_one_build(world_pipeline, staff):
    w = world_pipeline
    content = sample_bytes(w, "storm")
    primary = new_request(w, staff, content)
    sha = hashlib.sha256(content).hexdigest()
    others = []
    with db.transaction(w.seg.sessions) as s:
        b = Builder(s, w.config)
        for _ in range(4):
            customer = b.customer()
            tam = b.person("tam", tam_for=[customer.id])
            for _ in range(5):
                others.append(b.request(by=tam, customer=customer, severity=2, sample_sha256=[sha]).id)
    run_pending(w, primary)
    with db.transaction(w.seg.sessions) as s:
        rows = s.scalars(select(ReleaseRequest).where(ReleaseRequest.id.in_(others))).all()
        advisory = s.get(ReleaseRequest, primary).advisory_id
        assert advisory and {(r.status, r.duplicate_of_id, r.advisory_id) for r in rows} == {
            (Status.duplicate, primary, advisory)
        }
        assert s.scalar(select(func.count()).select_from(Build)) == 1
        # the join is the qualified answer: every report's own SLA clock is met, and every customer was told
        for request in rows:
            sla = status_of(s, request=request, config=w.config, now=db_now(s))
            assert sla.state == "met", (request.id, sla)
        told = s.scalars(
            select(Notification.request_id).where(
                Notification.request_id.in_(others), Notification.event == "request.triaged"
            )
        ).all()
        assert set(told) == set(others)


def test_a_rejected_or_cancelled_request_takes_its_fix_off_the_line(world_pipeline, staff):
    w = world_pipeline
    a, b, a_bytes, b_bytes = two_fixes_on_the_line(w, staff)
    with db.transaction(w.seg.sessions) as s:
        decision = SignoffIn(stage="canary", decision="reject", reason="breaks the payroll run")
        service.sign(
            s,
            actor=staff["release_manager"],
            request_id=a,
            data=decision,
            config=w.config,
            repo_path=w.settings.signature_repo,
        )
    assert any(action == "line.reverted" for action, _, _ in audit(w, a))
    with db.transaction(w.seg.sessions) as s:
        duty = Builder(s, w.config).person("duty_manager")
        cancel(s, actor=duty, request_id=b, data=Cancel(reason="the customer found the cause elsewhere"))
    with db.transaction(w.seg.sessions) as s:  # the reconciler's sweep
        kept = line.housekeeping(s, repo_path=w.settings.signature_repo, config=w.config)
    assert kept["line_reverted"] == [b]
    tip = git.Repo(w.settings.signature_repo).heads.main.commit
    allowlisted = (tip.tree / "allowlist/sha256.tsv").data_stream.read().decode()
    for content in (a_bytes, b_bytes):
        assert hashlib.sha256(content).hexdigest() not in allowlisted


def test_a_base_carrying_a_reverted_fix_is_never_published(world_pipeline, staff):
    """Even when nothing rebuilt it in time (the revert found it locked), publishing re-checks the line."""
    w = world_pipeline
    a, b, _, _ = two_fixes_on_the_line(w, staff)
    repo = git.Repo(w.settings.signature_repo)
    with db.transaction(w.seg.sessions) as s:
        fix = service.latest_build(s, request_id=a)
        change = releaseline.change_of(repo, base=fix.line_base, commit=fix.commit)
    tip = repo.heads.main.commit.hexsha
    revert = releaseline.revert_change(
        repo,
        change,
        onto=tip,
        branch="revert/by-hand",
        message=f"revert by hand\n\nReverts-Commit: {fix.commit}\n",
        author=line.LINE_AUTHOR,
        when=datetime.now(UTC),
    )
    releaseline.advance_line(repo, branch="main", new=revert, expected=tip)
    sign(w, staff, b, "canary")
    outcome = run_pending(w, b)
    assert any("carries a fix taken off the release line" in r for r in outcome), outcome
    assert stage_status(w, b)["canary"] == "published"  # ...by the rebuilt base, which lacks A's fix
    assert releaseline.contains(repo, ancestor=revert, descendant=served(w, "canary").manifest["commit"])


RULE_TEMPLATE = """rule {name} {{
  meta:
    author = "Jane Analyst"
    description = "Novel threat"
    severity = "high"
    created = "2026-11-30"
    reference = "internal"
  strings:
    $m = "{marker}"
  condition:
    $m
}}
"""


def test_a_new_attempt_builds_its_own_fix_never_the_rejected_one(world_pipeline, staff):
    w = world_pipeline
    rid = new_request(w, staff, b"NOVEL-ATTEMPT-MARKER-77 on one host", kind="false_negative")
    first = RULE_TEMPLATE.format(name="Novel_Attempt_Broad", marker="NOVEL-ATTEMPT")
    second = RULE_TEMPLATE.format(name="Novel_Attempt_Narrow", marker="NOVEL-ATTEMPT-MARKER-77")
    for rule in (first, second):
        with db.transaction(w.seg.sessions) as s:
            service.provide_fix(s, actor=staff["analyst"], request_id=rid, data=FixInput(type="rule", rule_text=rule))
        assert any("verified" in r for r in run_pending(w, rid))
        if rule is first:
            with db.transaction(w.seg.sessions) as s:
                decision = SignoffIn(stage="internal", decision="reject", reason="rule too broad")
                service.sign(
                    s,
                    actor=staff["build_engineer"],
                    request_id=rid,
                    data=decision,
                    config=w.config,
                    repo_path=w.settings.signature_repo,
                )
    with db.transaction(w.seg.sessions) as s:
        build = service.latest_build(s, request_id=rid)
    shipped = git.Repo(w.settings.signature_repo).commit(build.commit)
    rules = [b.data_stream.read().decode() for b in shipped.tree.traverse() if b.path.endswith(f"{build.fix_ref}.yar")]
    assert build.attempt == 2 and [r.strip() for r in rules] == [second.strip()]


def test_reverting_a_request_waiting_for_signoff_does_not_bring_its_fix_back(world_pipeline, staff, tmp_path):
    w = world_pipeline
    a_bytes, b_bytes = sample_bytes(w, "payroll"), sample_bytes(w, "ledger")
    a = new_request(w, staff, a_bytes)
    run_pending(w, a)
    release(w, staff, a, ["internal"])
    with db.transaction(w.seg.sessions) as s:
        line.revert_fix(
            s,
            actor=staff["release_manager"],
            request_id=a,
            reason="wrong file",
            repo_path=w.settings.signature_repo,
            config=w.config,
        )
    assert run_pending(w, a) == []  # nothing rebuilds the reverted request
    b = new_request(w, staff, b_bytes)
    run_pending(w, b)
    release(w, staff, b, STAGES)
    files = [write(tmp_path, "a.exe", a_bytes), write(tmp_path, "b.exe", b_bytes)]
    assert scan_channel(w, "global", files, tmp_path / "client") == ["detected", "allowlisted"]


def test_a_stage_waits_for_a_halted_channel_and_publishes_once_it_is_resumed(world_pipeline, staff):
    w = world_pipeline
    a, b = new_request(w, staff, sample_bytes(w, "payroll")), new_request(w, staff, sample_bytes(w, "ledger"))
    run_pending(w, a)
    release(w, staff, a, ["internal", "canary"])
    run_pending(w, b)
    release(w, staff, b, ["internal"])
    with db.transaction(w.seg.sessions) as s:  # telemetry stopped canary (as stopping.halt leaves it)
        pointer = s.get(ChannelPointer, "canary")
        pointer.halted_at, pointer.halted_reason, pointer.halted_version = db_now(s), "spike", pointer.version
    sign(w, staff, b, "canary")
    assert any("waits: canary halted" in r for r in run_pending(w, b))
    assert stage_status(w, b)["canary"] == "awaiting"
    with db.transaction(w.seg.sessions) as s:
        assert s.get(ReleaseRequest, b).status == Status.awaiting_approval
        assert triggers.stages_ready_by_time(s, config=w.config) == []  # nobody asks while it is halted
        stopping.resume(s, person=staff["release_manager"], channel="canary", reason="false alarm, checked")
    with db.transaction(w.seg.sessions) as s:
        assert triggers.stages_ready_by_time(s, config=w.config) == [f"{b}:canary"]
    run_pending(w, b)
    assert stage_status(w, b)["canary"] == "published"
