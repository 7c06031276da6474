"""The Reports page, its downloads, today's critical digest, the TAM's notes and the report settings: in a real
browser for the main paths (a TAM reads a customer's quarter and downloads the PDF; a customer's user reads
only their own company; the settings form), over HTTP for the rest. The figures are the report's own: the page
must show what `/api/v1/reports/customer` answers for the same period."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import pytest
from playwright.sync_api import expect

from release_requests.web import reports_views
from release_requests.web.i18n import catalog
from release_requests.web.rendering import CONTENT_SECURITY_POLICY
from tests.conftest import User, World
from tests.reports.conftest import Story, story  # noqa: F401  (the report's requests: met, breached, paused, …)
from tests.web.conftest import assert_accessible, sign_in_http


def api_report(world: World, user: User, **params) -> dict:
    with world.client(user) as c:
        response = c.get("/api/v1/reports/customer", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def shown(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:.1f}{unit}"


def csp_complaints(page) -> list[str]:
    """What the browser refused under the page's Content-Security-Policy (filled as the page runs)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    return problems


def test_a_tam_reads_a_customers_quarter_and_downloads_the_pdf(story: Story, world, sign_in):  # noqa: F811
    page = sign_in(story.tam)
    refused = csp_complaints(page)
    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reports")
    page.get_by_label("Customer", exact=True).select_option(story.customer_id)
    quarter = page.get_by_label("Quarter", exact=True).input_value()
    assert re.fullmatch(r"\d{4}Q[1-4]", quarter)
    assert page.get_by_label("Quarter", exact=True).locator("option").count() == 9  # this one and the 8 before
    page.get_by_role("button", name="Show report").click()
    page.wait_for_url(re.compile(rf"/reports\?customer_id={story.customer_id}&by=quarter&quarter={quarter}&"))

    report = api_report(world, story.tam, customer_id=story.customer_id, quarter=quarter)
    assert report["requests_total"] >= 7 and report["sla_breached"] >= 3  # the story's requests are in it
    expect(page.locator("#figure-requests")).to_have_text(str(report["requests_total"]))
    expect(page.locator("#figure-attainment")).to_have_text(shown(report["sla_attainment_pct"], " %"))
    expect(page.locator("#figure-p50")).to_have_text(shown(report["first_response_p50_minutes"], " min"))
    expect(page.locator("#figure-p90")).to_have_text(shown(report["first_response_p90_minutes"], " min"))
    expect(page.locator("#figure-breaches")).to_have_text(str(len(report["breaches"])))
    for s in report["sla_by_severity"]:
        cells = page.locator(f"#sla-{s['severity']} td").all_inner_texts()
        assert cells[2:5] == [str(s["met"]), str(s["breached"]), str(s["running"])], (s, cells)
    breaches = page.get_by_role("table", name="SLA breaches")
    for b in report["breaches"]:
        row = breaches.get_by_role("row").filter(has=page.get_by_role("link", name=b["request_id"]))
        expect(row).to_contain_text(b["reason"][:20])  # the English reason, as the report gives it
    expect(page.locator(f"a[href='/requests/{story.ids['B']}']").first).to_be_visible()

    charts = page.locator("svg.chart[role=img]")
    expect(charts).to_have_count(2)
    assert charts.first.get_attribute("style") is None
    assert "SLA attainment per week" in charts.first.get_attribute("aria-label")
    page.get_by_text("The chart's figures: SLA attainment per week").click()  # the chart's text alternative
    expect(page.get_by_role("columnheader", name="Week of")).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("link", name="PDF", exact=True).click()
    assert download.value.suggested_filename == f"report-{story.customer_id}-{quarter}.pdf"
    with open(download.value.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
    assert_accessible(page)
    assert not refused, refused


def test_a_customers_user_reads_only_their_company(story: Story, world, sign_in):  # noqa: F811
    page = sign_in(story.customer_user)
    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_label("Customer", exact=True)).to_have_count(0)  # their own company, nobody else to choose
    expect(page.get_by_role("heading", level=2).first).to_contain_text(re.compile(r"^Customer \w+ · \d{4}Q[1-4]$"))
    digest = page.get_by_role("table", name="Today's critical digest")
    expect(digest.get_by_role("link", name=story.ids["A"])).to_be_visible()
    expect(digest.get_by_role("link", name=story.ids["Y"])).to_have_count(0)  # another customer's request
    assert_accessible(page)

    page.goto(f"/reports?customer_id={story.other_customer_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_text(story.other_customer_id)).to_have_count(0)
    answer = page.request.get(f"/reports/customer.csv?customer_id={story.other_customer_id}&quarter=2026Q4")
    assert answer.status == 404 and "Not found" in answer.text()


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("quarter=2026Q5", "quarter", "quarter '2026Q5' is not a quarter"),
        ("by=dates&from=2026-10-10&to=2026-10-01", "to", "'to' 2026-10-01 is before 'from' 2026-10-10"),
        ("by=dates&from=2026-10-10&to=", "to", "'to' is missing"),
        ("by=dates&from=10/01/2026&to=2026-10-20", "from", "From: write the date as YYYY-MM-DD"),
    ],
)
def test_a_bad_period_is_named_on_the_page(story: Story, world, query, field, words):  # noqa: F811
    browser = sign_in_http(world, story.tam)
    page = browser.page(f"/reports?customer_id={story.customer_id}&{query}")
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert f'<a href="#{field}">' in page.text and words in page.text.replace("&#39;", "'")
    assert f'id="{field}-error"' in page.text and 'aria-invalid="true"' in page.text
    assert 'id="figure-requests"' not in page.text  # no report for a period that is not one


def test_the_downloads_are_attachments_and_the_html_has_its_own_policy(story: Story, world):  # noqa: F811
    browser = sign_in_http(world, story.customer_user)
    period = f"customer_id={story.customer_id}&by=dates&from={story.start}&to={story.end}"
    page = browser.page(f"/reports?{period}")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert not re.search(r"<svg[^>]*\sstyle=", page.text) and 'style="' not in page.text
    query = f"customer_id={story.customer_id}&amp;from={story.start}&amp;to={story.end}"
    assert f'href="/reports/customer.csv?{query}"' in page.text

    plain = f"customer_id={story.customer_id}&from={story.start}&to={story.end}"
    csv = browser.page(f"/reports/customer.csv?{plain}")
    name = f"report-{story.customer_id}-{story.start}_{story.end}"
    assert csv.headers["content-disposition"] == f'attachment; filename="{name}.csv"'
    assert csv.text.startswith("record,request_id,") and story.ids["G"] in csv.text
    html = browser.page(f"/reports/customer.html?{plain}")
    assert html.headers["content-disposition"] == f'attachment; filename="{name}.html"'
    assert html.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert "<svg" in html.text and "&lt;b&gt;payroll&lt;/b&gt;" not in html.text  # titles are not in the report
    bad = browser.page(f"/reports/customer.pdf?customer_id={story.customer_id}&quarter=2026Q5")
    assert bad.status_code == 422 and "is not a quarter" in bad.text.replace("&#39;", "'")


def test_the_digest_lists_the_critical_requests_with_their_next_step(story: Story, world):  # noqa: F811
    page = sign_in_http(world, story.tam).page("/reports").text
    digest = page[page.index('id="digest-heading"') :]
    with world.client(story.tam) as c:
        rows = {r["request_id"]: r for r in c.get("/api/v1/reports/daily").json()["rows"]}
    g = rows[story.ids["G"]]
    row = digest[digest.index(f'<a href="/requests/{story.ids["G"]}">') :].split("</tr>")[0]
    assert "1 critical" in row and "Request G: &lt;b&gt;payroll&lt;/b&gt; flagged" in row  # the title, escaped
    assert f"<td>{g['next_step']}</td>" in row and "Breached" in row and g["customer_name"] in row
    assert story.ids["Y"] not in digest and story.ids["E"] not in digest  # another customer's; severity 3


def test_the_pages_speak_russian(story: Story, world):  # noqa: F811
    browser = sign_in_http(world, story.tam)
    russian = {"Accept-Language": "ru", "Accept": "text/html"}
    page = browser.client.get(f"/reports?customer_id={story.customer_id}", headers=russian)
    assert page.status_code == 200 and "Главные показатели" in page.text
    assert "ответ через 1 ч 30 мин после срока" in page.text  # B's breach, told in Russian
    assert "Соблюдение SLA по неделям" in page.text and "1 критическая" in page.text  # the chart, the severity
    settings = browser.client.get(f"/reports/preferences?customer_id={story.customer_id}", headers=russian)
    assert settings.status_code == 200 and "Моя ежедневная сводка" in settings.text


@dataclass
class Company:
    customer_id: str
    tam: User
    user: User
    triage: User


@pytest.fixture
def company(world) -> Company:
    customer_id = world.customer()
    return Company(
        customer_id,
        world.user("tam", tam_for=[customer_id]),
        world.user("customer", customer_id),
        world.user("triage"),
    )


def test_a_tam_adds_a_note_that_keeps_its_paragraphs_and_shows_escaped(world, company):
    browser = sign_in_http(world, company.tam)
    form = {"customer_id": company.customer_id, "by": "quarter", "quarter": "2026Q4", "from": "", "to": ""}
    empty = browser.post("/reports/notes", {**form, "body": "   "})
    assert empty.status_code == 422 and "Write the note before adding it." in empty.text
    assert 'id="note-error"' in empty.text

    body = "Good quarter.\nOne <script>alert(1)</script> breach.\n\nNext: a Health Check."
    added = browser.post("/reports/notes", {**form, "body": body})
    assert added.status_code == 303
    assert added.headers["location"].startswith(f"/reports?customer_id={company.customer_id}&quarter=2026Q4&notice=")
    page = browser.page(added.headers["location"])
    assert '<p class="notice" role="status">The note is added.</p>' in page.text
    assert "<p>Good quarter.<br>One &lt;script&gt;alert(1)&lt;/script&gt; breach.</p><p>Next: a Health Check.</p>" in (
        page.text
    )
    assert company.tam.name in page.text
    with world.client(company.user) as c:
        notes = c.get("/api/v1/reports/notes", params={"customer_id": company.customer_id}).json()
    assert [(n["period_start"], n["period_end"], n["body"]) for n in notes] == [("2026-10-01", "2026-12-31", body)]

    customer = sign_in_http(world, company.user)
    assert 'action="/reports/notes"' not in customer.page("/reports?quarter=2026Q4").text
    refused = customer.post("/reports/notes", {**form, "body": "mine"})
    assert refused.status_code == 403


def test_the_report_settings_are_saved_through_the_form(world, company, sign_in):
    page = sign_in(company.tam)
    page.goto(f"/reports?customer_id={company.customer_id}")
    page.get_by_role("link", name="Report settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Report settings")
    page.get_by_label("Regular report").select_option(label="Monthly")
    page.get_by_label("Attachment").select_option(label="CSV")
    page.get_by_label("Notes from the TAM").uncheck()
    page.get_by_label("Recipients, one e-mail address per line").fill("ciso@example.com\nsoc@example.com")
    page.get_by_label("Language of the reports").select_option(label="Русский")
    page.get_by_label("Daily digest time").fill("07:30")
    page.get_by_label("Also post it to Slack").check()
    assert_accessible(page)
    page.get_by_role("button", name="Save report settings").click()
    expect(page.get_by_role("status")).to_have_text("Report settings saved.")
    expect(page.get_by_label("Regular report")).to_have_value("monthly")
    expect(page.get_by_label("Notes from the TAM")).not_to_be_checked()

    page.get_by_label("My digest time").fill("08:15")
    page.get_by_role("button", name="Save my digest").click()
    expect(page.get_by_role("status")).to_have_text("Your digest setting is saved.")
    expect(page.get_by_label("My digest time")).to_have_value("08:15")

    with world.client(company.tam) as c:
        prefs = c.get(f"/api/v1/customers/{company.customer_id}/report-preferences").json()
        mine = c.get("/api/v1/reports/digest/subscription").json()
    assert (prefs["frequency"], prefs["format"], prefs["language"], prefs["digest_at"]) == (
        "monthly",
        "csv",
        "ru",
        "07:30",
    )
    assert prefs["recipients"] == ["ciso@example.com", "soc@example.com"] and prefs["digest_slack"] is True
    assert "notes" not in prefs["sections"] and len(prefs["sections"]) == 6
    assert (mine["enabled"], mine["send_at"]) == (True, "08:15")


def test_a_bad_time_or_address_is_refused_with_the_field_named_and_nothing_typed_lost(world, company):
    browser = sign_in_http(world, company.user)
    form = {
        "customer_id": company.customer_id,
        "frequency": "weekly",
        "format": "pdf",
        "sections": ["summary", "breaches"],
        "recipients": "ciso@example.com\r\nnot an address",
        "language": "",
        "digest_enabled": "on",
        "digest_at": "25:00",
    }
    refused = browser.post("/reports/preferences", form)
    assert refused.status_code == 422
    assert '<a href="#digest_at">Daily digest time: write it as HH:MM, e.g. 09:00.</a>' in refused.text
    assert '<a href="#recipients">Line 2 is not an e-mail address.</a>' in refused.text
    assert 'value="25:00"' in refused.text and "ciso@example.com\nnot an address</textarea>" in refused.text
    assert 'id="section-breaches" name="sections" value="breaches" checked' in refused.text
    assert 'id="section-sla" name="sections" value="sla">' in refused.text
    none = browser.post("/reports/preferences", {**form, "sections": [], "digest_at": "09:00", "recipients": ""})
    assert none.status_code == 422 and '<a href="#sections">Choose at least one section.</a>' in none.text
    mine = browser.post("/reports/digest", {"customer_id": company.customer_id, "enabled": "on", "send_at": "9"})
    assert mine.status_code == 422 and "My digest time: write it as HH:MM" in mine.text
    with world.client(company.user) as c:
        assert c.get(f"/api/v1/customers/{company.customer_id}/report-preferences").json()["updated_at"] is None

    readonly = sign_in_http(world, company.triage).page(f"/reports/preferences?customer_id={company.customer_id}")
    assert readonly.status_code == 200 and "Your role may read these settings but not change them." in readonly.text
    assert 'method="post" action="/reports/preferences"' not in readonly.text


def test_every_word_the_views_put_on_the_pages_is_translated():
    words = [
        *reports_views.SECTIONS.values(),
        *reports_views.FREQUENCIES.values(),
        *reports_views.MESSAGES.values(),
        *reports_views.DATE_FIELDS.values(),
    ]
    assert [w for w in words if w not in catalog()] == []


def test_the_quarters_offered_are_this_one_and_the_eight_before():
    assert reports_views.recent_quarters(date(2026, 2, 10)) == [
        "2026Q1",
        *("2025Q4", "2025Q3", "2025Q2", "2025Q1"),
        *("2024Q4", "2024Q3", "2024Q2", "2024Q1"),
    ]
