"""The pipeline panel in a real browser over the real pipeline (git signature repository, YARA-X builds, signed
releases, channels): staff see the build, its verification, the diff of what they sign and every stage with its
rule and signers, and sign through the button unless separation of duties bars them; customers see the release
that fixes their request — only on their own channels — and download their own private hotfix."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

from playwright.sync_api import expect
from sqlalchemy import select

from release_requests import db
from release_requests.pipeline import line, segments, service
from release_requests.pipeline.models import SignoffEvent
from release_requests.pipeline.schemas import FixInput, SignoffIn
from release_requests.releases import stopping
from release_requests.releases.models import Release
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.schemas import Accept, SubmitRequest
from release_requests.settings import Settings
from release_requests.workflows import intake
from tests.conftest import REPO, Builder, make_product_repo
from tests.pipeline.conftest import PipelineWorld
from tests.pipeline.driving import STAGES, new_request, release, run_pending, sample_bytes
from tests.web.conftest import assert_accessible, over_http

RULE = """rule Console_Panel_Marker {
  meta:
    author = "Jane Analyst"
    description = "A marker only the reporting customer's sample carries"
    severity = "high"
    created = "2026-11-30"
    reference = "internal"
  strings:
    $m = "CONSOLE-PANEL-MARKER-41c2"
  condition:
    $m
}
"""


def customer_user(console, request_id: str):
    with db.transaction(console.w.seg.sessions) as s:
        customer_id = s.get(ReleaseRequest, request_id).customer_id
        return Builder(s, console.w.config).person("customer", customer_id=customer_id), customer_id


def panel(page, request_id: str):
    page.goto(f"/requests/{request_id}/pipeline")
    return page


def stage(page, name: str):
    return page.locator("section.stage").filter(has=page.get_by_role("heading", level=4, name=re.compile(f"^{name}")))


def test_staff_see_each_stage_s_rule_and_whoever_built_it_may_not_sign(console, signed_in):
    w, staff = console.w, console.staff
    rid = new_request(w, staff, b"CONSOLE-PANEL-MARKER-41c2 reporting host", kind="false_negative")
    with db.transaction(w.seg.sessions) as s:
        service.provide_fix(s, actor=staff["analyst"], request_id=rid, data=FixInput(type="rule", rule_text=RULE))
    run_pending(w, rid)

    builder = panel(signed_in(staff["analyst"]), rid)
    assert builder.get_by_role("heading", level=2).inner_text() == "Pipeline"
    expect(stage(builder, "internal")).to_contain_text("requires 1 sign-off from role build_engineer")
    expect(stage(builder, "canary")).to_contain_text(
        "requires 1 sign-off from role build_engineer; requires 1 sign-off from role release_manager"
    )
    expect(stage(builder, "global")).to_contain_text("requires 2 sign-offs from role release_manager")
    button = builder.get_by_role("button", name="Sign off internal")
    expect(button).to_be_disabled()
    expect(button).to_have_accessible_description(re.compile("separation of duties bars whoever built it"))
    # what is signed: the analyst's rule, in its file, with the commit; the build's checks
    added = builder.locator("tr.diff-added")
    expect(added).to_have_count(1)
    expect(added).to_contain_text("generic.Console_Panel_Marker")
    expect(builder.locator("ol.commits li")).to_contain_text("fix(fn): detect")
    expect(builder.get_by_role("row", name=re.compile("ClamAV cross-check"))).to_be_visible()
    expect(builder.get_by_role("row", name=re.compile("Signature and file hashes"))).to_contain_text("passed")

    engineer = panel(signed_in(staff["build_engineer"]), rid)
    may_sign = stage(engineer, "internal").locator("p", has_text="May still sign:")
    expect(may_sign).to_contain_text(staff["build_engineer"].name)
    expect(may_sign).not_to_contain_text(staff["analyst"].name)  # barred: he built it
    engineer.get_by_role("button", name="Sign off internal").click()
    engineer.wait_for_url(re.compile(rf"/requests/{rid}\?notice="))
    signers = panel(engineer, rid).locator("section.stage").first.locator("table.signoffs tbody tr")
    expect(signers).to_have_count(1)
    expect(signers).to_contain_text(staff["build_engineer"].name)
    expect(signers).to_contain_text("build_engineer")
    expect(signers).to_contain_text("web")
    expect(stage(engineer, "internal")).to_contain_text("Signed off.")
    with db.transaction(w.seg.sessions) as s:
        vias = s.scalars(select(SignoffEvent.via).where(SignoffEvent.request_id == rid)).all()
    assert vias == ["web"]

    # signed already: the button says so, and the approval can be revoked
    again = engineer.get_by_role("button", name="Sign off internal")
    expect(again).to_be_disabled()
    expect(again).to_have_accessible_description("You have already signed off this stage.")
    engineer.get_by_role("button", name="Revoke my approval of internal").click()
    engineer.wait_for_url(re.compile(rf"/requests/{rid}\?notice="))
    expect(panel(engineer, rid).locator("table.signoffs tbody tr")).to_have_count(2)
    expect(stage(engineer, "internal")).to_contain_text("revoked their approval")
    expect(stage(engineer, "internal")).to_contain_text("Still needed: 1 × build_engineer.")
    expect(engineer.get_by_role("button", name="Sign off internal")).to_be_enabled()


def test_staff_sign_what_the_diff_shows_and_the_customer_then_sees_where_the_fix_went(console, signed_in):
    w, staff = console.w, console.staff
    content = sample_bytes(w, "console-payroll")
    rid = new_request(w, staff, content)
    run_pending(w, rid)
    with db.transaction(w.seg.sessions) as s:
        build = service.latest_build(s, request_id=rid)

    # the diff: the request's allowlist entry added, with its note, its request and the one commit
    page = panel(signed_in(staff["release_manager"]), rid)
    entry = page.locator("tr.diff-added", has_text=hashlib.sha256(content).hexdigest())
    expect(entry).to_contain_text("false positive of trojan.Trojan_Win32_Dropper_001")
    expect(entry.get_by_role("link", name=rid)).to_be_visible()
    expect(page.locator("ol.commits li")).to_have_count(1)
    expect(page.locator("ol.commits li")).to_contain_text(build.commit[:12])
    button = page.get_by_role("button", name="Sign off internal")  # the internal stage is an engineer's to sign
    expect(button).to_have_accessible_description("The rule of this stage does not name your role (release_manager).")

    # inside the request page (loaded by htmx): no serious or critical accessibility violation
    page.goto(f"/requests/{rid}")
    expect(page.get_by_role("heading", level=3, name="Release stages and sign-offs")).to_be_visible()
    assert_accessible(page, within="#pipeline")

    # a decision without this session's form token, or a rejection without a reason, changes nothing
    me = over_http(console, staff["build_engineer"])
    refused = me.post(f"/requests/{rid}/signoffs", {"stage": "internal", "decision": "approve"}, token="forged")
    assert refused.status_code == 403
    no_reason = me.post(f"/requests/{rid}/signoffs", {"stage": "internal", "decision": "reject"})
    assert no_reason.status_code == 422 and "written reason" in no_reason.text
    # every sign-off form names the build it shows; a page loaded before a rebuild or a rebase signs nothing
    expect(panel(page, rid).locator('form input[name="commit"]').first).to_have_value(build.commit)
    stale = me.post(f"/requests/{rid}/signoffs", {"stage": "internal", "decision": "approve", "commit": "0" * 40})
    assert stale.status_code == 409, stale.text
    assert "changed since you looked" in stale.text and build.commit[:12] in stale.text
    with db.transaction(w.seg.sessions) as s:
        assert s.scalars(select(SignoffEvent).where(SignoffEvent.request_id == rid)).all() == []

    # released everywhere: the customer reads the version, their channels and when, and nothing of the staff
    release(w, staff, rid, STAGES)
    with db.transaction(w.seg.sessions) as s:
        build = service.latest_build(s, request_id=rid)
    user, customer_id = customer_user(console, rid)
    page = panel(signed_in(user), rid)
    assert page.get_by_role("heading", level=2).inner_text() == "The release that fixes it"
    rows = page.locator("table.releases tbody tr")
    expect(rows).to_have_count(3)  # canary, their own customer channel, global — never `internal`
    for channel in ("canary", f"customer-{customer_id}", "global"):
        row = rows.filter(has_text=channel)
        expect(row).to_contain_text(build.version)
        expect(row.locator("time")).to_contain_text(re.compile(r"\d{4} \d{2}:\d{2} MSK"))  # the company's zone
    text = page.locator("body").inner_text()
    for staff_only in ("internal", "Sign off", build.commit[:12], staff["build_engineer"].name, content.hex()[:12]):
        assert staff_only not in text, staff_only

    # another customer: the panel is a 404 like any request that is not theirs
    with db.transaction(w.seg.sessions) as s:
        stranger = Builder(s, w.config).person("customer", customer_id=Builder(s, w.config).customer().id)
    assert over_http(console, stranger).page(f"/requests/{rid}/pipeline").status_code == 404


def test_a_channel_reverted_to_a_base_without_the_fix_is_shown_withdrawn_not_kept(console, signed_in):
    w, staff = console.w, console.staff
    first = new_request(w, staff, sample_bytes(w, "console-first"))
    release(w, staff, first, ["internal", "canary"])
    second = new_request(w, staff, sample_bytes(w, "console-second"))
    release(w, staff, second, ["internal", "canary"])  # built on the line that holds the first fix
    with db.transaction(w.seg.sessions) as s:
        old, new = (service.latest_build(s, request_id=r).version for r in (first, second))

    # canary moved on to a base that descends from the first fix: its customer is told it is kept
    first_user, _ = customer_user(console, first)
    row = panel(signed_in(first_user), first).locator("table.releases tbody tr", has_text="canary")
    expect(row).to_contain_text("since replaced by a newer release that keeps the fix")

    # canary reverted to the first base, which lacks the second fix: withdrawn, never "keeps the fix"
    with db.transaction(w.seg.sessions) as s:
        stopping.revert_as(
            s, person=staff["release_manager"], channel="canary", to_version=old, reason="storm", config=w.config
        )
    second_user, _ = customer_user(console, second)
    row = panel(signed_in(second_user), second).locator("table.releases tbody tr", has_text="canary")
    expect(row).to_contain_text(new)
    expect(row).to_contain_text("withdrawn from this channel")
    expect(row).not_to_contain_text("keeps the fix")

    # the fix taken off the release line: a base built after the revert commit descends from the fix's commit,
    # yet does not carry it (the line's own trailers say so); the other fix stays
    with db.transaction(w.seg.sessions) as s:
        revert = line.revert_fix(
            s,
            actor=staff["release_manager"],
            request_id=second,
            reason="breaks payroll",
            repo_path=w.settings.signature_repo,
            config=w.config,
        )
        after = Release(version="after-revert", kind="base", manifest={"commit": revert})
        for request_id, version, kept in ((second, new, False), (first, old, True)):
            fixed = s.get(Release, version)
            found = service.carries_fix(
                fixed=fixed, request_id=request_id, served=after, repo_path=w.settings.signature_repo
            )
            assert found is kept, request_id


def test_a_customer_downloads_their_own_private_hotfix(console, signed_in, tmp_path):
    w = console.w
    spec, commits = make_product_repo(tmp_path)
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    (config_dir / "products.toml").write_text(
        f'[products.endpoint-agent]\nrepo = "{spec.repo}"\nbuild = {json.dumps(spec.build)}\ntimeout_seconds = 30\n'
        'output = "dist/*.bin"\n'
    )
    seg = segments.Segment(w.seg.sessions, Settings(**{**w.settings.model_dump(), "config_dir": config_dir}), w.config)
    with db.transaction(seg.sessions) as s:
        b = Builder(s, w.config)
        customer = b.customer(licensed_products=[{"product": "endpoint-agent", "versions": ">=11,<12"}])
        duty = b.person("duty_manager")
        data = SubmitRequest(
            customer_id=customer.id,
            kind="private_hotfix",
            severity=1,
            channel="tam",
            title="Crash on scan",
            product="endpoint-agent",
            product_version="11.2.0",
        )
        rid = intake.submit(s, actor=duty, data=data, config=w.config).id
        intake.triage(
            s, actor=console.staff["triage"], request_id=rid, decision=Accept(decision="accept"), config=w.config
        )
        service.provide_fix(
            s,
            actor=console.staff["analyst"],
            request_id=rid,
            data=FixInput(type="commits", commits=[commits["clean_fix"]]),
        )
        user = b.person("customer", customer_id=customer.id)
        stranger = b.person("customer", customer_id=b.customer().id)
    w_hotfix = PipelineWorld(seg.settings, seg, w.url, w.config)
    signers = {"internal": ["build_engineer"], "customer": ["build_engineer", "release_manager"]}
    for stage_name, roles in signers.items():
        run_pending(w_hotfix, rid)
        for role in roles:
            with db.transaction(seg.sessions) as s:
                service.sign(
                    s,
                    actor=console.staff[role],
                    request_id=rid,
                    data=SignoffIn(stage=stage_name),
                    config=w.config,
                    repo_path=w.settings.signature_repo,
                )
        run_pending(w_hotfix, rid)

    page = panel(signed_in(user), rid)
    rows = page.locator("table.releases tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(f"hotfix-{customer.id}-endpoint-agent")
    link = page.get_by_role("link", name=re.compile(r"agent\.bin$"))
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "agent.bin"
    assert b"fixed_crash" in download.value.path().read_bytes()

    href = link.get_attribute("href")
    assert over_http(console, stranger).page(href).status_code == 404
    assert over_http(console, user).page(href.replace(f"hotfix-{customer.id}", "hotfix-other")).status_code == 404
