"""/api/v1/healthchecks over the live API with the real clock: booking, visibility, the life cycle to the
delivered report, findings all-or-nothing, the report as HTML and PDF."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from release_requests import db
from release_requests.healthchecks.schemas import BookIn
from release_requests.healthchecks.service import book
from release_requests.people.models import Person
from release_requests.sla.calendar import BusinessCalendar, day_schedule

ZONE = "Asia/Vladivostok"


def business_day(after: date) -> date:
    """The first business day of a Russian customer on or after `after`."""
    calendar = BusinessCalendar(timezone=ZONE, country="RU")
    day = after
    while day_schedule(calendar, day=day).closed_reason is not None:
        day += timedelta(days=1)
    return day


def local_today() -> date:
    return datetime.now(ZoneInfo(ZONE)).date()


@pytest.fixture
def hc_cast(world):
    today = local_today()
    certificate = {"certificate_start": today - timedelta(days=400), "certificate_end": today + timedelta(days=900)}
    customer = world.customer(timezone=ZONE, **certificate)
    other = world.customer(timezone=ZONE, **certificate)
    return {
        "customer": customer,
        "other": other,
        "tam": world.user("tam", tam_for=[customer]),
        "engineer": world.user("build_engineer"),
        "customer_user": world.user("customer", customer),
        "other_user": world.user("customer", other),
    }


def email_of(world, user) -> str:
    with world.sessions() as s:
        return s.get(Person, user.id).email


def test_book_read_and_refuse_over_the_api(world, hc_cast):
    engineer = email_of(world, hc_cast["engineer"])
    day = business_day(local_today() + timedelta(days=20))
    with world.client(hc_cast["tam"]) as tam:
        too_soon = tam.post(
            "/api/v1/healthchecks",
            json={
                "customer_id": hc_cast["customer"],
                "date": str(local_today() + timedelta(days=13)),
                "engineer": engineer,
            },
        )
        assert too_soon.status_code == 422 and too_soon.json()["field"] == "date"
        assert "at least 14 days ahead" in too_soon.json()["message"]
        unknown = tam.post(
            "/api/v1/healthchecks",
            json={"customer_id": hc_cast["customer"], "date": str(day), "engineer": "x@y.example"},
        )
        assert unknown.status_code == 422 and unknown.json()["field"] == "engineer"
        booked = tam.post(
            "/api/v1/healthchecks", json={"customer_id": hc_cast["customer"], "date": str(day), "engineer": engineer}
        )
        assert booked.status_code == 201, booked.text
        hc = booked.json()
        assert (hc["label"], hc["status"], hc["scheduled_on"], hc["timezone"]) == (
            f"HC-{hc['id']}",
            "booked",
            str(day),
            ZONE,
        )
        second = tam.post(
            "/api/v1/healthchecks",
            json={
                "customer_id": hc_cast["customer"],
                "date": str(business_day(day + timedelta(days=3))),
                "engineer": engineer,
            },
        )
        assert second.status_code == 409
        assert f"already booked for {day} ({hc['label']})" in second.json()["message"]
        no_reason = tam.post(f"/api/v1/healthchecks/{hc['label']}/reschedule", json={"date": str(day)})
        assert no_reason.status_code == 422 and "reason" in no_reason.json()["message"]
        stale = tam.post(f"/api/v1/healthchecks/{hc['id']}/confirm", json={"version": 5})
        assert stale.status_code == 409 and stale.json()["error"] == "stale_version"

    with world.client(hc_cast["customer_user"]) as mine:
        assert mine.get(f"/api/v1/healthchecks/{hc['label']}").json()["id"] == hc["id"]
        assert [h["id"] for h in mine.get("/api/v1/healthchecks").json()] == [hc["id"]]
        refused = mine.post(
            "/api/v1/healthchecks", json={"customer_id": hc_cast["customer"], "date": str(day), "engineer": engineer}
        )
        assert refused.status_code == 403
    with world.client(hc_cast["other_user"]) as other:
        for path in ("", "/findings", "/report"):
            assert other.get(f"/api/v1/healthchecks/{hc['id']}{path}").status_code == 404
        assert other.get("/api/v1/healthchecks").json() == []
        assert other.get("/api/v1/healthchecks", params={"customer_id": hc_cast["customer"]}).status_code == 404
        assert other.get("/api/v1/healthchecks/not-an-id").status_code == 404


def test_a_past_health_check_through_findings_to_the_delivered_report(world, hc_cast, config):
    """Booked 40 days ago (through the service, with that day's clock), conducted over the API now."""
    then = datetime.now(UTC) - timedelta(days=40)
    day = business_day(then.astimezone(ZoneInfo(ZONE)).date() + timedelta(days=14))
    with db.transaction(world.sessions) as s:
        hc_id = book(
            s,
            actor=s.get(Person, hc_cast["tam"].id),
            data=BookIn(customer_id=hc_cast["customer"], date=day, engineer=str(hc_cast["engineer"].id)),
            now=then,
            config=config,
        ).id
    rows = [
        {
            "product": "Endpoint Agent",
            "area": "Policy",
            "setting": "Self-defence",
            "found": "Self-defence off on 40 hosts & <servers>",
            "severity": "high",
            "recommendation": "Turn it on",
        },
        {
            "product": "Endpoint Agent",
            "area": "Policy",
            "setting": "Updates",
            "found": "",
            "severity": "low",
            "recommendation": "x",
        },
    ]
    with world.client(hc_cast["tam"]) as tam:
        assert tam.post(f"/api/v1/healthchecks/HC-{hc_id}/confirm").json()["status"] == "confirmed"
    with world.client(hc_cast["engineer"]) as engineer:
        assert (
            engineer.post(f"/api/v1/healthchecks/{hc_id}/start", json={"version": 2}).json()["status"] == "in_progress"
        )
        bad = engineer.post(f"/api/v1/healthchecks/{hc_id}/findings", json=rows)
        assert bad.status_code == 422 and bad.json()["field"] == "findings[2].found"
        assert "finding row 2: found" in bad.json()["message"]
        assert engineer.get(f"/api/v1/healthchecks/{hc_id}/findings").json() == []
        done = engineer.post(f"/api/v1/healthchecks/{hc_id}/findings", json=rows[:1])
        assert (done.json()["status"], done.json()["findings"]) == ("findings_recorded", 1)
        html = engineer.get(f"/api/v1/healthchecks/{hc_id}/report")
        assert html.headers["content-type"].startswith("text/html")
        assert "Self-defence off on 40 hosts &amp; &lt;servers&gt;" in html.text and "<servers>" not in html.text
        delivered = engineer.post(f"/api/v1/healthchecks/{hc_id}/deliver")
        assert delivered.json()["status"] == "report_delivered"
    with world.client(hc_cast["customer_user"]) as mine:
        pdf = mine.get(f"/api/v1/healthchecks/HC-{hc_id}/report", params={"format": "pdf"})
        assert pdf.headers["content-type"] == "application/pdf"
        text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf.content)).pages)
        assert "Self-defence off on 40 hosts & <servers>" in text and f"HC-{hc_id}" in text
        assert mine.get(f"/api/v1/healthchecks/{hc_id}/report", params={"format": "doc"}).status_code == 422


def test_a_date_far_ahead_is_refused_by_its_rule_not_a_crash(world, hc_cast):
    """An open-ended certificate has a certificate year for any day up to 9999: the 3-year rule refuses it."""
    customer = world.customer(timezone=ZONE, certificate_start=local_today() - timedelta(days=10))
    engineer = email_of(world, hc_cast["engineer"])
    with world.client(world.user("admin")) as admin:
        for day in ("9999-06-01", "9999-12-31", str(local_today() + timedelta(days=4 * 366))):
            refused = admin.post(
                "/api/v1/healthchecks", json={"customer_id": customer, "date": day, "engineer": engineer}
            )
            assert refused.status_code == 422 and refused.json()["field"] == "date", refused.text
            assert f"date {day} is more than 3 years after today" in refused.json()["message"]
        day = business_day(local_today() + timedelta(days=20))
        hc = admin.post("/api/v1/healthchecks", json={"customer_id": customer, "date": str(day), "engineer": engineer})
        assert hc.status_code == 201, hc.text
        moved = admin.post(
            f"/api/v1/healthchecks/{hc.json()['id']}/reschedule", json={"date": "9999-06-01", "reason": "typo"}
        )
        assert moved.status_code == 422 and "at most 3 years ahead" in moved.json()["message"]
