"""The report's figures: periods, the pure rules over events at fixed times, and the service over requests built
through the real API (the story), Health Checks and notes, a real release to the customer's channel, the digest."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.config import load_config
from release_requests.customers.models import Customer
from release_requests.errors import InvalidInput
from release_requests.healthchecks.models import HealthCheck, HealthCheckFinding
from release_requests.people.models import Person
from release_requests.pipeline.models import Build
from release_requests.reports import figures, periods
from release_requests.reports.figures import Event, RequestFacts
from release_requests.reports.models import ReportNote
from release_requests.reports.service import build_customer_report, build_daily_digest, daily_digest
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.schemas import Duplicate
from release_requests.sla.calendar import BusinessCalendar
from release_requests.workflows import intake
from tests.conftest import REPO, Builder
from tests.pipeline.driving import new_request, release, sample_bytes
from tests.reports.conftest import ZONE, check_figures

# --- periods -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "start", "end", "name"),
    [
        ("2026Q4", date(2026, 10, 1), date(2026, 12, 31), "2026Q4"),
        ("2026q1", date(2026, 1, 1), date(2026, 3, 31), "2026Q1"),
        ("2028Q1", date(2028, 1, 1), date(2028, 3, 31), "2028Q1"),
        ("2026Q2", date(2026, 4, 1), date(2026, 6, 30), "2026Q2"),
    ],
)
def test_quarters(label, start, end, name):
    assert periods.quarter(label).model_dump() == {"start": start, "end": end, "label": name}


@pytest.mark.parametrize("label", ["2026Q5", "2026Q0", "26Q1", "2026-Q4", "Q4 2026", "0000Q1", "2026Q4x", ""])
def test_a_quarter_that_is_not_one_names_the_field_and_the_form(label):
    with pytest.raises(InvalidInput) as refused:
        periods.quarter(label)
    assert refused.value.field == "quarter"
    assert f"quarter '{label}'" in refused.value.message and "YYYYQ1..YYYYQ4" in refused.value.message


def test_between_and_its_refusals():
    assert periods.between(date(2026, 10, 1), date(2026, 10, 1)).label == "2026-10-01..2026-10-01"
    with pytest.raises(InvalidInput) as backwards:
        periods.between(date(2026, 10, 2), date(2026, 10, 1))
    assert backwards.value.field == "to" and "before 'from'" in backwards.value.message
    assert periods.between(date(2024, 1, 1), date(2026, 12, 31)).end == date(2026, 12, 31)  # 1,096 days
    with pytest.raises(InvalidInput) as long:
        periods.between(date(2023, 1, 1), date(2026, 12, 31))
    assert long.value.field == "to" and "3 years" in long.value.message


@pytest.mark.parametrize(
    ("quarter", "start", "end", "field", "words"),
    [
        ("2026Q4", date(2026, 1, 1), None, "quarter", "not both"),
        ("2026Q4", None, date(2026, 1, 1), "quarter", "not both"),
        (None, None, None, "quarter", "'from' and 'to'"),
        (None, date(2026, 1, 1), None, "to", "'to' is missing"),
        (None, None, date(2026, 1, 1), "from", "'from' is missing"),
    ],
)
def test_a_period_is_a_quarter_or_from_and_to(quarter, start, end, field, words):
    with pytest.raises(InvalidInput) as refused:
        periods.from_query(quarter_label=quarter, start=start, end=end)
    assert refused.value.field == field and words in refused.value.message


def test_a_period_is_whole_local_days_in_the_customers_zone():
    start, end = periods.utc_range(periods.quarter("2026Q4"), ZONE)
    assert start == datetime(2026, 9, 30, 21, tzinfo=UTC) and end == datetime(2026, 12, 31, 21, tzinfo=UTC)
    # a DST change inside the period (New York, 2026-11-01): still from local midnight to local midnight
    new_york = ZoneInfo("America/New_York")
    start, end = periods.utc_range(periods.between(date(2026, 10, 31), date(2026, 11, 1)), new_york)
    assert (start, end) == (datetime(2026, 10, 31, 4, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC))


# --- the rules, over events at fixed times -------------------------------------------------------------------

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=ZONE)  # a Monday, 09:00 Moscow
CAL = BusinessCalendar(timezone="Europe/Moscow", country="RU")


POLICIES = load_config(REPO / "config").severity


def policy_for(severity: int):
    return POLICIES.for_request(severity=severity, tier="enterprise")


def ev(minutes: float, action: str, **after) -> Event:
    return Event("R", T0 + timedelta(minutes=minutes), action, "request", after)


def submitted(severity: int, at: datetime = T0) -> Event:
    return Event("R", at, "request.submitted", "request", {"received_at": at.isoformat(), "severity": severity})


def judge(severity: int, events: list[Event], *, as_of_minutes: float = 24 * 60, received: datetime = T0):
    request = RequestFacts("R", "false_positive", severity, "phone", "submitted", received)
    return figures.assess(request, events, policy_for=policy_for, cal=CAL, as_of=T0 + timedelta(minutes=as_of_minutes))


def test_a_needs_info_pause_is_not_counted():
    # severity 2 (240 min, 24x7): asked at +60, answered at +180, accepted at +250 → 130 min on the clock
    a = judge(
        2,
        [
            submitted(2),
            ev(60, "request.needs_info", status="needs_info"),
            ev(180, "request.answered", status="submitted"),
            ev(250, "request.accepted", status="accepted"),
        ],
    )
    assert (a.row.sla, a.row.first_response_minutes, a.row.paused_minutes) == ("met", 130.0, 120.0)
    assert a.row.due_at == T0 + timedelta(minutes=360) and a.row.status == "accepted"
    assert a.decided_at == a.accepted_at == T0 + timedelta(minutes=250) and a.breach is None


def test_the_business_clock_counts_business_minutes():
    # severity 3 (360 business min): Friday 15:00 → Monday 12:00 is 3 h + 3 h of business time: met exactly
    friday = datetime(2026, 11, 6, 15, 0, tzinfo=ZONE)
    monday_noon = datetime(2026, 11, 9, 12, 0, tzinfo=ZONE)
    responded = Event("R", monday_noon, "request.responded", "request", {})
    a = judge(3, [submitted(3, friday), responded], received=friday, as_of_minutes=10 * 24 * 60)
    assert (a.row.sla, a.row.first_response_minutes, a.row.due_at) == ("met", 360.0, monday_noon)


def test_a_severity_raised_mid_way_counts_the_new_target_from_receipt():
    a = judge(
        2, [submitted(2), ev(20, "request.severity_changed", severity=1), ev(45, "request.responded")], as_of_minutes=50
    )
    assert (a.row.severity, a.row.severity_changes, a.row.target_minutes, a.row.sla) == (1, 1, 30, "breached")
    assert a.breach.reason == (
        "answered 15 min after the due time; severity changed 2 → 1: the 30 min target counts from receipt"
    )
    assert (a.breach.late_minutes, a.breach.severity_path, a.breach.responded) == (15.0, [2, 1], True)


def test_unanswered_rerouted_and_paused_breach_says_all_of_it():
    a = judge(
        1,
        [
            submitted(1),
            ev(5, "request.needs_info"),
            ev(25, "request.answered"),
            ev(40, "request.rerouted"),
            ev(60, "request.rerouted"),
        ],
        as_of_minutes=200,
    )
    assert a.row.sla == "breached" and a.row.due_at == T0 + timedelta(minutes=50)
    assert a.breach.reason == (
        "no qualified response yet (overdue by 2 h 30 min); waited 20 min for the customer's answer (not counted); "
        "re-routed to another owner 2 times"
    )
    assert a.decided_at == T0 + timedelta(minutes=50) and a.row.first_response_minutes is None


def test_a_cancellation_stops_the_clock_but_is_no_response():
    early = judge(1, [submitted(1), ev(10, "request.cancelled", status="cancelled")])
    assert (early.row.sla, early.row.first_response_minutes, early.row.status) == ("met", None, "cancelled")
    late = judge(1, [submitted(1), ev(45, "request.cancelled", status="cancelled")])
    assert late.row.sla == "breached" and (late.breach.responded, late.breach.cancelled) == (False, True)
    assert late.breach.reason == "cancelled 15 min after the due time, with no qualified response before"


def test_running_and_no_clock():
    running = judge(2, [submitted(2)], as_of_minutes=100)
    assert (running.row.sla, running.decided_at, running.breach) == ("running", None, None)
    none = judge(4, [])
    assert (none.row.sla, none.row.due_at, none.row.target_minutes) == ("none", None, 480)


def test_events_after_as_of_are_not_there_and_change_nothing():
    events = [submitted(1), ev(10, "request.accepted")]
    assert judge(1, events[:1], as_of_minutes=5).row == judge(1, events[:1], as_of_minutes=5).row
    assert judge(1, events[:1], as_of_minutes=5).row.sla == "running"


@pytest.mark.parametrize(
    ("values", "p50", "p90"),
    [([], None, None), ([7.0], 7.0, 7.0), ([120, 10, 60, 40], 40, 120), (list(range(1, 11)), 5, 9)],
)
def test_nearest_rank_percentiles(values, p50, p90):
    assert (figures.nearest_rank(values, 0.5), figures.nearest_rank(values, 0.9)) == (p50, p90)


def test_weeks_run_past_the_period_when_an_outcome_was_decided_later():
    period = periods.between(date(2026, 11, 2), date(2026, 11, 8))  # one ISO week
    late = judge(2, [submitted(2), ev(7 * 24 * 60 + 60, "request.responded")], as_of_minutes=8 * 24 * 60)
    weeks = figures.weekly([late], period=period, zone=ZONE)
    assert [(w.week_start, w.met, w.breached, w.attainment_pct) for w in weeks] == [
        (date(2026, 11, 2), 0, 0, None),
        (date(2026, 11, 9), 0, 1, 0.0),
    ]


# --- the service over the story (requests built through the real API) ---------------------------------------


def report_of(session, config, story, **overrides):
    period = periods.between(story.start, story.end)
    arguments = {"customer_id": story.customer_id, "period": period, "config": config, "as_of": story.as_of}
    return build_customer_report(session, **{**arguments, **overrides})


def test_every_figure_of_the_story(session, config, story):
    check_figures(report_of(session, config, story).model_dump(mode="json"), story)


def test_the_same_as_of_gives_the_same_report_and_later_events_are_ignored(session, config, story):
    assert report_of(session, config, story) == report_of(session, config, story)
    # between A's submission and its acceptance: only A existed, and its clock was running
    before = (
        story.at("A", "request.submitted")
        + (story.at("A", "request.accepted") - story.at("A", "request.submitted")) / 2
    )
    early = report_of(session, config, story, as_of=before)
    assert [(r.request_id, r.sla, r.status) for r in early.requests] == [(story.ids["A"], "running", "submitted")]
    assert (early.sla_running, early.sla_attainment_pct, early.first_response_p50_minutes) == (1, None, None)


def test_healthchecks_and_notes_of_the_period(session, config, build):
    customer = build.customer()
    engineer, tam = build.person("build_engineer"), build.person("tam", tam_for=[customer.id])
    now = datetime.now(UTC)

    def check(day: date, status: str, findings: tuple[str, ...] = ()) -> HealthCheck:
        row = HealthCheck(
            customer_id=customer.id,
            engineer_id=engineer.id,
            scheduled_on=day,
            certificate_year_start=date(day.year, 1, 1),
            status=status,
            booked_by_id=tam.id,
            booked_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        for severity in findings:
            session.add(
                HealthCheckFinding(
                    healthcheck_id=row.id,
                    product="Endpoint",
                    area="scan",
                    setting="heuristics",
                    found="off",
                    severity=severity,
                    recommendation="turn it on",
                )
            )
        return row

    older = check(date(2024, 5, 1), "report_delivered", ("high",))
    latest = check(date(2025, 5, 1), "report_delivered", ("critical", "high", "high"))
    check(date(2026, 2, 1), "cancelled")  # before the period, cancelled: not the latest one that counts
    inside = check(date(2026, 11, 10), "booked")
    check(date(2027, 1, 15), "booked")  # after the period
    for start, end, body in [
        (date(2026, 10, 1), date(2026, 12, 31), "Q4: fewer false positives"),
        (date(2026, 12, 31), date(2027, 1, 31), "overlaps by one day"),
        (date(2026, 7, 1), date(2026, 9, 30), "Q3 only"),
    ]:
        session.add(
            ReportNote(customer_id=customer.id, period_start=start, period_end=end, body=body, author_id=tam.id)
        )
    session.flush()
    report = build_customer_report(
        session, customer_id=customer.id, period=periods.quarter("2026Q4"), config=config, as_of=now
    )
    assert older.id not in [h.id for h in report.healthchecks]
    summaries = [
        (h.id, h.scheduled_on, h.status, h.engineer, h.findings, h.findings_by_severity) for h in report.healthchecks
    ]
    assert summaries == [
        (
            latest.id,
            date(2025, 5, 1),
            "report_delivered",
            engineer.name,
            3,
            {"critical": 1, "high": 2, "medium": 0, "low": 0},
        ),
        (inside.id, date(2026, 11, 10), "booked", engineer.name, 0, {"critical": 0, "high": 0, "medium": 0, "low": 0}),
    ]
    assert [(n.body, n.author) for n in report.notes] == [
        ("Q4: fewer false positives", tam.name),
        ("overlaps by one day", tam.name),
    ]
    assert report.requests_total == 0 and report.sla_attainment_pct is None and report.by_severity["1"] == 0


def test_releases_delivered_to_the_customers_channel(world_pipeline, staff, config):
    """A real pipeline run: the fix of one request, and of a duplicate of it from the same customer, reaches the
    customer's own channel; acceptance to channel is measured from the log."""
    w = world_pipeline
    primary = new_request(w, staff, sample_bytes(w, "report"))
    with db.transaction(w.seg.sessions) as s:
        customer = s.get(Customer, s.get(ReleaseRequest, primary).customer_id)
        b = Builder(s, w.config)
        duplicate = b.request(by=b.person("tam", tam_for=[customer.id]), customer=customer, severity=2)
        customer_id = customer.id
    with db.transaction(w.seg.sessions) as s:
        intake.triage(
            s,
            actor=staff["triage"],
            request_id=duplicate.id,
            decision=Duplicate(decision="duplicate", duplicate_of=primary),
            config=w.config,
        )
    release(w, staff, primary, ["internal", "canary", "customer"])
    with db.transaction(w.seg.sessions) as s:
        as_of = datetime.now(UTC)
        today = as_of.astimezone(ZONE).date()
        period = periods.between(today - timedelta(days=1), today)
        report = build_customer_report(s, customer_id=customer_id, period=period, config=w.config, as_of=as_of)
        version = s.scalar(select(Build.version).where(Build.request_id == primary))
        events = {
            (e.request_id, e.action): e.occurred_at
            for e in s.scalars(select(AuditEvent).where(AuditEvent.request_id.in_([primary, duplicate.id])))
        }
        digest = build_daily_digest(s, customer_ids={customer_id}, as_of=as_of, config=w.config)
    published = events[(primary, "channel.published")]  # the last publication: the customer's channel
    rows = [(r.request_id, r.kind, r.version, r.channel, r.accepted_at) for r in report.releases]
    assert rows == sorted(
        [
            (primary, "base", version, f"customer-{customer_id}", events[(primary, "request.accepted")]),
            (duplicate.id, "base", version, f"customer-{customer_id}", events[(duplicate.id, "request.duplicate")]),
        ]
    )
    for r in report.releases:
        assert r.delivered_at <= published
        assert r.hours_to_deliver == round((r.delivered_at - r.accepted_at).total_seconds() / 3600, 1)
    steps = {row.request_id: (row.status, row.next_step, row.next_step_detail) for row in digest.rows}
    assert steps[primary] == ("awaiting_approval", "awaiting sign-off of stage global", "global")
    assert steps[duplicate.id] == ("duplicate", "follows the fix of the request it duplicates", None)


# --- the digest ---------------------------------------------------------------------------------------------


def test_the_digest_of_the_story(session, config, story):
    ids = story.ids
    digest = build_daily_digest(session, customer_ids={story.customer_id}, as_of=story.as_of, config=config)
    assert digest.customer_id == story.customer_id and digest.since == story.as_of - timedelta(hours=24)
    # severity 1–2 only (E, F are 3 and 4); most urgent first: severity, then due time (X was due days ago)
    assert [r.request_id for r in digest.rows] == [ids[x] for x in "GBDAXC"]
    rows = {r.request_id: r for r in digest.rows}
    assert {x: (rows[ids[x]].status, rows[ids[x]].next_step) for x in "GBDAXC"} == {
        "G": ("submitted", "awaiting triage"),
        "B": ("submitted", "awaiting triage"),
        "D": ("submitted", "awaiting triage"),
        "A": ("accepted", "building a fix"),
        "X": ("submitted", "awaiting triage"),
        "C": ("accepted", "building a fix"),
    }
    assert {x: rows[ids[x]].sla_state for x in "GBDAXC"} == {
        "G": "breached",
        "B": "breached",
        "D": "breached",
        "A": "met",
        "X": "breached",
        "C": "met",
    }
    assert rows[ids["G"]].due_at == story.received["G"] + timedelta(minutes=30)
    # the owner's name (the API's request shows it with the role: "Ann Lee (tam)"); None: nobody was available
    owners = {x: story.owners[x] and story.owners[x].rsplit(" (", 1)[0] for x in "GBDAXC"}
    assert {x: rows[ids[x]].owner for x in "GBDAXC"} == owners
    assert rows[ids["C"]].changed_at == story.events["C"][-1][0]
    assert rows[ids["A"]].title == "Request A: <b>payroll</b> flagged"  # as typed: renderings escape it


def test_the_digest_follows_visibility(session, config, story):
    mine = {story.ids[x] for x in "GBDAXC"}

    def seen(user) -> set[str]:
        person = session.get(Person, user.id)
        return {r.request_id for r in daily_digest(session, actor=person, as_of=story.as_of, config=config).rows}

    assert seen(story.tam) == mine  # their one customer
    theirs = seen(story.other_customer_user)
    assert story.ids["Y"] in theirs and not theirs & mine
    assert not seen(story.other_tam) & mine
    assert mine | {story.ids["Y"]} <= seen(story.admin)  # staff: every customer
