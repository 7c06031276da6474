"""The channels pages in a real Chromium: what each channel serves, a channel's history and the telemetry
that could halt it, Revert and Resume for those the permission table allows, and another customer's private
channel a 404. Channels are real: signed bases registered and published through the release services."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from release_requests import db
from release_requests.clock import db_now
from release_requests.people.models import Person
from release_requests.releases import clients, serving, stopping, telemetry
from release_requests.releases.models import ChannelPointer
from release_requests.releases.schemas import ClientEnrolIn, DetectionBatch
from release_requests.releases.telemetry import HaltDecision
from tests.conftest import Builder
from tests.releases.fixtures import put
from tests.web.conftest import assert_accessible, email_of, give_password, sign_in_http, through_the_form

RULE = "trojan.Trojan_Win32_Dropper_001"


def signed_in(browser, world, user, *, landing: str):
    """A Chromium context signed in as `user` through the real form, landing on `landing`."""
    return through_the_form(
        browser,
        world.api_url,
        email_of(world, user),
        give_password(world, user),
        start=f"/login?next={landing}",
        landing=landing,
    )


@pytest.fixture(scope="module")
def manager(browser, world):
    """One release manager's page for the module (signing in costs a password hash on each side)."""
    context, page = signed_in(browser, world, world.user("release_manager"), landing="/channels")
    yield page
    context.close()


def customer_channel(world, config, releases, *versions: str) -> tuple[str, str]:  # noqa: F811
    """A fresh customer's own channel serving `versions` in turn (the last one now): (customer id, channel)."""
    customer_id = world.customer()
    channel = f"customer-{customer_id}"
    with db.transaction(world.sessions) as s:
        put(s, channel, *(versions or (releases.v1, releases.v2)), config=config)
    return customer_id, channel


def test_the_channels_page_lists_a_published_channel_with_its_version(world, manager, releases, config):  # noqa: F811
    owner, channel = customer_channel(world, config, releases)
    page = manager
    page.goto("/channels")
    expect(page.get_by_role("heading", level=1)).to_have_text("Channels")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=channel, exact=True))
    expect(row).to_contain_text(releases.v2)
    expect(row).to_contain_text("100 %")
    expect(row).to_contain_text("Serving")
    expect(row.locator("time")).to_contain_text(re.compile(r"\d{2}:\d{2} \S+$"))  # the zone is named
    assert_accessible(page)

    # two machines of the customer report a rule of this test's own on a file of its own: counted, far from a halt
    rule = f"webtest.Probe_{uuid.uuid4().hex[:8]}"
    with db.transaction(world.sessions) as s:
        user = Builder(s, config).person("customer", customer_id=owner)
        for _ in range(2):
            report(s, config, user, version=releases.v2, sha256=uuid.uuid4().hex * 2, rule=rule)
    row.get_by_role("link", name=channel).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Channel {channel}")
    counted = page.locator("table.rules tbody tr").filter(has_text=rule)
    expect(counted.locator("td")).to_have_text(["2", "1", "0", "no"])  # clients, organisations, before, halts
    expect(page.locator("table.detections tbody tr").filter(has_text=rule)).to_have_count(2)
    assert_accessible(page)


def test_a_release_manager_reverts_with_a_reason_and_the_history_shows_it(world, manager, releases, config):  # noqa: F811
    _, channel = customer_channel(world, config, releases)
    page = manager
    page.goto(f"/channels/{channel}")
    page.get_by_label("Go back to").select_option(releases.v1)
    page.get_by_label("Reason for the revert").fill("customers report the payroll tool quarantined")
    page.get_by_role("button", name="Revert").click()

    expect(page.get_by_role("status")).to_have_text("The channel was reverted.")
    newest = page.locator("table.history tbody tr").first
    expect(newest).to_contain_text("Reverted")
    expect(newest).to_contain_text("customers report the payroll tool quarantined")
    expect(newest).to_contain_text(f"{releases.v2} → {releases.v1}")
    with db.transaction(world.sessions) as s:
        assert s.get(ChannelPointer, channel).version == releases.v1


def test_the_revert_button_is_shown_only_to_those_the_table_allows_and_checked_again(world, sign_in, releases, config):  # noqa: F811
    _, channel = customer_channel(world, config, releases)
    page = sign_in(world.user("triage"))
    page.goto(f"/channels/{channel}")
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    expect(page.get_by_role("button", name="Revert")).to_have_count(0)
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)

    forged = sign_in_http(world, world.user("triage")).post(f"/channels/{channel}/revert", {"reason": "just trying"})
    assert forged.status_code == 403 and "may not revert update channels" in forged.text
    with db.transaction(world.sessions) as s:
        assert s.get(ChannelPointer, channel).version == releases.v2


def test_another_customers_private_channel_is_a_404_page(world, sign_in, releases, config):  # noqa: F811
    owner, channel = customer_channel(world, config, releases, releases.v1)
    own = sign_in_http(world, world.user("customer", owner))
    assert own.page(f"/channels/{channel}").status_code == 200
    assert "Telemetry that could halt it" not in own.page(f"/channels/{channel}").text  # staff only

    stranger = sign_in(world.user("customer", world.customer()))
    answer = stranger.goto(f"/channels/{channel}")
    assert answer.status == 404
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Not found")
    assert channel not in stranger.content()
    stranger.goto("/channels")
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Channels")
    expect(stranger.get_by_role("link", name=channel)).to_have_count(0)
    # the same page as for a channel that does not exist, and no revert either
    assert own.page("/channels/customer-nobody").status_code == 404
    assert own.post(f"/channels/customer-{world.customer()}/revert", {"reason": "not mine"}).status_code == 404


def test_a_halted_channel_says_why_and_a_release_manager_resumes_it(world, manager, releases, config):  # noqa: F811
    _, channel = customer_channel(world, config, releases)
    decision = HaltDecision(
        channel=channel,
        version=releases.v2,
        revert_to=releases.v1,
        request_id=None,
        reason="5 detections by the base on known-clean files from 4 clients of 1 organisations",
    )
    with db.transaction(world.sessions) as s:
        stopping.halt(s, channel=channel, decision=decision, config=config, now=db_now(s))

    page = manager
    page.goto("/channels")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=channel, exact=True))
    expect(row).to_contain_text("Halted")
    expect(row).to_contain_text("known-clean files from 4 clients")
    row.get_by_role("link", name=channel).click()
    expect(page.get_by_role("alert")).to_contain_text("known-clean files from 4 clients")
    expect(page.get_by_text("Not evaluated while the channel is halted")).to_be_visible()
    assert_accessible(page)  # both forms, the halt alert, the history
    page.get_by_label("Reason for resuming").fill("the files were mislabelled as clean; base is fine")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_have_text("The channel takes publishes again.")
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    with db.transaction(world.sessions) as s:
        assert s.get(ChannelPointer, channel).halted_at is None


def test_a_revert_needs_a_reason(world, releases, config):  # noqa: F811
    _, channel = customer_channel(world, config, releases)
    me = sign_in_http(world, world.user("release_manager"))
    answer = me.post(f"/channels/{channel}/revert", {"reason": " "})
    assert answer.status_code == 422 and "reason" in answer.text


def report(session, config, person: Person, *, version: str, sha256: str, rule: str = RULE) -> None:
    client, _ = clients.enrol(session, person=person, data=ClientEnrolIn(name=f"ws-{uuid.uuid4().hex[:6]}"))
    batch = DetectionBatch(
        batch_id=uuid.uuid4(),
        sent_at=datetime.now(UTC),
        detections=[{"base_version": version, "rule": rule, "file_sha256": sha256, "verdict": "detected"}],
    )
    telemetry.record_detections(session, client=client, batch=batch, config=config)


def test_the_telemetry_shown_is_counted_as_the_halt_rule_counts_it(session, config, releases):  # noqa: F811
    """In a transaction rolled back afterwards: these detections never reach other tests' channels."""
    b = Builder(session, config)
    customer = b.customer()
    channel = f"customer-{customer.id}"
    put(session, channel, releases.v1, releases.v2, config=config)
    user = b.person("customer", customer_id=customer.id)
    staff = b.person("release_manager")
    now = db_now(session)

    for _ in range(3):  # three clients: not above the limit of 3 (client, file) detections of clean files
        report(session, config, user, version=releases.v2, sha256=releases.fp_sha256)
    watch = serving.channel_telemetry(session, viewer=staff, channel=channel, config=config, now=now)
    assert (watch.clean_detections, watch.clean_clients, watch.clean_organisations) == (3, 3, 1)
    assert watch.min_organisations == 1  # a customer's own channel: one organisation reads it
    assert (
        not watch.clean_would_halt and telemetry.evaluate_halt(session, channel=channel, config=config, now=now) is None
    )

    report(session, config, user, version=releases.v2, sha256=releases.fp_sha256)
    watch = serving.channel_telemetry(session, viewer=staff, channel=channel, config=config, now=now)
    assert watch.clean_detections == 4 and watch.clean_would_halt
    assert telemetry.evaluate_halt(session, channel=channel, config=config, now=now) is not None
    [rule] = watch.rules
    assert (rule.rule, rule.clients, rule.organisations, rule.would_halt) == (RULE, 4, 1, False)  # not a spike
    assert len(watch.recent) == 4 and {d.organisation for d in watch.recent} == {customer.id}

    assert serving.channel_telemetry(session, viewer=user, channel=channel, config=config, now=now) is None
    stranger = b.person("customer", customer_id=b.customer().id)
    with pytest.raises(Exception, match="no channel"):
        serving.channel_telemetry(session, viewer=stranger, channel=channel, config=config, now=now)


def test_a_customer_reads_who_moved_their_channel_without_the_staff_mailbox(world, releases, config):  # noqa: F811
    owner, channel = customer_channel(world, config, releases)
    manager = world.user("release_manager")
    with world.client(manager) as c:
        moved = c.post(f"/api/v1/channels/{channel}/revert", json={"reason": "payroll tool quarantined"})
    assert moved.status_code == 200, moved.text
    customer = world.user("customer", owner)
    with world.client(customer) as c:
        history = c.get(f"/api/v1/channels/{channel}/history").json()
        listed = [ch for ch in c.get("/api/v1/channels").json() if ch["channel"] == channel]
    assert history[-1]["actor"].startswith(manager.name) and "@" not in history[-1]["actor"]
    assert "@" not in listed[0]["updated_by"]
    page = sign_in_http(world, customer).page(f"/channels/{channel}").text
    assert manager.name in page and "@example.com" not in page
