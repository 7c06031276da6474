"""The request page in a real Chromium: staff triage, respond, change severity and assign through its forms; the
customer answers a question and cancels, reads a customer-safe story, never another customer's request; the
sample is a download for staff and a hash for customers."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from tests.api.conftest import new_request
from tests.web.conftest import email_of, sign_in_http

SAMPLE = b"MZ harmless payroll sample for the request page"
SAMPLE_SHA = hashlib.sha256(SAMPLE).hexdigest()
TRIAGE_BUTTONS = ("Accept", "Reject", "Needs info", "Duplicate")


@pytest.fixture
def team(world):
    customer_id, other_id = world.customer(), world.customer()
    return SimpleNamespace(
        customer_id=customer_id,
        other_id=other_id,
        tam=world.user("tam", tam_for=[customer_id]),
        customer=world.user("customer", customer_id),
        other=world.user("customer", other_id),
        triage=world.user("triage"),
        engineer=world.user("build_engineer"),
    )


def filed(world, team, **fields) -> str:
    return new_request(world, team.tam, team.customer_id, **fields)["id"]


def with_sample(world, team, request_id: str) -> None:
    with world.client(team.tam) as c:
        stored = c.post(f"/api/v1/requests/{request_id}/samples", files={"file": ("payroll.exe", SAMPLE)})
    assert stored.status_code == 201, stored.text


def status_of(page):
    return page.locator("dl.facts .status")


def test_triage_decides_through_the_buttons_and_the_customer_answers_the_question(world, team, sign_in):
    primary, copy, unclear, off_topic = (filed(world, team, title=f"Payroll flagged {n}") for n in range(4))
    staff = sign_in(team.triage)

    staff.goto(f"/requests/{copy}")
    expect(staff.get_by_role("heading", level=1)).to_contain_text(copy)
    for name in TRIAGE_BUTTONS:
        expect(staff.get_by_role("button", name=name, exact=True)).to_be_visible()
    duplicate = staff.get_by_role("form", name="Duplicate")
    duplicate.get_by_label("Request it duplicates").fill(primary)
    duplicate.get_by_role("button", name="Duplicate").click()
    expect(staff.get_by_role("alert")).to_have_text("Give the reason: why is it the same problem?")
    expect(duplicate.get_by_label("Request it duplicates")).to_have_value(primary)  # what was typed is kept
    expect(status_of(staff)).to_have_text("Submitted")
    duplicate.get_by_label("Why it is the same problem").fill("same payroll.exe hash")
    duplicate.get_by_role("button", name="Duplicate").click()
    expect(staff.get_by_role("status")).to_have_text("Decision recorded.")
    expect(status_of(staff)).to_have_text("Duplicate")
    timeline = staff.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text(f"Marked as a duplicate of {primary} by {team.triage.name} (triage)")
    expect(timeline).to_contain_text("same payroll.exe hash")
    expect(staff.get_by_role("button", name="Accept", exact=True)).to_have_count(0)

    staff.goto(f"/requests/{unclear}")
    needs_info = staff.get_by_role("form", name="Needs info")
    needs_info.get_by_label("Question for the customer").fill("Which build of payroll.exe?")
    needs_info.get_by_role("button", name="Needs info").click()
    expect(status_of(staff)).to_have_text("Needs information")
    expect(staff.locator("#pipeline")).to_have_count(0)

    customer = sign_in(team.customer)
    customer.goto(f"/requests/{unclear}")
    answer = customer.get_by_role("form", name="Answer the question")
    expect(answer).to_contain_text("Which build of payroll.exe?")
    answer.get_by_label("Your answer").fill("4.2.1, from the vendor's site")
    answer.get_by_role("button", name="Send answer").click()
    expect(customer.get_by_role("status")).to_have_text("Answer sent.")
    expect(status_of(customer)).to_have_text("Submitted")
    expect(customer.get_by_role("form", name="Answer the question")).to_have_count(0)

    staff.goto(f"/requests/{unclear}")
    expect(staff.get_by_role("region", name="Timeline")).to_contain_text("4.2.1, from the vendor's site")
    accept = staff.get_by_role("form", name="Accept")
    accept.get_by_label("Note").fill("reproducible with base 2026.11.29.1")
    accept.get_by_role("button", name="Accept").click()
    expect(status_of(staff)).to_have_text("Accepted")
    expect(staff.get_by_role("region", name="Timeline")).to_contain_text(
        f"Accepted by {team.triage.name} (triage): reproducible with base 2026.11.29.1"
    )
    pipeline = staff.locator("section#pipeline")
    expect(pipeline).to_have_attribute("hx-get", f"/requests/{unclear}/pipeline")

    staff.goto(f"/requests/{off_topic}")
    reject = staff.get_by_role("form", name="Reject")
    reject.get_by_label("Reason").fill("not a detection problem")
    reject.get_by_role("button", name="Reject").click()
    expect(status_of(staff)).to_have_text("Rejected")
    expect(staff.get_by_role("region", name="Timeline")).to_contain_text("Rejected by")


def test_staff_respond_change_the_severity_and_assign(world, team, sign_in):
    request_id = filed(world, team)
    tam = sign_in(team.tam)
    tam.goto(f"/requests/{request_id}")
    for name in TRIAGE_BUTTONS:  # a TAM does not triage (the table says so)
        expect(tam.get_by_role("button", name=name, exact=True)).to_have_count(0)

    respond = tam.get_by_role("form", name="Respond")
    respond.get_by_label("Answer to the customer").fill("We reproduced it; a fix is on its way.")
    respond.get_by_role("button", name="Respond").click()
    expect(tam.get_by_role("status")).to_have_text("Response sent.")
    timeline = tam.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text(f"{team.tam.name} (tam) responded: We reproduced it; a fix is on its way.")

    severity = tam.get_by_role("form", name="Change severity")
    severity.get_by_label("New severity").select_option(label="2 high")
    severity.get_by_label("Reason for the change").fill("payroll moved to Monday")
    severity.get_by_role("button", name="Change severity").click()
    expect(tam.get_by_role("status")).to_have_text("Severity changed.")
    expect(tam.locator("dl.facts")).to_contain_text("2 high")
    expect(timeline).to_contain_text(f"Severity changed 1 → 2 by {team.tam.name} (tam): payroll moved to Monday")

    assign = tam.get_by_role("form", name="Assign")
    assign.get_by_label("Engineer (e-mail or id)").fill(email_of(world, team.customer))
    assign.get_by_role("button", name="Assign").click()
    expect(tam.get_by_role("alert")).to_contain_text("is not vendor staff")
    assign.get_by_label("Engineer (e-mail or id)").fill(email_of(world, team.engineer))
    assign.get_by_role("button", name="Assign").click()
    expect(tam.get_by_role("status")).to_have_text("Assigned.")
    expect(tam.locator("dl.facts")).to_contain_text(f"{team.engineer.name} (build_engineer)")
    expect(timeline).to_contain_text(f"Assigned to {team.engineer.name} (build_engineer) by {team.tam.name} (tam)")


def test_the_customer_reads_a_safe_page_and_never_another_customers_request(world, team, sign_in):
    request_id = filed(world, team)
    with_sample(world, team, request_id)
    with world.client(team.triage) as c:
        events = c.get(f"/api/v1/requests/{request_id}/timeline").json()
    routing_reason = next(e["reason"] for e in events if e["action"] == "request.routed")
    foreign = new_request(world, team.other, team.other_id)["id"]

    page = sign_in(team.customer)
    page.goto(f"/requests/{request_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(request_id)
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("Passed to the support team")
    text = timeline.inner_text()
    assert "@" not in text, "no mailbox on a customer's timeline"
    assert routing_reason and routing_reason not in page.content()
    for name in (*TRIAGE_BUTTONS, "Respond", "Change severity", "Assign"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("region", name="Samples")).to_contain_text(SAMPLE_SHA)
    expect(page.get_by_role("link", name="Download sample")).to_have_count(0)

    cancel = page.get_by_role("form", name="Cancel the request")
    cancel.get_by_label("Why it is no longer needed").fill("we removed payroll.exe")
    cancel.get_by_role("button", name="Cancel request").click()
    expect(page.get_by_role("status")).to_have_text("Request cancelled.")
    expect(status_of(page)).to_have_text("Cancelled")

    answer = page.goto(f"/requests/{foreign}")
    assert answer.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    assert foreign not in page.content()


def test_staff_download_a_sample_and_customers_only_see_its_hash(world, team):
    request_id = filed(world, team)
    with_sample(world, team, request_id)
    link = f"/requests/{request_id}/samples/{SAMPLE_SHA}"

    staff = sign_in_http(world, team.triage)
    assert f'href="{link}"' in staff.page(f"/requests/{request_id}").text
    download = staff.client.get(link)
    assert download.status_code == 200 and download.content == SAMPLE
    assert download.headers["content-type"] == "application/octet-stream"
    assert f'filename="{SAMPLE_SHA}.sample"' in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"
    assert staff.client.get(f"/requests/{request_id}/samples/{'0' * 64}").status_code == 404

    customer = sign_in_http(world, team.customer)
    page = customer.page(f"/requests/{request_id}").text
    assert SAMPLE_SHA in page and f'href="{link}"' not in page


def test_a_decision_needs_this_sessions_form_token_and_the_current_version(world, team):
    request_id = filed(world, team)
    staff = sign_in_http(world, team.triage)
    reason = {"decision": "reject", "reason": "not ours", "version": "1"}
    forged = staff.post(f"/requests/{request_id}/triage", reason, token="forged")
    assert forged.status_code == 403
    stale = staff.post(f"/requests/{request_id}/triage", {**reason, "version": "7"})
    assert stale.status_code == 409 and "reload it" in stale.text
    assert staff.post(f"/requests/{request_id}/triage", reason).status_code == 303
    other = sign_in_http(world, team.other)
    assert other.page(f"/requests/{request_id}").status_code == 404
    assert other.post(f"/requests/{request_id}/cancel", {"reason": "mine now", "version": "2"}).status_code == 404
