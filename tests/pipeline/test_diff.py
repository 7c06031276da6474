"""The diff of what is signed, through the real pipeline: a base against what the channel it goes to next serves
(or served before it, or the release line when it serves nothing), with allowlist entries, rules and commits."""

from __future__ import annotations

import hashlib

import git
import httpx
import pytest

from release_requests import db
from release_requests.errors import Conflict, Forbidden
from release_requests.pipeline import diff, service
from release_requests.pipeline.schemas import FixInput
from tests.conftest import Builder
from tests.pipeline.conftest import FP_RULE
from tests.pipeline.driving import STAGES, api_for, new_request, release, run_pending, sample_bytes, token_for

FN_RULE = """rule Diff_Panel_Marker {
  meta:
    author = "Jane Analyst"
    description = "A marker only the reporting customer's sample carries"
    severity = "high"
    created = "2026-11-30"
    reference = "internal"
  strings:
    $m = "DIFF-PANEL-MARKER-7f3a"
  condition:
    $m
}
"""


def base_diff(w, person, request_id: str) -> diff.BaseDiff:
    with db.transaction(w.seg.sessions) as s:
        return diff.base_diff(
            s, actor=person, request_id=request_id, config=w.config, repo_path=w.settings.signature_repo
        )


def bearer(w, person) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(w, person)}"}


def build_of(w, request_id: str):
    with db.transaction(w.seg.sessions) as s:
        return service.latest_build(s, request_id=request_id)


def test_a_base_is_compared_with_what_the_next_channel_serves(world_pipeline, staff):
    w, reader = world_pipeline, staff["release_manager"]
    a_bytes = sample_bytes(w, "payroll")
    a = new_request(w, staff, a_bytes)
    run_pending(w, a)
    first = build_of(w, a)

    # internal serves nothing yet: the base against the release line it was built on — exactly the fix
    shown = base_diff(w, reader, a)
    assert (shown.stage, shown.basis) == ("internal", "line_base")
    assert (shown.from_.channel, shown.from_.version, shown.from_.commit) == ("internal", None, first.line_base)
    assert (shown.to.version, shown.to.commit) == (first.version, first.commit)
    [entry] = shown.allowlist_added
    assert entry.sha256 == hashlib.sha256(a_bytes).hexdigest()
    assert entry.note == f"false positive of {FP_RULE}" and entry.reference == first.fix_ref
    assert entry.request_id == a
    assert shown.allowlist_removed == [] and shown.rules_added == shown.rules_removed == shown.rules_changed == []
    [commit] = shown.commits
    assert commit.sha == first.commit and a in commit.subject and not shown.commits_truncated

    release(w, staff, a, STAGES)
    a_version = build_of(w, a).version
    shown = base_diff(w, reader, a)  # every stage published: the release just made, against global's nothing
    assert (shown.stage, shown.basis, shown.from_.version) == ("global", "line_base", None)

    # B goes to internal, which serves A's base: only B's entry and B's commit are new
    b_bytes = sample_bytes(w, "ledger")
    b = new_request(w, staff, b_bytes)
    with pytest.raises(Conflict, match="no built base yet"):  # accepted, its build not run yet
        base_diff(w, reader, b)
    run_pending(w, b)
    shown = base_diff(w, reader, b)
    assert (shown.stage, shown.basis, shown.from_.channel, shown.from_.version) == (
        "internal",
        "channel",
        "internal",
        a_version,
    )
    assert [e.sha256 for e in shown.allowlist_added] == [hashlib.sha256(b_bytes).hexdigest()]
    assert [c.sha for c in shown.commits] == [build_of(w, b).commit]

    # B released everywhere: global's previous release was A's base
    release(w, staff, b, STAGES)
    shown = base_diff(w, reader, b)
    assert (shown.stage, shown.basis, shown.from_.channel, shown.from_.version) == (
        "global",
        "previous_release",
        "global",
        a_version,
    )
    assert [e.request_id for e in shown.allowlist_added] == [b]

    # only the engineers who review and sign read it: a customer and a TAM (who sees their own customers only,
    # while a diff names every customer's fixes) are refused by the table
    with db.transaction(w.seg.sessions) as s:
        builder = Builder(s, w.config)
        other = builder.customer()
        outsider_tam = builder.person("tam", tam_for=[other.id])
        customer_user = builder.person("customer", customer_id=other.id)
    with pytest.raises(Forbidden, match="role 'customer' may not read what a build changes"):
        base_diff(w, customer_user, b)
    with pytest.raises(Forbidden, match="role 'tam' may not read what a build changes"):
        base_diff(w, outsider_tam, b)
    with api_for(w) as url, httpx.Client(base_url=url, timeout=30) as http:  # the same over HTTP
        answer = http.get(f"/api/v1/requests/{b}/pipeline/diff", headers=bearer(w, reader))
        refused = http.get(f"/api/v1/requests/{b}/pipeline/diff", headers=bearer(w, customer_user))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["from"]["version"] == a_version and body["allowlist_added"][0]["request_id"] == b
    assert refused.status_code == 403 and b not in refused.text


def test_a_rule_fix_lists_its_rule_and_file(world_pipeline, staff):
    w = world_pipeline
    rid = new_request(w, staff, b"DIFF-PANEL-MARKER-7f3a reporting host", kind="false_negative")
    with db.transaction(w.seg.sessions) as s:
        service.provide_fix(s, actor=staff["analyst"], request_id=rid, data=FixInput(type="rule", rule_text=FN_RULE))
    run_pending(w, rid)
    build = build_of(w, rid)
    shown = base_diff(w, staff["build_engineer"], rid)
    assert [(r.name, r.file, r.request_id) for r in shown.rules_added] == [
        ("generic.Diff_Panel_Marker", f"rules/generic/{build.fix_ref}.yar", rid)
    ]
    assert shown.allowlist_added == [] and shown.rules_removed == [] and shown.rules_changed == []
    assert [c.sha for c in shown.commits] == [build.commit]
    assert git.Repo(w.settings.signature_repo).commit(build.commit).parents[0].hexsha == shown.from_.commit
