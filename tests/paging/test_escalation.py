"""Starting a page, climbing the chain when nobody acknowledges, one page per request, and who is not paged."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from release_requests import db
from release_requests.clock import db_now
from release_requests.errors import Conflict
from release_requests.paging import service as paging
from release_requests.people.models import Person
from release_requests.requests import service as requests
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.schemas import Respond
from release_requests.routing.service import choose_owner
from release_requests.sla.service import status_of
from tests.paging.conftest import INTERNAL, noon_zone, with_head


@pytest.fixture
def rota(scene):
    """A customer with no TAM; a manager on a shift now, a fallback manager, a head of support (admin)."""
    now = scene.now()
    on_duty, fallback, head = scene.person("duty_manager"), scene.person("duty_manager"), scene.person("admin")
    scene.shift(on_duty, now - timedelta(hours=1), now + timedelta(hours=8))
    scene.fallback(fallback)
    scene.config = with_head(scene.config, head.email)
    return scene.customer(), on_duty, fallback, head


def test_an_unacknowledged_page_climbs_the_chain_until_it_is_exhausted(scene, rota, engine, caplog):
    customer, on_duty, fallback, head = rota
    request_id = scene.file(customer, by=on_duty)
    page = scene.page(request_id)
    assert page.status == "paging" and page.dedup_key == f"release-requests/{request_id}"
    assert [e["role"] for e in page.chain] == ["on duty", "duty fallback", "head of support"]
    assert [e["person_id"] for e in page.chain] == [on_duty.id, fallback.id, head.id]
    assert page.escalate_at - page.paged_at == timedelta(minutes=scene.config.paging.ack_minutes["1"])
    sent = scene.rows(request_id, "page.sent")
    assert {(r.channel, r.recipient) for r in sent} == {("slack", on_duty.slack_user_id), ("email", on_duty.email)}
    [pager] = scene.rows(request_id, "page.pager")
    assert (pager.channel, pager.recipient) == ("pager", "pager")
    assert pager.context["action"] == "trigger" and pager.context["dedup_key"] == page.dedup_key
    assert "Payroll" not in str(pager.context)  # never the customer's words in the third party's incident

    sessions = db.make_sessionmaker(engine)
    assert paging.escalate_due(sessions, config=scene.config, now=page.paged_at + timedelta(minutes=5)) == []
    steps = []
    at = page.escalate_at
    for _ in range(3):
        at += timedelta(seconds=1)
        with caplog.at_level(logging.ERROR, logger="release_requests.paging.service"):
            [escalation] = paging.escalate_due(sessions, config=scene.config, now=at)
        steps.append((escalation.outcome, escalation.to_person))
        at = scene.page(request_id).escalate_at or at
    assert steps == [("escalated", fallback.name), ("escalated", head.name), ("exhausted", None)]
    page = scene.page(request_id)
    assert (page.status, page.step, page.escalate_at) == ("exhausted", 2, None)
    escalated = scene.events(request_id, "page.escalated")
    assert [e.after["person"] for e in escalated] == [fallback.name, head.name]
    assert escalated[0].reason.startswith(f"{on_duty.name} (on duty) did not acknowledge in 10 min")
    assert escalated[0].after["unacknowledged_minutes"] >= 10
    assert {r.recipient for r in scene.rows(request_id, "page.sent")} >= {fallback.email, head.slack_user_id}
    assert sorted(r.context["step"] for r in scene.rows(request_id, "page.pager")) == [1, 2, 3]
    exhausted = scene.rows(request_id, "page.exhausted")
    assert INTERNAL in {r.recipient for r in exhausted}
    assert {on_duty.email, fallback.slack_user_id, head.email} <= {r.recipient for r in exhausted}
    assert any(r.levelname == "ERROR" and r.request_id == request_id for r in caplog.records)
    assert paging.escalate_due(sessions, config=scene.config, now=at + timedelta(hours=1)) == []  # nobody is left

    # answered at last: the exhausted page is resolved, and so is the paging service's incident
    with db.transaction(sessions) as s:
        respond = Respond(message="On it.")
        requests.respond(s, actor=s.get(Person, fallback.id), request_id=request_id, data=respond, config=scene.config)
    [resolved] = paging.escalate_due(sessions, config=scene.config)
    assert (resolved.request_id, resolved.outcome) == (request_id, "resolved")
    page = scene.page(request_id)
    assert (page.status, page.resolved_at) == ("resolved", resolved.at)
    assert scene.events(request_id, "page.resolved")[0].before == {"status": "exhausted"}
    assert scene.rows(request_id, "page.pager")[-1].context["action"] == "resolve"
    assert paging.escalate_due(sessions, config=scene.config) == []


def test_acknowledging_stops_the_climb_but_not_the_sla_clock(scene, rota, engine):
    customer, on_duty, fallback, head = rota
    request_id = scene.file(customer, by=on_duty)
    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:
        page = paging.acknowledge(
            s, actor=s.get(Person, fallback.id), request_id=request_id, via="cli", config=scene.config
        )
        assert (page.status, page.acknowledged_by_id, page.acknowledged_via) == ("acknowledged", fallback.id, "cli")
    with db.transaction(sessions) as s, pytest.raises(Conflict, match=f"already acknowledged by {fallback.name} at"):
        paging.acknowledge(s, actor=s.get(Person, on_duty.id), request_id=request_id, via="api", config=scene.config)
    assert paging.escalate_due(sessions, config=scene.config, now=scene.now() + timedelta(hours=2)) == []
    assert scene.page(request_id).step == 0
    [ack] = scene.rows(request_id, "page.pager")[1:]
    assert ack.context["action"] == "acknowledge"
    assert [r.recipient for r in scene.rows(request_id, "page.acknowledged")] == [INTERNAL]
    with db.transaction(sessions) as s:
        request = s.get(ReleaseRequest, request_id)
        assert request.status == "submitted"
        assert status_of(s, request=request, config=scene.config, now=db_now(s)).met_at is None  # the clock runs

        requests.respond(
            s,
            actor=s.get(Person, fallback.id),
            request_id=request_id,
            data=Respond(message="On it."),
            config=scene.config,
        )
    [resolved] = paging.escalate_due(sessions, config=scene.config)
    assert resolved.outcome == "resolved" and scene.page(request_id).status == "resolved"
    assert scene.rows(request_id, "page.pager")[-1].context["action"] == "resolve"


def test_one_request_is_one_page(scene, rota, engine):
    customer, on_duty, *_ = rota
    request_id = scene.file(customer, by=on_duty)
    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:
        request = s.get(ReleaseRequest, request_id)
        routing = choose_owner(s, customer_id=customer, at=request.received_at)
        assert paging.start_page(s, request=request, routing=routing, config=scene.config, at=db_now(s)) is None
    assert len(scene.rows(request_id, "page.pager")) == 1
    assert len(scene.events(request_id, "page.started")) == 1

    at = scene.page(request_id).escalate_at + timedelta(seconds=1)
    barrier, results = threading.Barrier(2), []

    def watcher():
        barrier.wait()
        results.append(paging.escalate_due(sessions, config=scene.config, now=at))

    threads = [threading.Thread(target=watcher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(len(r) for r in results) == [0, 1]
    assert len(scene.events(request_id, "page.escalated")) == 1
    assert len(scene.rows(request_id, "page.pager")) == 2


def test_a_tam_at_work_and_severity_3_page_nobody(scene, rota):
    customer, on_duty, *_ = rota
    scene.person("tam", tam_for=(customer,), working_hours="mon-sun 00:00-23:59")  # in UTC, every day
    taken = scene.file(customer, by=on_duty)
    assert scene.page(taken) is None and scene.events(taken, "page.") == []
    assert scene.rows(taken, "page.sent") == scene.rows(taken, "page.pager") == []
    assert [e.after["owner"] for e in scene.events(taken, "request.routed")][0].startswith("Tam ")

    other = scene.customer()
    minor = scene.file(other, by=on_duty, severity=3)
    assert scene.page(minor) is None and scene.events(minor, "page.") == []


def test_nobody_on_duty_alerts_every_duty_manager_logs_an_error_and_pages_the_head(scene, caplog):
    customer = scene.customer()
    managers = [scene.person("duty_manager"), scene.person("duty_manager", slack=False)]
    head = scene.person("admin")
    filer = scene.person("triage")
    config = with_head(scene.config, str(head.id))
    with caplog.at_level(logging.ERROR, logger="release_requests.paging.service"):
        request_id = scene.file(customer, by=filer, config=config)
    alerts = {r.recipient for r in scene.rows(request_id, "duty.nobody_on_duty")}
    assert {INTERNAL, managers[0].slack_user_id, managers[0].email, managers[1].email, head.email} <= alerts
    assert filer.email not in alerts  # triage does not take duty
    [logged] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.request_id == request_id and "nobody on duty" in logged.getMessage()
    assert (
        scene.events(request_id, "duty.nobody_on_duty")[0].reason
        == "customer has no TAM; rotation gap and no fallback person configured"
    )
    page = scene.page(request_id)
    assert [(e["person_id"], e["role"]) for e in page.chain] == [(head.id, "head of support")]
    assert {r.recipient for r in scene.rows(request_id, "page.sent")} == {head.slack_user_id, head.email}


def test_a_misconfigured_head_of_support_is_reported_not_a_crash(scene, caplog):
    customer, filer = scene.customer(), scene.person("triage")
    build_engineer = scene.person("build_engineer")
    for ref, words in (("nobody@vendor.example", "names nobody"), (build_engineer.email, "has role 'build_engineer'")):
        with caplog.at_level(logging.ERROR, logger="release_requests.paging.service"):
            request_id = scene.file(customer, by=filer, config=with_head(scene.config, ref))
        page = scene.page(request_id)
        assert (page.status, page.chain) == ("exhausted", [])
        assert words in scene.events(request_id, "page.started")[0].after["head_of_support_problem"]
        assert any(words in r.getMessage() for r in caplog.records)


def test_a_severity_taken_out_of_ack_minutes_climbs_at_the_slowest_configured_pace(scene, rota, engine):
    customer, on_duty, fallback, _ = rota
    request_id = scene.file(customer, by=on_duty, severity=2)
    # severity 2 no longer pages, and its ack_minutes went with it, while its page is live
    paging_config = scene.config.paging.model_copy(update={"severities": [1], "ack_minutes": {"1": 10, "3": 45}})
    config = scene.config.model_copy(update={"paging": paging_config})
    at = scene.page(request_id).escalate_at + timedelta(seconds=1)
    [escalation] = paging.escalate_due(db.make_sessionmaker(engine), config=config, now=at)
    assert (escalation.outcome, escalation.to_person) == ("escalated", fallback.name)
    assert scene.page(request_id).escalate_at - at == timedelta(minutes=45)  # the largest configured wait
    assert {r.context["ack_minutes"] for r in scene.rows(request_id, "page.sent") if r.recipient == fallback.email} == {
        45
    }


def test_one_page_that_fails_does_not_stop_the_others(scene, rota, engine, caplog):
    customer, on_duty, fallback, _ = rota
    broken = scene.file(customer, by=on_duty)  # its next step is `fallback`
    other_fallback = scene.person("duty_manager")
    scene.fallback(other_fallback)
    fine = scene.file(scene.customer(), by=on_duty)  # its next step is `other_fallback`
    with db.transaction(scene.sessions) as s:  # a zone the server's tzdata no longer knows
        s.execute(update(Person).where(Person.id == fallback.id).values(timezone="Mars/Olympus_Mons"))
    at = max(scene.page(broken).escalate_at, scene.page(fine).escalate_at) + timedelta(seconds=1)
    sessions = db.make_sessionmaker(engine)
    with caplog.at_level(logging.ERROR, logger="release_requests.paging.service"):
        [escalation] = paging.escalate_due(sessions, config=scene.config, now=at)
    assert (escalation.request_id, escalation.to_person) == (fine, other_fallback.name)
    [failed] = [r for r in caplog.records if getattr(r, "event", None) == "page.watch_failed"]
    assert failed.request_id == broken and failed.exc_info is not None and broken in failed.getMessage()
    page = scene.page(broken)
    assert (page.status, page.step) == ("paging", 0)  # rolled back whole: tried again next pass
    assert scene.events(broken, "page.escalated") == [] and len(scene.rows(broken, "page.pager")) == 1

    with db.transaction(scene.sessions) as s:
        s.execute(update(Person).where(Person.id == fallback.id).values(timezone="Europe/Moscow"))
    [escalation] = paging.escalate_due(sessions, config=scene.config, now=at)
    assert (escalation.request_id, escalation.to_person) == (broken, fallback.name)


def test_a_call_logged_late_pages_who_is_on_duty_now(scene, engine):
    """A call that came in longer ago than a step waits (10 min at severity 1) is routed as of the call — the
    manager of that night owns it — but pages whoever is on duty now; a TAM at work now takes it unpaged."""
    now = scene.now()
    night, day, filer = scene.person("duty_manager"), scene.person("duty_manager"), scene.person("triage")
    scene.shift(night, now - timedelta(hours=6), now - timedelta(minutes=3))
    scene.shift(day, now - timedelta(minutes=3), now + timedelta(hours=8))
    customer = scene.customer()

    late = scene.file(customer, by=filer, received_at=now - timedelta(hours=3))
    assert scene.events(late, "request.routed")[0].after["owner_id"] == night.id
    page = scene.page(late)
    assert [(e["person_id"], e["role"]) for e in page.chain] == [(day.id, "on duty")]
    assert scene.events(late, "page.started")[0].reason.startswith("logged 180 min after the customer reached us")
    assert {r.recipient for r in scene.rows(late, "page.sent")} == {day.slack_user_id, day.email}

    recent = scene.file(customer, by=filer, received_at=now - timedelta(minutes=5))  # within the 10 min
    assert scene.page(recent).chain[0]["person_id"] == night.id

    zone = noon_zone()  # the TAM works 11:00-14:00 there: now, but not three hours ago
    tam_customer = scene.customer()
    scene.person("tam", tam_for=(tam_customer,), timezone=zone, working_hours="mon-sun 11:00-14:00")
    taken = scene.file(tam_customer, by=filer, received_at=now - timedelta(hours=3))
    assert scene.events(taken, "request.routed")[0].after["owner_id"] == night.id
    assert scene.page(taken) is None and scene.rows(taken, "page.pager") == []
