"""The staff queue page: queue order, filters that keep their values, owner and why, the SLA countdown
ticking in the reader's zone, the refresh without a reload, the refusal for customers, and rows with nulls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from starlette.requests import Request

from release_requests import db
from release_requests.audit.service import Actor
from release_requests.clock import db_now
from release_requests.customers.service import assign_tam
from release_requests.errors import Forbidden
from release_requests.people.models import Person
from release_requests.requests.presentation import _routing_basis, routing_of, tam_customer_ids
from release_requests.requests.schemas import RequestOut
from release_requests.web.queue_views import QueueFilters, QueueRow, in_zone
from release_requests.web.rendering import render
from release_requests.web.session import Viewer
from tests.api.conftest import new_request
from tests.conftest import User, World
from tests.web.conftest import assert_accessible, email_of, give_password, through_the_form

ALWAYS_AT_WORK = "mon-sun 00:00-23:59:59"  # the TAM is available whenever the test runs: routing picks them


@dataclass
class Scene:
    tam: User  # TAM of both customers, in Moscow: owns what they file
    other_tam: User  # a second TAM of the first customer: owns nothing
    triage: User
    customer_user: User
    breached: str  # sev1, standard customer, received 2 h ago: breached
    sev1: str  # sev1, enterprise, missed detection
    sev3: str  # sev3, enterprise, needs information
    bare: str  # sev2, filed before its customer had a TAM: no product, version, detection; no owner if no duty


@pytest.fixture(scope="module")
def scene(world: World) -> Scene:
    enterprise, standard, bare_customer = world.customer(), world.customer(tier="standard"), world.customer()
    tam = world.user("tam", tam_for=[enterprise, standard], timezone="Europe/Moscow", working_hours=ALWAYS_AT_WORK)
    other_tam = world.user("tam", tam_for=[enterprise], timezone="Europe/Moscow", working_hours=ALWAYS_AT_WORK)
    triage = world.user("triage")
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    breached = new_request(
        world,
        tam,
        standard,
        severity=1,
        received_at=two_hours_ago,
        product="Endpoint Security",
        product_version="11.2",
        title="Breached one",
    )
    sev1 = new_request(world, tam, enterprise, severity=1, kind="false_negative", title="Missed ransomware")
    sev3 = new_request(world, tam, enterprise, severity=3, title="Installer flagged")
    with world.client(triage) as c:
        answer = c.post(
            f"/api/v1/requests/{sev3['id']}/triage", json={"decision": "needs_info", "question": "Which build?"}
        )
        assert answer.status_code == 200, answer.text
    bare = new_request(world, triage, bare_customer, severity=2, title="Nothing else known")
    with db.transaction(world.sessions) as s:  # the TAM arrives after the request was routed
        assign_tam(s, actor=Actor.system("tests"), customer_id=bare_customer, person=s.get(Person, tam.id))
    return Scene(
        tam=tam,
        other_tam=other_tam,
        triage=triage,
        customer_user=world.user("customer", enterprise),
        breached=breached["id"],
        sev1=sev1["id"],
        sev3=sev3["id"],
        bare=bare["id"],
    )


@pytest.fixture(scope="module")
def tam_context(scene, world, browser, base_url):
    """The scene's TAM signed in once through the real form (signing in hashes a password: not once per test)."""
    context, page = through_the_form(
        browser, base_url, email_of(world, scene.tam), give_password(world, scene.tam), landing="/queue"
    )
    page.close()
    yield context
    context.close()


@pytest.fixture
def tam_page(tam_context) -> Page:
    page = tam_context.new_page()
    page.goto("/queue")
    yield page
    page.close()


def ids_on(page: Page) -> list[str]:
    return page.locator("table.queue tbody td.request-id a").all_inner_texts()


def row_of(page: Page, request_id: str):
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=request_id, exact=True))


def test_the_queue_lists_open_work_in_queue_order_with_each_id_linked(scene, tam_page):
    page = tam_page
    expect(page.get_by_role("heading", level=1)).to_have_text("Queue")
    link = page.get_by_role("link", name=scene.sev1, exact=True)
    expect(link).to_have_attribute("href", f"/requests/{scene.sev1}")
    # breached first, then severity (a sev1 before a sev2 before a sev3)
    assert ids_on(page) == [scene.breached, scene.sev1, scene.bare, scene.sev3]
    breached = row_of(page, scene.breached)
    expect(breached).to_contain_text("1 critical")
    expect(breached).to_contain_text("Endpoint Security 11.2")
    expect(breached.locator("[data-countdown]")).to_have_class(re.compile("sla-breached"))
    expect(breached.locator(".countdown-value")).to_have_text(re.compile("^−"))
    # the owner and why: the customer's TAM, with the routing decision in words
    owner = row_of(page, scene.sev1).get_by_role("cell").nth(6)
    expect(owner).to_contain_text(scene.tam.name)
    expect(owner.locator(".why")).to_have_text("TAM")
    expect(owner.locator(".reason")).to_contain_text(f"TAM {scene.tam.name}")
    expect(row_of(page, scene.sev3)).to_contain_text("Needs information")
    expect(row_of(page, scene.sev1)).to_contain_text("Missed detection")


def test_the_filters_narrow_the_queue_and_keep_their_values(scene, tam_page):
    page = tam_page
    page.get_by_label("Severity").select_option("3")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"/queue\?.*severity=3"))
    assert ids_on(page) == [scene.sev3]
    expect(page.get_by_label("Severity")).to_have_value("3")

    page.get_by_role("link", name="Clear filters").click()
    page.get_by_label("Kind").select_option(label="Missed detection")
    page.get_by_role("button", name="Apply filters").click()
    assert ids_on(page) == [scene.sev1]
    expect(page.get_by_label("Kind")).to_have_value("false_negative")

    page.goto("/queue")
    page.get_by_label("Status").select_option(label="Needs information")
    page.get_by_role("button", name="Apply filters").click()
    assert ids_on(page) == [scene.sev3]
    expect(page.get_by_label("Status")).to_have_value("needs_info")

    page.goto("/queue")
    page.get_by_label("Show").select_option(label="Mine (owner or assignee)")
    page.get_by_role("button", name="Apply filters").click()
    assert ids_on(page) == [scene.breached, scene.sev1, scene.sev3]  # the bare one was routed before the TAM came
    expect(page.get_by_label("Show")).to_have_value("mine")
    page.get_by_label("Show").select_option(label="My customers")
    page.get_by_role("button", name="Apply filters").click()
    assert ids_on(page) == [scene.breached, scene.sev1, scene.bare, scene.sev3]

    page.get_by_label("Severity").select_option(label="4 low")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_role("cell", name="No open requests match these filters.")).to_be_visible()


def test_my_customers_is_offered_only_to_people_with_assigned_customers(scene, sign_in):
    page = sign_in(scene.triage)
    expect(page.get_by_label("Show").locator("option")).to_have_text(["All open work", "Mine (owner or assignee)"])


def test_the_countdown_ticks_in_the_browser_and_names_the_readers_zone(scene, sign_in):
    page = sign_in(scene.tam)
    page.clock.install()
    page.goto("/queue")
    expect(page.get_by_text("Times are shown in Europe/Moscow (MSK).")).to_be_visible()
    countdown = row_of(page, scene.sev1).locator("[data-countdown]")
    due = datetime.fromisoformat(countdown.get_attribute("data-due"))
    left = due - datetime.now(UTC)
    assert left <= timedelta(minutes=30)  # a critical request: 30 minutes from when it was received
    expect(countdown.locator("time")).to_contain_text("MSK")
    expect(countdown.locator("time")).to_have_attribute("title", "Europe/Moscow")
    before = countdown.locator(".countdown-value").inner_text()
    page.clock.fast_forward("10:00")
    expect(countdown.locator(".countdown-value")).not_to_have_text(before)
    shown = int(
        re.fullmatch(r"(−?\d+) min", countdown.locator(".countdown-value").inner_text()).group(1).replace("−", "-")
    )
    assert abs(shown - (left.total_seconds() / 60 - 10)) <= 2  # ten minutes less, ticking in the browser


def test_the_results_refresh_without_a_reload_keeping_the_filters(world, sign_in):
    customer = world.customer()
    tam = world.user("tam", tam_for=[customer], timezone="Europe/Berlin", working_hours=ALWAYS_AT_WORK)
    page = sign_in(tam)
    page.clock.install()
    page.goto("/queue?kind=false_negative")
    expect(page.get_by_role("cell", name="No open requests match these filters.")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    missed = new_request(world, tam, customer, kind="false_negative", title="Appears by itself")
    flagged = new_request(world, tam, customer, kind="false_positive", title="Filtered out")
    page.clock.fast_forward("00:31")
    expect(page.get_by_role("link", name=missed["id"], exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=flagged["id"], exact=True)).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.get_by_text("Open requests: 2; matching the filters: 1.")).to_be_visible()


def test_the_fragment_route_gives_the_results_alone_with_the_same_filters(scene, tam_context):
    answer = tam_context.request.get("/queue/rows?severity=3")
    assert answer.status == 200
    assert "<html" not in answer.text() and "<table" in answer.text()
    assert scene.sev3 in answer.text() and scene.sev1 not in answer.text()
    page = tam_context.request.get("/queue?severity=3&kind=false_positive").text()
    assert 'hx-get="/queue/rows?severity=3&amp;kind=false_positive"' in page
    assert 'hx-trigger="every 30s"' in page


def test_a_customer_is_not_allowed_into_the_queue(scene, sign_in):
    page = sign_in(scene.customer_user)
    assert page.goto("/queue").status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    assert page.request.get("/queue/rows").status == 403


def test_an_unknown_filter_value_is_refused_by_name(tam_context):
    answer = tam_context.request.get("/queue?severity=9")
    assert answer.status == 422 and "unknown severity" in answer.text()


def test_a_request_with_empty_fields_renders(scene, world, tam_page):
    with world.client(scene.tam) as c:
        bare = c.get(f"/api/v1/requests/{scene.bare}").json()
    page = tam_page
    row = row_of(page, scene.bare)
    expect(row).to_contain_text("Nothing else known")
    expect(row.locator("[data-countdown]")).to_have_count(1)
    if bare["owner"] is None:  # no duty shift and no fallback in this database: nobody owns it
        expect(row.get_by_text("No owner")).to_be_visible()
        expect(row.locator(".reason")).to_contain_text("customer has no TAM")


def test_the_queue_page_has_no_serious_accessibility_violations(tam_page):
    assert_accessible(tam_page)


# --------------------------------------------------------------------------------------------------
# Without a browser: the rows with every optional value missing, the routing facts, the filters


def _viewer(zone: str = "Europe/Moscow") -> Viewer:
    person = Person(id=1, name="Nobody", role="triage")
    return Viewer(person=person, csrf_token="t", language="en", zone=ZoneInfo(zone), staff=True)


def test_a_row_without_owner_sla_product_or_routing_renders(config):
    now = datetime.now(UTC)
    item = RequestOut(
        id="RR-2026-000001",
        customer_id="c",
        customer_name="C <b>",
        kind="private_hotfix",
        severity=4,
        severity_label="4 low",
        channel="portal",
        title="<script>x</script>",
        description="",
        product=None,
        product_version=None,
        detection_name=None,
        status="submitted",
        allowed_transitions=[],
        owner=None,
        assignee=None,
        duplicate_of=None,
        submitted_by="?",
        version=1,
        received_at=now,
        created_at=now,
        updated_at=now,
        sla=None,
    )
    request = Request({"type": "http", "method": "GET", "path": "/queue/rows", "query_string": b"", "headers": []})
    page = render(
        request,
        "queue_results.html",
        viewer=_viewer(),
        filters=QueueFilters(),
        rows=[QueueRow(item, None, None)],
        open_count=1,
        my_customers=frozenset(),
        updated_at=None,
        severity_labels={4: "4 low"},
        refresh_url="/queue/rows",
        refresh_seconds=30,
    ).body.decode()
    assert "RR-2026-000001" in page and "No owner" in page and "Private hotfix" in page
    assert "<script>x" not in page and "&lt;script&gt;x" in page and "C &lt;b&gt;" in page
    empty = render(
        request,
        "queue_results.html",
        viewer=_viewer(),
        filters=QueueFilters(),
        rows=[],
        open_count=0,
        my_customers=frozenset(),
        updated_at=now,
        severity_labels={},
        refresh_url="/queue/rows",
        refresh_seconds=30,
    ).body.decode()
    assert "The queue is empty: there are no open requests." in empty


def test_routing_reasons_show_their_times_in_the_readers_zone():
    reason = "TAM Tanya off: Saturday; on duty: Boris (shift until 2026-11-30T06:00:00+00:00)"
    assert (
        in_zone(reason, _viewer().zone) == "TAM Tanya off: Saturday; on duty: Boris (shift until 30 Nov 2026 09:00 MSK)"
    )
    assert in_zone(None, _viewer().zone) is None


def test_the_filters_round_trip_through_the_query():
    chosen = QueueFilters.parse(scope="mine", severity="2", status="", kind="false_positive")
    assert chosen.query() == "?scope=mine&severity=2&kind=false_positive" and chosen.active
    assert QueueFilters.parse(scope="", severity="", status="", kind="").query() == ""


def test_routing_basis_reads_the_decisions_last_clause():
    assert _routing_basis(owner_id=None, owner_is_tam=False, reason="customer has no TAM; rotation gap") is None
    assert _routing_basis(owner_id=1, owner_is_tam=True, reason="TAM T available") == "tam"
    assert _routing_basis(owner_id=1, owner_is_tam=False, reason="TAM T off: Sunday; on duty: B (shift)") == "duty"
    assert _routing_basis(owner_id=1, owner_is_tam=False, reason="customer has no TAM; rotation gap: fallback F") == (
        "fallback"
    )
    rerouted = "owner B off: not on a duty shift; TAM T at work"
    assert _routing_basis(owner_id=1, owner_is_tam=False, reason=rerouted) == "tam"


def test_routing_of_reads_owner_tier_and_reason_for_a_page_of_requests(build, session):
    customer = build.customer(tier="standard")
    tam = build.person("tam", tam_for=[customer.id], working_hours=ALWAYS_AT_WORK)
    elsewhere = build.customer()
    manager = build.person("duty_manager")
    now = db_now(session)
    build.shift(manager, now - timedelta(minutes=1), now + timedelta(hours=1))
    mine = build.request(by=tam, customer=customer)
    theirs = build.request(by=manager, customer=elsewhere)
    admin = build.person("admin")

    seen = routing_of(session, actor=admin, request_ids=[mine.id, theirs.id])
    assert seen[mine.id].owner_id == tam.id and seen[mine.id].owner_name == tam.name
    assert seen[mine.id].basis == "tam" and seen[mine.id].tier == "standard"
    assert seen[mine.id].reason.startswith(f"TAM {tam.name}")
    assert seen[theirs.id].basis == "duty" and "on duty:" in seen[theirs.id].reason
    # a TAM reads only their customers' requests; customers not at all
    assert set(routing_of(session, actor=tam, request_ids=[mine.id, theirs.id])) == {mine.id}
    assert tam_customer_ids(session, person=tam) == {customer.id}
    assert tam_customer_ids(session, person=admin) == frozenset()
    with pytest.raises(Forbidden, match="may not read the work queue"):
        routing_of(session, actor=build.person("customer", customer_id=customer.id), request_ids=[mine.id])
