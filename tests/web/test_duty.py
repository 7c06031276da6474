"""The duty page in a real Chromium: who is on duty now and next, the gaps of the coming week (loud), leave,
the fallback person, and the forms to set the fallback and record one's own leave.

The rotation and the fallback are global (one fallback for the whole installation), so these tests run on a
database and a server of their own: the shared one's shifts would fill the gaps, and a fallback set here
would change how other tests' requests are routed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from release_requests import db
from release_requests.api.app import create_app
from release_requests.audit.service import Actor
from release_requests.clock import db_now
from release_requests.people.models import Person
from release_requests.routing.models import DutyFallback, Leave
from release_requests.routing.service import ShiftCreate, add_shifts, rotation_gaps, set_fallback
from release_requests.settings import Settings
from release_requests.web.rendering import local_time
from tests.conftest import REPO, User, World, clone_database, serve_app
from tests.web.conftest import assert_accessible, email_of, give_password, sign_in_http, through_the_form

SYSTEM = Actor.system("tests")
YEKATERINBURG = "Asia/Yekaterinburg"  # UTC+05, shown as "UTC+05": the zone is always named


class Rota(World):
    alma: User  # on duty now, for 6 more hours
    boris: User  # the next shift: from 30 hours on, for 10 hours
    shifts: dict[str, tuple[datetime, datetime]]


@pytest.fixture(scope="module")
def rota(pg_server, admin_url, template_db, config, tmp_path_factory) -> Iterator[Rota]:
    """A database and server of their own, with a rotation of two shifts and no fallback yet: nothing else
    covers the week."""
    url = clone_database(pg_server, admin_url, template_db)
    settings = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("duty"), config_dir=REPO / "config")
    engine = db.make_engine(url)
    try:
        with serve_app(create_app(settings=settings, config=config, sessions=db.make_sessionmaker(engine))) as api:
            world = Rota(engine, api)
            world.alma, world.boris = world.user("duty_manager"), world.user("duty_manager")
            with db.transaction(world.sessions) as s:
                now = db_now(s)
                world.shifts = {
                    "alma": (now - timedelta(hours=1), now + timedelta(hours=6)),
                    "boris": (now + timedelta(hours=30), now + timedelta(hours=40)),
                }
                for who, (start, end) in world.shifts.items():
                    person = s.get(Person, getattr(world, who).id)
                    add_shifts(s, actor=SYSTEM, person=person, data=ShiftCreate(starts_at=start, ends_at=end))
            yield world
    finally:
        engine.dispose()


def signed_in(browser, rota: Rota, user: User):
    """A Chromium context signed in to this module's own server through the real form, on the duty page."""
    return through_the_form(
        browser,
        rota.api_url,
        email_of(rota, user),
        give_password(rota, user),
        start="/login?next=/duty",
        landing="/duty",
    )


@pytest.fixture(scope="module")
def engineer(rota, browser):
    """A triage engineer in Yekaterinburg (UTC+05), signed in once for the module."""
    context, page = signed_in(browser, rota, rota.user("triage", timezone=YEKATERINBURG))
    yield page
    context.close()


def fallback(rota: World, user: User | None) -> None:
    with db.transaction(rota.sessions) as s:
        if user is None:
            s.query(DutyFallback).delete()
        else:
            set_fallback(s, actor=SYSTEM, person=s.get(Person, user.id))


def shown(moment: datetime) -> str:
    return local_time(moment, ZoneInfo(YEKATERINBURG))


def test_the_duty_page_shows_who_is_on_duty_now_and_next_and_the_fallback(rota, engineer):
    carla = rota.user("duty_manager")
    fallback(rota, carla)
    page = engineer
    page.goto("/duty")
    expect(page.get_by_role("heading", level=1)).to_have_text("Duty")
    now = page.locator(".on-duty")
    expect(now).to_contain_text(rota.alma.name)
    start, end = rota.shifts["alma"]
    expect(now).to_contain_text(f"since {shown(start)}")
    expect(now).to_contain_text(f"until {shown(end)}")
    assert "UTC+05" in now.inner_text()
    expect(page.locator(".next-duty")).to_contain_text(f"{rota.boris.name} · from {shown(rota.shifts['boris'][0])}")
    expect(page.locator("p.fallback")).to_have_text(carla.name)
    # a triage engineer reads the rotation but may not name the fallback, and may record their own leave
    expect(page.get_by_role("button", name="Set the fallback person")).to_have_count(0)
    expect(page.get_by_role("button", name="Record leave")).to_be_visible()


def test_a_duty_manager_sets_the_fallback_through_the_form(rota, browser):
    fallback(rota, None)
    dora = rota.user("duty_manager")
    context, page = signed_in(browser, rota, rota.user("duty_manager"))
    expect(page.locator("p.fallback")).to_contain_text("No fallback person")
    assert_accessible(page)  # with the fallback form
    page.get_by_label("New fallback person").select_option(str(dora.id))
    page.get_by_role("button", name="Set the fallback person").click()
    expect(page.get_by_role("status")).to_have_text("The fallback person is set.")
    expect(page.locator("p.fallback")).to_have_text(dora.name)
    context.close()
    with db.transaction(rota.sessions) as s:
        assert s.get(DutyFallback, 1).person_id == dora.id


def test_gaps_in_the_rotation_are_loud(rota, engineer):
    fallback(rota, None)
    page = engineer
    page.goto("/duty")
    gaps = page.locator("li.gap.loud")
    expect(gaps).to_have_count(2)  # between Alma and Boris, and after Boris until the week's end
    first = gaps.first
    expect(first).to_contain_text(f"{shown(rota.shifts['alma'][1])} – {shown(rota.shifts['boris'][0])}")
    expect(first).to_contain_text("no duty manager and no fallback person")
    expect(page.locator("p.fallback.loud")).to_be_visible()
    assert_accessible(page)


def test_staff_record_their_own_leave_and_the_page_lists_it(rota):
    me = rota.user("tam")
    http = sign_in_http(rota, me)
    today = datetime.now(UTC).date()
    answer = http.post(
        "/duty/leave",
        {"first_day": today.isoformat(), "last_day": (today + timedelta(days=2)).isoformat(), "reason": "family"},
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/duty?notice=")
    page = http.page(answer.headers["location"])
    assert me.name in page.text and "family" in page.text and "Your leave is recorded." in page.text
    with db.transaction(rota.sessions) as s:
        assert s.query(Leave).filter(Leave.person_id == me.id).count() == 1

    backwards = http.post(
        "/duty/leave", {"first_day": today.isoformat(), "last_day": (today - timedelta(days=1)).isoformat()}
    )
    assert backwards.status_code == 422 and "last_day is before first_day" in backwards.text
    assert http.post("/duty/fallback", {"person": str(me.id)}).status_code == 403  # not a duty manager's power
    customer = sign_in_http(rota, rota.user("customer", rota.customer()))
    assert customer.page("/duty").status_code == 403


def test_rotation_gaps_are_the_spans_no_shift_covers():
    t = datetime(2026, 12, 1, tzinfo=UTC)
    h = timedelta(hours=1)
    assert rotation_gaps([], start=t, end=t + 10 * h) == [(t, t + 10 * h)]
    shifts = [(t + 2 * h, t + 4 * h), (t - h, t + h), (t + 3 * h, t + 5 * h), (t + 8 * h, t + 12 * h)]
    assert rotation_gaps(shifts, start=t, end=t + 10 * h) == [(t + h, t + 2 * h), (t + 5 * h, t + 8 * h)]
    assert rotation_gaps([(t - h, t + 11 * h)], start=t, end=t + 10 * h) == []
