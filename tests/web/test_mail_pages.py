"""The support mailbox in the console: in a real browser a duty manager finds a held message from an unknown
sender, reads it and files it for a customer, landing on the new request; over HTTP who may not read or assign
it, what a stranger wrote shown escaped, the original only as a sandboxed download, and the form's refusals
with what was typed kept."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from release_requests import db
from release_requests.mail.models import InboundMail
from release_requests.web import mail_views
from release_requests.web.i18n import catalog
from release_requests.workflows.mail_intake import ingest
from tests.conftest import User
from tests.mail.conftest import message
from tests.web.conftest import assert_accessible, sign_in_http


@dataclass
class Held:
    id: int
    subject: str
    raw: bytes


@pytest.fixture
def held(world, config, settings):
    """`held(**message)` → a message from an unknown sender, run through the real intake: held."""

    def _held(**fields) -> Held:
        fields.setdefault("subject", f"Payroll app flagged {uuid.uuid4().hex[:8]}")
        raw = message(sender=f"Stranger <stranger-{uuid.uuid4().hex[:8]}@elsewhere.example>", **fields)
        with db.transaction(world.sessions) as s:
            result = ingest(
                s, raw=raw, source="pipe", received_at=None, config=config, samples_dir=settings.samples_dir
            )
        assert result.outcome == "held" and result.reason.startswith("unknown sender"), result
        return Held(result.mail_id, fields["subject"], raw)

    return _held


@pytest.fixture
def duty_manager(world) -> User:
    return world.user("duty_manager", timezone="Asia/Dubai")


def stored(world, mail_id: int) -> InboundMail:
    with db.transaction(world.sessions) as s:
        mail = s.get(InboundMail, mail_id)
        s.expunge(mail)
        return mail


def test_a_duty_manager_files_a_held_message_for_a_customer(world, sign_in, held, duty_manager):
    customer_id = world.customer()
    mail = held(text="Our payroll calculator is detected since this morning.\n\n  -- SOC, on call")
    page = sign_in(duty_manager)
    mailbox = page.get_by_role("link", name=re.compile(r"^Mailbox"))
    expect(mailbox.locator(".badge")).to_have_text(re.compile(r"^\d+$"))  # the held messages, counted
    mailbox.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mailbox")
    expect(page.get_by_label("Outcome")).to_have_value("held")  # the to-do list first
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=mail.subject))
    expect(row).to_contain_text("Held")
    expect(row).to_contain_text("unknown sender: not a contact of any customer")
    expect(row.locator("time")).to_contain_text("UTC+04")  # in the duty manager's own zone, named
    assert_accessible(page)

    row.get_by_role("link", name=mail.subject).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Mail {mail.id}: {mail.subject}")
    expect(page.locator("pre.mail-text")).to_contain_text("detected since this morning.\n\n  -- SOC, on call")
    expect(page.get_by_role("link", name="Download the original (.eml)")).to_have_attribute(
        "href", f"/mail/{mail.id}/raw"
    )
    page.get_by_label("Add to a request").check()
    page.get_by_label("Request", exact=True).fill("not an id")
    page.get_by_role("button", name="Assign").click()
    expect(page.locator("#request_id-error")).to_contain_text("Give the id of the request, such as RR-")
    expect(page.get_by_label("Request", exact=True)).to_have_value("not an id")  # kept
    expect(page.get_by_label("Request", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Add to a request")).to_be_checked()
    assert_accessible(page)

    page.get_by_label("File as a new request for a customer").check()
    page.get_by_label("Customer", exact=True).select_option(customer_id)
    page.get_by_role("button", name="Assign").click()
    page.wait_for_url(re.compile(r"/requests/RR-\d{4}-\d+\?notice="))
    expect(page.get_by_role("status")).to_have_text("The message is filed as a new request.")
    request_id = page.url.split("/requests/")[1].split("?")[0]
    assigned = stored(world, mail.id)
    assert (assigned.outcome, assigned.request_id, assigned.customer_id) == ("assigned", request_id, customer_id)
    assert assigned.assigned_by_id == duty_manager.id


def test_who_may_not_read_the_mailbox_gets_the_refusal_page(world, held):
    mail = held()
    customer_id = world.customer()
    for user in (world.user("customer", customer_id), world.user("build_engineer"), world.user("tam")):
        browser = sign_in_http(world, user)
        for path in ("/mail", f"/mail/{mail.id}", f"/mail/{mail.id}/raw"):
            answer = browser.page(path)
            assert answer.status_code == 403 and "Not allowed" in answer.text, (user.role, path)
            assert mail.subject not in answer.text
        assert 'href="/mail"' not in browser.page("/").text  # no Mailbox in their navigation
        refused = browser.post(f"/mail/{mail.id}/assign", {"target": "customer", "customer_id": customer_id})
        assert refused.status_code == 403, user.role
    assert stored(world, mail.id).outcome == "held"


def test_triage_reads_the_mailbox_but_cannot_assign(world, held):
    mail = held()
    triage = sign_in_http(world, world.user("triage"))
    page = triage.page(f"/mail/{mail.id}")
    assert page.status_code == 200 and mail.subject in page.text
    assert f'action="/mail/{mail.id}/assign"' not in page.text  # no form…
    refused = triage.post(f"/mail/{mail.id}/assign", {"target": "customer", "customer_id": world.customer()})
    assert refused.status_code == 403 and "may not file or attach a held e-mail message" in refused.text  # …nor a way
    empty = triage.post(f"/mail/{mail.id}/assign", {})  # refused for who they are, not for what the form lacks
    assert empty.status_code == 403 and "may not file or attach a held e-mail message" in empty.text
    assert stored(world, mail.id).outcome == "held"


def test_what_a_stranger_wrote_is_shown_escaped(world, held, duty_manager):
    mail = held(
        subject="<script>alert('subject')</script> flagged",
        text="<b>bold</b> <img src=x onerror=alert(1)>",
        html="<p>the <script>alert('html')</script> part</p>",
    )
    browser = sign_in_http(world, duty_manager)
    listing = browser.page("/mail?outcome=all").text
    assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt; flagged" in listing
    detail = browser.page(f"/mail/{mail.id}").text
    assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt; flagged" in detail
    assert "&lt;b&gt;bold&lt;/b&gt; &lt;img src=x onerror=alert(1)&gt;" in detail
    for page in (listing, detail):
        assert "<script>alert" not in page and "<b>bold" not in page and "<img src=x" not in page
    assert "alert(&#39;html&#39;)" not in detail  # the HTML part is never shown, not even escaped


def test_the_original_downloads_with_the_apis_safe_headers(world, held, duty_manager):
    mail = held(html="<p>hello</p>")
    answer = sign_in_http(world, duty_manager).page(f"/mail/{mail.id}/raw")
    assert answer.status_code == 200 and answer.content == mail.raw
    assert answer.headers["content-type"] == "message/rfc822"
    assert answer.headers["content-disposition"] == f'attachment; filename="mail-{mail.id}.eml"'
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "sandbox"
    with world.client(duty_manager) as api:
        same = api.get(f"/api/v1/intake/mail/{mail.id}/raw")
    for header in ("content-type", "content-disposition", "x-content-type-options", "content-security-policy"):
        assert same.headers[header] == answer.headers[header], header


def test_the_form_refuses_with_the_field_named_and_adds_to_a_request(world, held, duty_manager):
    mail = held()
    customer_id = world.customer()
    browser = sign_in_http(world, duty_manager)
    path = f"/mail/{mail.id}/assign"

    forged = browser.post(path, {"target": "customer", "customer_id": customer_id}, token="forged")
    assert forged.status_code == 403 and "This form has expired" in forged.text
    nothing = browser.post(path, {"customer_id": customer_id})
    assert nothing.status_code == 422 and "Choose what to do with the message." in nothing.text
    no_customer = browser.post(path, {"target": "customer", "customer_id": "", "request_id": "RR-2026-000001"})
    assert no_customer.status_code == 422 and '<a href="#customer_id">Choose the customer.</a>' in no_customer.text
    assert 'value="RR-2026-000001"' in no_customer.text  # what was typed is kept, the unused field too
    unknown = browser.post(path, {"target": "customer", "customer_id": "cust-nobody"})
    assert unknown.status_code == 422 and "unknown customer &#39;cust-nobody&#39;" in unknown.text
    missing = browser.post(path, {"target": "request", "request_id": "rr-2000-999999"})
    assert (
        missing.status_code == 404 and '<a href="#request_id">There is no request RR-2000-999999.</a>' in missing.text
    )
    assert 'value="rr-2000-999999"' in missing.text and 'id="target-request" value="request" checked' in missing.text
    assert stored(world, mail.id).outcome == "held"

    with world.client(world.user("customer", customer_id)) as api:
        filed = api.post(
            "/api/v1/requests", json={"kind": "false_positive", "severity": 3, "channel": "portal", "title": "Payroll"}
        )
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]
    added = browser.post(path, {"target": "request", "request_id": f" {request_id.lower()} "})
    assert added.status_code == 303
    assert added.headers["location"].startswith(f"/requests/{request_id}?notice=The%20message%20is%20added")
    assert stored(world, mail.id).outcome == "assigned"
    again = browser.post(path, {"target": "customer", "customer_id": customer_id})
    assert again.status_code == 409 and f"mail {mail.id} is already assigned" in again.text
    assert 'action="/mail/' not in again.text.split("</header>")[1]  # nothing left to assign


def test_the_pages_speak_russian(world, held, duty_manager):
    mail = held()
    browser = sign_in_http(world, duty_manager)
    russian = {"Accept-Language": "ru", "Accept": "text/html"}
    listing = browser.client.get("/mail", headers=russian).text
    assert "<h1>Почтовый ящик</h1>" in listing and "Отложено" in listing
    detail = browser.client.get(f"/mail/{mail.id}", headers=russian).text
    assert "Оформить как новый запрос клиента" in detail and "Скачать оригинал (.eml)" in detail


def test_every_word_the_views_put_on_the_pages_is_translated():
    words = [*mail_views.OUTCOME_LABELS.values(), *mail_views.MESSAGES.values()]
    assert [w for w in words if w not in catalog()] == []
