"""The Health Check pages: a TAM books one through the form (a weekend refused with the service's words, then a
business day) and confirms it, in a real browser; over HTTP the other refusals (13 days ahead, a second booking
in the year, no reason, a stale page, starting before the day), what a customer's user sees (their own only;
another's is a 404 page), the life so far, the findings by severity and the report's downloads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from release_requests import db
from release_requests.customers.models import Customer
from release_requests.healthchecks import service
from release_requests.people.models import Person
from release_requests.sla.calendar import day_schedule
from release_requests.web import healthchecks_views
from release_requests.web.i18n import catalog
from tests.conftest import User, World
from tests.web.conftest import assert_accessible, sign_in_http

MOSCOW = ZoneInfo("Europe/Moscow")


@dataclass
class Booking:
    customer_id: str
    tam: User
    engineer: User
    user: User  # the customer's
    business_days: list[date]  # at least 14 days ahead in the customer's zone, in the first certificate year
    saturday: date  # a Saturday at least 14 days ahead

    def book(self, world: World, day: date | None = None) -> dict:
        body = {"customer_id": self.customer_id, "date": (day or self.business_days[0]).isoformat()}
        with world.client(self.tam) as c:
            answer = c.post("/api/v1/healthchecks", json={**body, "engineer": str(self.engineer.id)})
        assert answer.status_code == 201, answer.text
        return answer.json()

    def call(self, world: World, path: str, **body) -> dict:
        with world.client(self.tam) as c:
            answer = c.post(f"/api/v1/healthchecks/{path}", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()


def new_booking(world: World) -> Booking:
    """A Moscow customer whose certificate runs from a month ago for two years, its TAM and user, an engineer."""
    today = datetime.now(MOSCOW).date()
    customer_id = world.customer(
        certificate_start=today - timedelta(days=30), certificate_end=today + timedelta(days=700)
    )
    with db.transaction(world.sessions) as s:
        calendar = s.get(Customer, customer_id).calendar()
    ahead = [today + timedelta(days=n) for n in range(15, 60)]
    return Booking(
        customer_id=customer_id,
        tam=world.user("tam", tam_for=[customer_id]),
        engineer=world.user("build_engineer"),
        user=world.user("customer", customer_id),
        business_days=[d for d in ahead if day_schedule(calendar, day=d).closed_reason is None],
        saturday=next(d for d in ahead if d.weekday() == 5),
    )


@pytest.fixture
def booking(world) -> Booking:
    return new_booking(world)


def unescaped(text: str) -> str:
    return text.replace("&#39;", "'").replace("&#34;", '"')


def test_a_tam_books_a_health_check_through_the_form_and_confirms_it(world, sign_in, booking):
    page = sign_in(booking.tam)
    page.get_by_role("link", name="Health Checks").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Health Checks")
    expect(page.get_by_role("heading", name="Book a Health Check")).to_be_visible()
    page.get_by_label("Customer", exact=True).select_option(booking.customer_id)
    page.get_by_label("Date", exact=True).fill(booking.saturday.isoformat())
    page.get_by_label("Engineer", exact=True).select_option(str(booking.engineer.id))
    page.get_by_role("button", name="Book", exact=True).click()

    summary = page.locator(".error-summary")
    expect(summary).to_contain_text(f"date {booking.saturday.isoformat()} is not a business day of customer")
    expect(summary).to_contain_text("Saturday")
    expect(page.locator("#date-error")).to_contain_text("Saturday")
    expect(page.get_by_label("Date", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Customer", exact=True)).to_have_value(booking.customer_id)  # what was chosen is kept
    expect(page.get_by_label("Engineer", exact=True)).to_have_value(str(booking.engineer.id))
    assert_accessible(page)

    day = booking.business_days[0]
    page.get_by_label("Date", exact=True).fill(day.isoformat())
    page.get_by_role("button", name="Book", exact=True).click()
    page.wait_for_url(re.compile(r"/healthchecks/\d+\?notice="))
    expect(page.get_by_role("status")).to_have_text("The Health Check is booked.")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Booked")
    expect(facts).to_contain_text(f"{day.isoformat()} (a day in Europe/Moscow)")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_have_text("The date is confirmed.")
    expect(facts).to_contain_text("Confirmed")
    life = page.locator("ol.timeline li")
    expect(life).to_have_count(2)
    expect(life.first).to_contain_text(f"Booked for {day.isoformat()} with {booking.engineer.name}")
    expect(life.last).to_contain_text("Date agreed with the customer")
    expect(page.get_by_role("button", name="Confirm")).to_have_count(0)  # done: the status no longer allows it
    assert_accessible(page)

    page.get_by_role("link", name="All Health Checks").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=re.compile(r"^HC-\d+$")))
    expect(row.filter(has_text=booking.customer_id.replace("cust-", "Customer "))).to_contain_text("Confirmed")


def test_refusals_are_named_on_the_form(world, booking):
    browser = sign_in_http(world, booking.tam)
    today = datetime.now(MOSCOW).date()
    form = {"customer_id": booking.customer_id, "engineer": str(booking.engineer.id)}
    early = browser.post("/healthchecks", {**form, "date": (today + timedelta(days=13)).isoformat()})
    assert early.status_code == 422
    assert f"is 13 days after today ({today.isoformat()} in Europe/Moscow" in early.text
    assert '<a href="#date">' in early.text and f'value="{(today + timedelta(days=13)).isoformat()}"' in early.text

    empty = browser.post("/healthchecks", {"customer_id": "", "date": "", "engineer": ""})
    assert empty.status_code == 422
    for field, words in (
        ("customer_id", "Choose the customer."),
        ("date", "Choose the day"),
        ("engineer", "Choose the engineer."),
    ):
        assert f'<a href="#{field}">{words}' in empty.text

    first = booking.book(world)
    second = browser.post("/healthchecks", {**form, "date": booking.business_days[-1].isoformat()})
    assert second.status_code == 409
    assert f"a Health Check is already booked for {first['scheduled_on']} ({first['label']})" in unescaped(second.text)

    other = world.customer()
    assert browser.post("/healthchecks", {**form, "customer_id": other, "date": "2030-01-10"}).status_code == 404


def test_a_customer_reads_their_own_and_never_anothers(world, booking):
    mine, theirs = booking.book(world), new_booking(world).book(world)

    customer = sign_in_http(world, booking.user)
    listing = customer.page("/healthchecks").text
    assert f'<a href="/healthchecks/{mine["id"]}">{mine["label"]}</a>' in listing
    assert theirs["label"] not in listing and 'action="/healthchecks"' not in listing  # no booking for customers
    detail = customer.page(f"/healthchecks/{mine['id']}")
    assert detail.status_code == 200 and detail.text.count('method="post"') == 1  # signing out, no action
    for path in (f"/healthchecks/{theirs['id']}", f"/healthchecks/{theirs['id']}/report.pdf", "/healthchecks/HC-x"):
        answer = customer.page(path)
        assert answer.status_code == 404 and "Not found" in answer.text, path
    assert customer.post(f"/healthchecks/{mine['id']}/confirm", {"version": "1"}).status_code == 403


def test_a_stale_page_changes_nothing_and_says_so(world, booking):
    booked = booking.book(world)
    browser = sign_in_http(world, booking.tam)
    page = browser.page(f"/healthchecks/{booked['id']}").text
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    booking.call(world, f"{booked['id']}/confirm")  # someone else confirms meanwhile
    stale = browser.post(f"/healthchecks/{booked['id']}/cancel", {"version": version, "reason": "customer asked"})
    assert stale.status_code == 409
    assert "Someone changed this Health Check meanwhile, so nothing was changed." in stale.text
    assert f"{booked['label']} is at version {int(version) + 1}, you sent {version}; reload it" in stale.text
    assert "customer asked</textarea>" in stale.text  # the reason typed is kept
    with world.client(booking.tam) as c:
        assert c.get(f"/api/v1/healthchecks/{booked['id']}").json()["status"] == "confirmed"


def test_cancel_and_reschedule_need_a_reason_and_the_life_tells_them(world, booking):
    booked = booking.book(world)
    browser = sign_in_http(world, booking.tam)
    path = f"/healthchecks/{booked['id']}"
    no_reason = browser.post(f"{path}/cancel", {"version": "1", "reason": "  "})
    assert no_reason.status_code == 422
    assert '<a href="#cancel_reason">Give the reason for cancelling; the customer reads it.</a>' in no_reason.text
    nothing = browser.post(f"{path}/reschedule", {"version": "1", "date": "", "engineer": "", "reason": "why"})
    assert nothing.status_code == 422 and "Choose a new date, another engineer, or both." in nothing.text

    later = booking.business_days[2]
    moved = browser.post(f"{path}/reschedule", {"version": "1", "date": later.isoformat(), "reason": "<b>audit</b>"})
    assert moved.status_code == 303 and "notice=" in moved.headers["location"]
    saturday = browser.post(f"{path}/reschedule", {"version": "2", "date": booking.saturday.isoformat(), "reason": "x"})
    assert saturday.status_code == 422 and '<a href="#reschedule_date">' in saturday.text
    cancelled = browser.post(f"{path}/cancel", {"version": "2", "reason": "budget\nfrozen"})
    assert cancelled.status_code == 303
    page = browser.page(path).text
    assert f"Rescheduled to {later.isoformat()} with {booking.engineer.name}" in page
    assert "&lt;b&gt;audit&lt;/b&gt;" in page and "budget<br>frozen" in page  # reasons: escaped, lines kept
    timeline = page[page.index('<ol class="timeline">') :].split("</ol>")[0]
    assert timeline.count("<li>") == 3  # booked, rescheduled, cancelled
    assert '<span class="badge hc-cancelled">Cancelled</span>' in page and f'action="{path}/' not in page


def test_starting_before_the_day_is_refused_on_the_page(world, booking):
    booked = booking.book(world)
    booking.call(world, f"{booked['id']}/confirm")
    browser = sign_in_http(world, booking.tam)
    refused = browser.post(f"/healthchecks/{booked['id']}/start", {"version": "2"})
    assert refused.status_code == 409
    assert f"it cannot start before that day (today is {datetime.now(MOSCOW).date().isoformat()}" in refused.text
    assert 'id="start-error"' in refused.text


def test_findings_are_grouped_by_severity_and_the_report_downloads(world, booking):
    booked = booking.book(world)
    booking.call(world, f"{booked['id']}/confirm")
    on_the_day = datetime.combine(date.fromisoformat(booked["scheduled_on"]), time(15), tzinfo=MOSCOW)
    row = {"product": "Endpoint Agent 11", "area": "Scan", "setting": "Archives", "recommendation": "Enable it"}
    with db.transaction(world.sessions) as s:
        service.record_findings(
            s,
            actor=s.get(Person, booking.engineer.id),
            ref=booked["id"],
            rows=[
                {**row, "severity": "high", "found": "Archives <b>skipped</b>"},
                {**row, "severity": "critical", "found": "Updates off"},
                {**row, "severity": "high", "found": "Heuristics low"},
            ],
            version=None,
            now=on_the_day,
        )
    browser = sign_in_http(world, booking.user)
    page = browser.page(f"/healthchecks/{booked['id']}").text
    assert page.index('id="findings-critical">Critical (1)') < page.index('id="findings-high">High (2)')
    assert "Archives &lt;b&gt;skipped&lt;/b&gt;" in page and "Findings recorded: 3" in page
    assert "findings-medium" not in page
    listing = browser.page("/healthchecks").text
    assert '<td class="num">3</td>' in listing[listing.index(f">{booked['label']}</a>") :].split("</tr>")[0]

    pdf = browser.page(f"/healthchecks/{booked['id']}/report.pdf")
    assert pdf.content.startswith(b"%PDF-") and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="{booked["label"]}.pdf"'
    html = browser.page(f"/healthchecks/{booked['id']}/report.html")
    assert html.headers["content-disposition"] == f'attachment; filename="{booked["label"]}.html"'
    assert html.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert "Archives &lt;b&gt;skipped&lt;/b&gt;" in html.text


def test_the_pages_speak_russian(world, booking):
    booked = booking.book(world)
    booking.call(world, f"{booked['id']}/confirm")
    browser = sign_in_http(world, booking.tam)
    russian = {"Accept-Language": "ru", "Accept": "text/html"}
    listing = browser.client.get("/healthchecks", headers=russian)
    assert listing.status_code == 200 and "Назначить Health Check" in listing.text and "Подтверждён" in listing.text
    detail = browser.client.get(f"/healthchecks/{booked['id']}", headers=russian)
    assert detail.status_code == 200 and f"Назначен на {booked['scheduled_on']}, инженер" in detail.text
    assert "Дата согласована с клиентом" in detail.text and "Перенести" in detail.text


def test_every_word_the_views_put_on_the_pages_is_translated():
    words = [
        *healthchecks_views.HEALTHCHECK_STATUSES.values(),
        *healthchecks_views.FINDING_SEVERITIES.values(),
        *healthchecks_views.EVENTS.values(),
        *healthchecks_views.MESSAGES.values(),
    ]
    assert [w for w in words if w not in catalog()] == []
