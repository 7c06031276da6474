"""Paging in the console: a severity 1 request filed while only the duty manager on shift is at work pages them;
they open it in a real Chromium, see themselves paged, acknowledge it there and the SLA clock runs on. Over HTTP:
a customer's page says nothing of paging, a build engineer reads the panel but may not acknowledge, a second
acknowledgement is a conflict told on the page, and the queue marks unacknowledged pages in one query.

The rotation is global (a shift on the shared database would take other tests' requests), so this module runs
on a database and a server of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from sqlalchemy import event

from release_requests import db
from release_requests.api.app import create_app
from release_requests.audit.service import Actor
from release_requests.clock import db_now
from release_requests.paging.models import Page
from release_requests.people.models import Person
from release_requests.requests.models import ReleaseRequest
from release_requests.routing.service import ShiftCreate, add_shifts
from release_requests.settings import Settings
from release_requests.web.rendering import local_time
from tests.api.conftest import new_request
from tests.conftest import REPO, World, clone_database, serve_app
from tests.paging.conftest import a_weekday_but, with_head
from tests.web.conftest import assert_accessible, email_of, give_password, sign_in_http, through_the_form

YEKATERINBURG = "Asia/Yekaterinburg"  # UTC+05: the duty manager's own zone, named on the page
PAGE_WORDS = ("Paging", "paging", "Acknowledge", "acknowledge", "Escalation", "paged")


@pytest.fixture(scope="module")
def night(pg_server, admin_url, template_db, config, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """Its own database and server: a customer whose TAM is off today, a duty manager on a shift around now (the
    only one at work), an admin configured as head of support, and a customer user, triage and build engineer."""
    url = clone_database(pg_server, admin_url, template_db)
    engine = db.make_engine(url)
    world = World(engine, "")
    customer_id = world.customer(timezone="Europe/Moscow")
    off = a_weekday_but(datetime.now(ZoneInfo("Europe/Moscow")))
    team = SimpleNamespace(
        world=world,
        engine=engine,
        customer_id=customer_id,
        tam=world.user("tam", tam_for=[customer_id], timezone="Europe/Moscow", working_hours=f"{off} 09:00-18:00"),
        duty=world.user("duty_manager", timezone=YEKATERINBURG),
        head=world.user("admin"),
        customer=world.user("customer", customer_id),
        triage=world.user("triage"),
        engineer=world.user("build_engineer"),
    )
    with db.transaction(world.sessions) as s:
        now = db_now(s)
        add_shifts(
            s,
            actor=Actor.system("tests"),
            person=s.get(Person, team.duty.id),
            data=ShiftCreate(starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=6)),
        )
    settings = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("paging-pages"), config_dir=REPO / "config")
    app = create_app(
        settings=settings, config=with_head(config, email_of(world, team.head)), sessions=db.make_sessionmaker(engine)
    )
    try:
        with serve_app(app) as api:
            world.api_url = api
            yield team
    finally:
        engine.dispose()


def paged_request(night, title: str = "Payroll flagged at night") -> str:
    """A severity 1 request the customer files now: their TAM is off, so it pages the duty manager."""
    request_id = new_request(night.world, night.customer, night.customer_id, channel="portal", title=title)["id"]
    page = page_of(night, request_id)
    assert page.status == "paging" and page.paged_person_id == night.duty.id, page.chain
    return request_id


def page_of(night, request_id: str) -> Page:
    with db.transaction(night.world.sessions) as s:
        page = s.get(Page, request_id)
        s.expunge(page)
        return page


def test_the_duty_manager_sees_the_page_and_acknowledges_it_and_the_sla_clock_runs_on(night, browser):
    request_id = paged_request(night)
    page_row = page_of(night, request_id)
    context, page = through_the_form(
        browser,
        night.world.api_url,
        email_of(night.world, night.duty),
        give_password(night.world, night.duty),
        start=f"/login?next=/requests/{request_id}",
        landing=f"/requests/{request_id}",
    )
    try:
        panel = page.get_by_role("region", name="Paging", exact=True)
        expect(panel.locator(".page-status")).to_have_text("Paging: waiting for an acknowledgement")
        expect(panel.locator(".paged-now")).to_have_text(f"{night.duty.name} (on duty) · step 1 of 2")
        head = night.head.name
        escalates = local_time(page_row.escalate_at, ZoneInfo(YEKATERINBURG))
        assert escalates.endswith("UTC+05")  # the reader's own zone, named
        expect(panel.locator(".next-page")).to_have_text(f"{head} (head of support) is paged at {escalates}")
        expect(panel.locator("ol.chain li")).to_have_text(
            [f"{night.duty.name} (on duty) — paged now", f"{head} (head of support) — not paged yet"]
        )
        expect(panel).to_contain_text("It stops the escalation, not the SLA clock")
        expect(page.locator("dl.facts [data-countdown]").first).to_be_visible()  # the SLA ticks
        assert_accessible(page)

        panel.get_by_role("button", name="Acknowledge").click()
        page.wait_for_url(re.compile(rf"/requests/{request_id}\?notice="))
        expect(page.get_by_role("status")).to_have_text(
            "Page acknowledged: nobody else is paged. The SLA clock runs on."
        )
        expect(panel.locator(".page-status")).to_have_text("Acknowledged")
        expect(panel.locator(".acknowledged")).to_contain_text(night.duty.name)
        expect(panel.locator(".acknowledged")).to_contain_text("in the console")
        expect(panel.locator(".acknowledged")).to_contain_text("UTC+05")
        expect(panel.get_by_role("button", name="Acknowledge")).to_have_count(0)
        expect(panel.locator(".next-page")).to_have_count(0)
        expect(page.locator("dl.facts [data-countdown]").first).to_be_visible()  # still running, not met
        expect(page.get_by_role("region", name="Timeline")).to_contain_text(f"{night.duty.name} acknowledged the page")
        assert_accessible(page)
    finally:
        context.close()
    acknowledged = page_of(night, request_id)
    assert (acknowledged.status, acknowledged.acknowledged_via) == ("acknowledged", "web")
    assert acknowledged.acknowledged_by_id == night.duty.id
    with db.transaction(night.world.sessions) as s:
        assert s.get(ReleaseRequest, request_id).status == "submitted"  # the request itself is untouched


def test_a_customer_reads_nothing_of_paging(night):
    request_id = paged_request(night)
    customer = sign_in_http(night.world, night.customer)
    shown = customer.page(f"/requests/{request_id}")
    assert shown.status_code == 200
    assert 'id="paging"' not in shown.text and night.duty.name not in shown.text
    assert not [word for word in PAGE_WORDS if word in shown.text]
    refused = customer.post(f"/requests/{request_id}/page/acknowledge", {})
    assert refused.status_code == 403
    assert page_of(night, request_id).status == "paging"


def test_a_build_engineer_reads_the_panel_but_may_not_acknowledge(night):
    request_id = paged_request(night)
    engineer = sign_in_http(night.world, night.engineer)
    shown = engineer.page(f"/requests/{request_id}")
    assert 'id="paging"' in shown.text and night.duty.name in shown.text
    assert f'action="/requests/{request_id}/page/acknowledge"' not in shown.text
    refused = engineer.post(f"/requests/{request_id}/page/acknowledge", {})
    assert refused.status_code == 403 and "may not acknowledge pages" in refused.text
    assert page_of(night, request_id).status == "paging"


def test_a_second_acknowledgement_is_a_conflict_told_on_the_page(night):
    request_id = paged_request(night)
    duty = sign_in_http(night.world, night.duty)
    stale = duty.page(f"/requests/{request_id}")  # the duty manager has the page open with its button
    assert f'action="/requests/{request_id}/page/acknowledge"' in stale.text
    triage = sign_in_http(night.world, night.triage)
    taken = triage.post(f"/requests/{request_id}/page/acknowledge", {})
    assert taken.status_code == 303 and taken.headers["location"].startswith(f"/requests/{request_id}?notice=")

    late = duty.post(f"/requests/{request_id}/page/acknowledge", {})
    assert late.status_code == 409
    alert = re.search(r'<p class="error" id="page-error" role="alert">([^<]+)</p>', late.text)
    assert alert and f"Already acknowledged by {night.triage.name} at" in alert.group(1)
    assert alert.group(1).endswith("UTC+05.")  # when, in the reader's own zone, named
    assert 'class="badge page-acknowledged"' in late.text  # the panel shows who has it now
    assert f'action="/requests/{request_id}/page/acknowledge"' not in late.text
    assert page_of(night, request_id).acknowledged_by_id == night.triage.id

    forged = duty.post(f"/requests/{request_id}/page/acknowledge", {}, token="forged")
    assert forged.status_code == 403


def test_the_queue_marks_unacknowledged_pages_in_one_query(night):
    waiting = [paged_request(night, title=f"Paged {n}") for n in range(3)]
    duty = sign_in_http(night.world, night.duty)
    statements = []

    def count(conn, cursor, statement, *args):
        if re.search(r"\bpages\b", statement):
            statements.append(statement)

    event.listen(night.engine, "before_cursor_execute", count)
    try:
        queue = duty.page("/queue")
    finally:
        event.remove(night.engine, "before_cursor_execute", count)
    assert queue.status_code == 200
    assert len(statements) == 1, statements  # one query for the whole queue, not one per row
    marker = f"Paging: {night.duty.name}"
    for request_id in waiting:
        assert re.search(rf"queue-link-{request_id}\".*?{re.escape(marker)}.*?</tr>", queue.text, re.S)

    taken = duty.post(f"/requests/{waiting[0]}/page/acknowledge", {})
    assert taken.status_code == 303
    rows = duty.page("/queue/rows").text
    row = re.search(rf"queue-link-{waiting[0]}\".*?</tr>", rows, re.S).group(0)
    assert marker not in row and "Paging" not in row
    still = re.search(rf"queue-link-{waiting[1]}\".*?</tr>", rows, re.S).group(0)
    assert marker in still
