"""The whole story in a real Chromium, as the people would live it: a customer's security engineer files a false
positive with its sample through the portal; the TAM sees it in the queue; triage accepts it; the pipeline
builds and verifies it (the segments Prefect runs); engineers sign off every stage through the console's
buttons; the customer then sees the release that fixes it. Every page on the way passes an axe-core scan
with no serious or critical violation.

With `RR_SCREENSHOTS=DIR` (`make screenshots`) each page is also saved as DIR/<page>.png for docs/web.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import expect

from release_requests import db
from release_requests.audit.service import Actor
from release_requests.routing.service import set_fallback
from tests.conftest import Builder
from tests.pipeline.driving import SIGNERS, STAGES, run_pending, sample_bytes, stage_status
from tests.web.conftest import assert_accessible, signed_in_by_form

REQUEST_ID = r"RR-\d{4}-\d{6,}"
SCREENSHOTS = Path(os.environ["RR_SCREENSHOTS"]) if os.environ.get("RR_SCREENSHOTS") else None


def look(page, name: str) -> None:
    """Scan the page as it is now (axe-core, offline); keep a screenshot when asked for."""
    page.wait_for_load_state("networkidle")
    assert_accessible(page)
    if SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_a_customer_files_and_sees_the_release_that_fixes_it(console, signed_in, browser):
    w, staff = console.w, console.staff
    with db.transaction(w.seg.sessions) as s:
        b = Builder(s, w.config)
        customer = b.customer()
        engineer = b.person("customer", customer_id=customer.id)
        tam = b.person("tam", tam_for=[customer.id])
        set_fallback(s, actor=Actor.system("tests"), person=b.person("duty_manager"))

    # the customer signs in through the real form and files with a sample the starter rules detect
    portal, login = signed_in_by_form(console, browser, engineer, scan=look)
    portal.get_by_role("link", name="New request").first.click()
    look(portal, "new-request")
    portal.get_by_label("Kind", exact=True).select_option(label="False positive")
    portal.get_by_role("radio", name=re.compile(r"^1 critical")).check()
    portal.get_by_label("Title", exact=True).fill("Payroll <b>tool</b> quarantined on every desktop")
    portal.get_by_label("Description", exact=True).fill("Since this morning's update.\n*Accounting* is stopped.")
    portal.get_by_label("Product", exact=True).fill("endpoint-agent")
    portal.get_by_label("Product version", exact=True).fill("11.2.0")
    portal.get_by_label("Detection name", exact=True).fill("Trojan.Win32.Dropper")
    content = sample_bytes(w, "whole-story payroll")
    portal.get_by_label("Sample files", exact=True).set_input_files(
        [{"name": "payroll.exe", "mimeType": "application/octet-stream", "buffer": content}]
    )
    portal.get_by_role("button", name="Submit request").click()
    portal.wait_for_url(re.compile(rf"/requests/{REQUEST_ID}/filed$"))
    rid = re.search(REQUEST_ID, portal.get_by_role("heading", level=1).inner_text()).group(0)
    expect(portal.locator(".due time")).to_have_text(re.compile(r"\d\d:\d\d MSK$"))  # the customer's zone, named
    look(portal, "request-filed")
    portal.goto("/my/requests")
    expect(portal.get_by_role("heading", level=1)).to_have_text("My requests")
    expect(portal.get_by_role("row").filter(has_text=rid)).to_contain_text("On track")
    look(portal, "my-requests")

    # the TAM finds it in the queue, the customer's words shown as text, not markup
    queue = signed_in(tam)
    queue.goto("/")
    expect(queue.get_by_role("heading", level=1)).to_have_text("Queue")
    queue.get_by_role("link", name=rid).click()
    expect(queue.get_by_role("heading", level=1)).to_contain_text(rid)
    expect(queue.get_by_role("heading", level=1)).to_contain_text("Payroll <b>tool</b> quarantined")
    look(queue, "request-staff")
    queue.goto("/queue")
    look(queue, "queue")

    # triage accepts through the button: the build starts (the dispatcher's segments run here)
    triage = signed_in(staff["triage"])
    triage.goto(f"/requests/{rid}")
    triage.get_by_role("button", name="Accept", exact=True).click()
    expect(triage.get_by_role("status")).to_be_visible()
    run_pending(w, rid)

    # each stage is signed by the people its rule names, each through their own console
    pages = {}
    for stage in STAGES:
        for role in SIGNERS[stage]:
            page = pages.get(role) or signed_in(staff[role])
            pages[role] = page
            page.goto(f"/requests/{rid}")
            button = page.get_by_role("button", name=f"Sign off {stage}")
            expect(button).to_be_enabled()
            if stage == "internal":
                look(page, "pipeline-panel")
            button.click()
            expect(page.get_by_role("status")).to_have_text("Your sign-off is recorded.")
        run_pending(w, rid)
        assert stage_status(w, rid)[stage] == "published", stage

    # the TAM follows the pipeline of their customer's request, but the diff (every customer's fixes) is not theirs
    queue.goto(f"/requests/{rid}")
    expect(queue.locator("#pipeline")).to_contain_text("Release stages and sign-offs")
    expect(queue.locator("#pipeline")).to_contain_text("The diff is shown to the engineers who review and sign")

    staff_page = pages["release_manager"]
    staff_page.goto("/channels")
    look(staff_page, "channels")
    staff_page.goto("/duty")
    expect(staff_page.get_by_role("heading", level=1)).to_have_text("Duty")
    look(staff_page, "duty")

    # the customer sees where the fix went, and a timeline with no staff mailboxes or routing reasons
    portal.goto(f"/requests/{rid}")
    release_panel = portal.locator("#pipeline")
    expect(release_panel).to_contain_text(f"customer-{customer.id}")
    expect(release_panel).not_to_contain_text("internal")
    timeline = portal.locator("ol.timeline").inner_text()
    assert "@" not in timeline and "duty" not in timeline.lower()
    assert "internal" not in timeline, timeline  # the vendor's own machines are not the customer's business
    look(portal, "request-customer")
    portal.goto("/preferences")
    look(portal, "preferences")
    login.close()
