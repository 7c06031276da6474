"""/api/v1/reports over real HTTP: the story's figures in JSON (equal to the service's), who may read which report,
bad input named precisely, and the renderings (HTML, PDF, CSV; the digest as text and HTML)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from release_requests.people.models import Person
from release_requests.reports import periods
from release_requests.reports.service import build_customer_report, daily_digest
from tests.reports.conftest import check_figures

REPORT, DAILY = "/api/v1/reports/customer", "/api/v1/reports/daily"


def get(world, user, path: str, **params):
    with world.client(user) as c:
        return c.get(path, params=params)


def test_the_json_report_is_the_services_and_every_figure_checks(world, story, session, config):
    response = get(world, story.customer_user, REPORT, **story.params)
    assert response.status_code == 200, response.text
    body = response.json()
    check_figures(body, story)
    period = periods.between(story.start, story.end)
    computed = build_customer_report(
        session, customer_id=story.customer_id, period=period, config=config, as_of=story.as_of
    )
    assert body == computed.model_dump(mode="json")


def test_as_of_defaults_to_now(world, story):
    response = get(world, story.tam, REPORT, customer_id=story.customer_id, **{"from": story.start, "to": story.end})
    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.json()["as_of"]) >= story.as_of
    assert response.json()["requests_total"] == 7


@pytest.mark.parametrize(("who", "status"), [("customer_user", 200), ("tam", 200), ("triage", 200), ("admin", 200)])
def test_the_customer_its_tam_and_staff_read_it(world, story, who, status):
    assert get(world, getattr(story, who), REPORT, **story.params).status_code == status


@pytest.mark.parametrize("who", ["other_customer_user", "other_tam"])
def test_another_customers_report_is_not_found_like_an_unknown_customer(world, story, who):
    theirs = get(world, getattr(story, who), REPORT, **story.params)
    unknown = get(world, getattr(story, who), REPORT, **{**story.params, "customer_id": "no-such-customer"})
    assert (theirs.status_code, unknown.status_code) == (404, 404)
    assert theirs.json()["message"] == f"no customer '{story.customer_id}'"
    assert unknown.json()["message"] == "no customer 'no-such-customer'"
    assert story.customer_id not in get(world, getattr(story, who), DAILY).text


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"quarter": "2026Q5"}, "quarter", "quarter '2026Q5'"),
        ({"quarter": "2026-Q4"}, "quarter", "YYYYQ1..YYYYQ4"),
        ({"quarter": "26Q1"}, "quarter", "YYYYQ1..YYYYQ4"),
        ({"from": "2026-10-10", "to": "2026-10-01"}, "to", "'to' 2026-10-01 is before 'from' 2026-10-10"),
        (
            {"quarter": "2026Q4", "from": "2026-10-01", "to": "2026-10-31"},
            "quarter",
            "either 'quarter' or 'from' and 'to'",
        ),
        ({}, "quarter", "a period is needed"),
        ({"from": "2026-10-01"}, "to", "'to' is missing"),
        ({"from": "2020-01-01", "to": "2026-12-31"}, "to", "at most 1098 (3 years)"),
    ],
)
def test_bad_periods_are_422_naming_the_field(world, story, params, field, words):
    response = get(world, story.tam, REPORT, customer_id=story.customer_id, **params)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and words in response.json()["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"quarter": "2026Q4", "format": "xml"}, "format"),
        ({"quarter": "2026Q4", "language": "de"}, "language"),
        ({"from": "2026-13-01", "to": "2026-12-31"}, "from"),
        ({"quarter": "2026Q4", "as_of": "2026-11-01T10:00"}, "as_of"),  # no zone
    ],
)
def test_malformed_parameters_are_422(world, story, params, field):
    response = get(world, story.tam, REPORT, customer_id=story.customer_id, **params)
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == [field]


def test_a_bad_period_for_an_unknown_customer_is_still_about_the_period(world, story):
    assert get(world, story.tam, REPORT, customer_id="nobody", quarter="2026Q5").status_code == 422
    assert get(world, story.tam, REPORT, customer_id="nobody", quarter="2026Q4").status_code == 404


def test_pdf_html_and_csv(world, story):
    quarter = f"{story.as_of.year}Q{(story.as_of.month - 1) // 3 + 1}"
    base = {"customer_id": story.customer_id, "quarter": quarter}
    pdf = get(world, story.customer_user, REPORT, **base, format="pdf")
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"] == f'attachment; filename="report-{story.customer_id}-{quarter}.pdf"'
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert story.ids["G"] in text

    html = get(world, story.tam, REPORT, **base, format="html", language="ru")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert story.ids["B"] in html.text and "<b>payroll</b>" not in html.text  # the customer's words, escaped

    csv_response = get(world, story.tam, REPORT, **story.params, format="csv")
    assert csv_response.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_response.headers["content-disposition"] == (
        f'attachment; filename="report-{story.customer_id}-{story.start}_{story.end}.csv"'
    )
    table = list(csv.DictReader(io.StringIO(csv_response.text)))
    received = {r["request_id"] for r in table if r["record"] == "request" and r["received_in_period"] == "true"}
    assert received == {story.ids[x] for x in "ABCDEFG"}
    x = next(r for r in table if r["request_id"] == story.ids["X"])  # received before, answered in the period
    assert (x["received_in_period"], x["decided_in_period"], x["responded_in_period"]) == ("false", "false", "true")


def test_the_daily_digest_in_json_text_and_html(world, story, session, config):
    at = story.as_of.isoformat()
    response = get(world, story.customer_user, DAILY, at=at)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["request_id"] for r in body["rows"]] == [story.ids[x] for x in "GBDAXC"]
    person = session.get(Person, story.customer_user.id)
    assert body == daily_digest(session, actor=person, as_of=story.as_of, config=config).model_dump(mode="json")

    text = get(world, story.customer_user, DAILY, at=at, format="text")
    assert text.headers["content-type"].startswith("text/plain") and story.ids["G"] in text.text
    html = get(world, story.tam, DAILY, at=at, format="html")
    assert html.headers["content-type"].startswith("text/html") and story.ids["G"] in html.text
    assert "<b>payroll</b>" not in html.text
    assert get(world, story.tam, DAILY, format="pdf").status_code == 422
    assert get(world, story.tam, DAILY, at="yesterday").status_code == 422


def test_the_digest_of_a_past_day_counts_changes_of_that_day(world, story):
    before = datetime(2020, 1, 1, tzinfo=UTC).isoformat()  # before any of the story's requests existed
    rows = get(world, story.customer_user, DAILY, at=before).json()["rows"]
    assert rows == []
