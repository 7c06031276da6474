"""The report's figures: periods, the pure rules over events at fixed times, and the service over requests built
through the real API (the story), Health Checks and notes, a real release to the customer's channel, the digest."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.audit.service import Actor, record
from release_requests.config import load_config
from release_requests.customers.models import Customer
from release_requests.errors import InvalidInput
from release_requests.healthchecks.models import HealthCheck, HealthCheckFinding
from release_requests.notifications.service import Recipient, queue
from release_requests.people.models import Person
from release_requests.pipeline.models import Build
from release_requests.reports import figures, periods
from release_requests.reports.figures import Event, RequestFacts
from release_requests.reports.models import ReportNote
from release_requests.reports.service import build_customer_report, build_daily_digest, daily_digest
from release_requests.requests import service as requests_service
from release_requests.requests.models import ReleaseRequest
from release_requests.requests.presentation import ROUTING_ACTIONS
from release_requests.requests.schemas import Accept, Cancel, Duplicate, Respond
from release_requests.sla.calendar import BusinessCalendar, due_at
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


@pytest.mark.parametrize("label", ["2026Q5", "2026Q0", "26Q1", "2026-Q4", "Q4 2026", "2026Q4x", ""])
def test_a_quarter_that_is_not_one_names_the_field_and_the_form(label):
    with pytest.raises(InvalidInput) as refused:
        periods.quarter(label)
    assert refused.value.field == "quarter"
    assert f"quarter '{label}'" in refused.value.message and "YYYYQ1..YYYYQ4" in refused.value.message


def test_a_quarter_of_year_zero_is_refused_naming_it():
    with pytest.raises(InvalidInput) as refused:
        periods.quarter("0000Q1")
    assert refused.value.field == "quarter" and "quarter '0000Q1'" in refused.value.message


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
    assert a.row.decided_at == a.row.first_response_at == T0 + timedelta(minutes=250) and a.breach is None


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
    assert a.row.decided_at == a.row.due_at == T0 + timedelta(minutes=50) and a.row.first_response_minutes is None


def test_a_cancellation_before_any_response_is_withdrawn_not_met():
    early = judge(1, [submitted(1), ev(10, "request.cancelled", status="cancelled")])
    assert (early.row.sla, early.row.first_response_minutes, early.row.status) == ("withdrawn", None, "cancelled")
    assert early.row.decided_at == T0 + timedelta(minutes=10) and early.breach is None
    # answered first, then cancelled: our answer met the clock
    answered = judge(1, [submitted(1), ev(5, "request.responded"), ev(10, "request.cancelled", status="cancelled")])
    assert (answered.row.sla, answered.row.first_response_minutes) == ("met", 5.0)
    # cancelled after the due time with no answer: still breached, decided when it fell due
    late = judge(1, [submitted(1), ev(45, "request.cancelled", status="cancelled")])
    assert late.row.sla == "breached" and (late.breach.responded, late.breach.cancelled) == (False, True)
    assert late.row.decided_at == T0 + timedelta(minutes=30)
    assert late.breach.reason == "cancelled 15 min after the due time, with no qualified response before"


def test_running_and_no_clock():
    running = judge(2, [submitted(2)], as_of_minutes=100)
    assert (running.row.sla, running.row.decided_at, running.breach) == ("running", None, None)
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


# Q4 ends at midnight Moscow time on 31 December; each request is received on its last evening
NEW_YEAR = datetime(2027, 1, 1, tzinfo=ZONE)
Q4, Q1 = periods.quarter("2026Q4"), periods.quarter("2027Q1")


def quarter_report(period, as_of: datetime, *requests: tuple[int, datetime, list[Event]]):
    """The pure report of `period` over requests (severity, received, events) judged at `as_of`."""
    assessed = [
        figures.assess(
            RequestFacts(f"R{n}", "false_positive", severity, "phone", "submitted", received),
            [e._replace(request_id=f"R{n}") for e in events if e.occurred_at <= as_of],
            policy_for=policy_for,
            cal=CAL,
            as_of=as_of,
        )
        for n, (severity, received, events) in enumerate(requests)
    ]
    return figures.customer_report(
        customer_id="c",
        customer_name="C",
        cal=CAL,
        period=period,
        as_of=as_of,
        assessed=assessed,
        policy_for=policy_for,
        releases=[],
        healthchecks=[],
        notes=[],
    )


def at(moment: datetime, action: str, **after) -> Event:
    return Event("R", moment, action, "request", after)


def test_received_in_q4_met_in_q1_counts_in_q1_and_running_in_q4():
    """Received at 23:30 on 31 December (severity 2: due 03:30), accepted at 01:00 on 1 January. The Q4 report
    mailed at 00:30 counts it received and running; Q1 counts it met — neither loses it, neither counts it twice."""
    received = NEW_YEAR - timedelta(minutes=30)
    events = [submitted(2, received), at(NEW_YEAR + timedelta(hours=1), "request.accepted", status="accepted")]
    mailed = quarter_report(Q4, NEW_YEAR + timedelta(minutes=30), (2, received, events))
    assert (mailed.requests_total, mailed.sla_running, mailed.sla_met, mailed.sla_attainment_pct) == (1, 1, 0, None)
    assert [(r.received_in_period, r.decided_in_period, r.sla) for r in mailed.requests] == [(True, False, "running")]

    later = NEW_YEAR + timedelta(days=100)  # the same quarters recomputed once everything is known
    q4, q1 = quarter_report(Q4, later, (2, received, events)), quarter_report(Q1, later, (2, received, events))
    assert (q4.requests_total, q4.sla_running, q4.sla_met, q4.first_response_p50_minutes) == (1, 0, 0, None)
    assert (q1.requests_total, q1.sla_running, q1.sla_met, q1.sla_attainment_pct) == (0, 0, 1, 100.0)
    assert q1.by_severity["2"] == 0 and q1.sla_by_severity[1].met == 1 and q1.first_response_p50_minutes == 90.0
    [row] = q1.requests
    assert (row.received_in_period, row.decided_in_period, row.responded_in_period) == (False, True, True)
    assert row.decided_at == NEW_YEAR + timedelta(hours=1)
    assert [(w.week_start, w.met) for w in q1.weekly if w.met] == [(date(2026, 12, 28), 1)]  # ISO week of 1 Jan
    assert sum(w.met + w.breached for w in q4.weekly) == 0
    assert q4.requests[0].first_response_minutes is None  # answered in Q1: its time counts there


def test_a_breach_counts_when_it_fell_due_and_a_late_answer_when_it_came():
    """Severity 1 received at 23:50 on 31 December: due 00:20 on 1 January, nobody answers until 2 January."""
    received = NEW_YEAR - timedelta(minutes=10)
    answered = NEW_YEAR + timedelta(days=1, hours=9)
    events = [submitted(1, received), at(answered, "request.responded")]
    mailed = quarter_report(Q4, NEW_YEAR + timedelta(minutes=5), (1, received, events))
    assert (mailed.sla_running, mailed.sla_breached, mailed.breaches) == (1, 0, [])
    q1 = quarter_report(Q1, NEW_YEAR + timedelta(hours=2), (1, received, events))  # mailed before the answer
    assert (q1.requests_total, q1.sla_breached, q1.sla_attainment_pct) == (0, 1, 0.0)
    assert [(b.responded, b.reason) for b in q1.breaches] == [
        (False, "no qualified response yet (overdue by 1 h 40 min)")
    ]
    later = quarter_report(Q1, NEW_YEAR + timedelta(days=100), (1, received, events))
    assert later.breaches[0].responded and later.first_response_p90_minutes == minutes_between(received, answered)

    # due in Q4, answered in Q1: the breach is Q4's, the (late) response time Q1's
    early = NEW_YEAR - timedelta(hours=2)
    events = [submitted(1, early), at(answered, "request.responded")]
    q4 = quarter_report(Q4, NEW_YEAR + timedelta(days=100), (1, early, events))
    q1 = quarter_report(Q1, NEW_YEAR + timedelta(days=100), (1, early, events))
    assert (q4.sla_breached, len(q4.breaches), q4.first_response_p50_minutes) == (1, 1, None)
    assert (q1.sla_breached, q1.breaches, q1.first_response_p50_minutes) == (0, [], minutes_between(early, answered))


def minutes_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 60, 1)


def test_withdrawn_counts_in_totals_and_in_no_attainment():
    received = datetime(2026, 11, 2, 10, 0, tzinfo=ZONE)
    withdrawn = [submitted(1, received), at(received + timedelta(minutes=10), "request.cancelled", status="cancelled")]
    met = [submitted(1, received), at(received + timedelta(minutes=10), "request.accepted", status="accepted")]
    report = quarter_report(Q4, NEW_YEAR, (1, received, withdrawn), (1, received, met))
    assert (report.requests_total, report.sla_met, report.sla_withdrawn, report.sla_attainment_pct) == (2, 1, 1, 100.0)
    assert (report.sla_by_severity[0].met, report.sla_by_severity[0].withdrawn) == (1, 1)
    assert report.first_response_p50_minutes == 10.0  # the acceptance; a cancellation is nobody's response
    assert sum(w.met for w in report.weekly) == 1


def test_the_clock_horizon_reaches_back_over_nights_weekends_and_holidays():
    """Any clock started before the horizon was due before the period: checked for every target over a span
    that holds the Russian New Year holidays (1–11 January 2026) and a weekend."""
    start = datetime(2026, 1, 12, tzinfo=ZONE).astimezone(UTC)  # the first business day after them
    policies = [policy_for(severity) for severity in (1, 2, 3, 4)]
    horizon = figures.clock_horizon(start, policies=policies, cal=CAL)
    assert horizon < datetime(2025, 12, 31, 10, tzinfo=ZONE)  # the last business hours before the holidays
    for policy in policies:
        target = timedelta(minutes=policy.response_minutes)
        assert due_at(start=horizon, target=target, clock=policy.clock, calendar=CAL) < start
    # severity 2, 4 h around the clock: one day and the target back
    assert figures.clock_horizon(start, policies=[policy_for(2)], cal=CAL) == start - timedelta(hours=28)


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


def test_requests_received_long_before_count_where_they_were_answered(session, config, build):
    """Requests filed when the customer called 40 days ago: one answered now by a message (which changes no column
    of the request), one accepted now, one never answered. Their receipt is far before the clock horizon, so only
    the candidate rule (an unanswered status, a moved `updated_at`) can bring them into today's report."""
    customer = build.customer()
    tam, triage = build.person("tam", tam_for=[customer.id]), build.person("triage")
    long_ago = datetime.now(UTC) - timedelta(days=40)
    answered, accepted, forgotten = (build.request(by=tam, customer=customer, received_at=long_ago) for _ in range(3))
    fresh = build.request(by=tam, customer=customer)
    R = ReleaseRequest
    old = [answered.id, accepted.id, forgotten.id]
    session.execute(update(R).where(R.id.in_(old)).values(created_at=long_ago, updated_at=long_ago))  # filed then
    requests_service.respond(session, actor=tam, request_id=answered.id, data=Respond(message="On it"), config=config)
    intake.triage(session, actor=triage, request_id=accepted.id, decision=Accept(decision="accept"), config=config)
    session.commit()  # events are chained, and timed, at commit: before `as_of`
    as_of = datetime.now(UTC)
    today = as_of.astimezone(ZONE).date()
    report = build_customer_report(
        session, customer_id=customer.id, period=periods.between(today, today), config=config, as_of=as_of
    )
    start, _ = periods.utc_range(periods.between(today, today), ZONE)
    policies = [config.severity.for_request(severity=n, tier=customer.tier) for n in (1, 2, 3, 4)]
    assert long_ago < figures.clock_horizon(start, policies=policies, cal=customer.calendar())
    assert session.get(R, answered.id).updated_at == long_ago  # the answer changed no column: found by its status

    rows = {r.request_id: r for r in report.requests}
    assert set(rows) == {answered.id, accepted.id, fresh.id}  # the forgotten one fed nothing today
    for late in (answered, accepted):
        row = rows[late.id]
        assert (row.received_in_period, row.decided_in_period, row.responded_in_period) == (False, False, True)
        assert row.sla == "breached" and row.first_response_minutes >= 40 * 24 * 60
    assert (report.requests_total, report.sla_running, report.sla_breached, report.breaches) == (1, 1, 0, [])
    assert report.first_response_p90_minutes == max(rows[x].first_response_minutes for x in (answered.id, accepted.id))


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
        for n, severity in enumerate(findings):
            session.add(
                HealthCheckFinding(
                    healthcheck_id=row.id,
                    product="Endpoint",
                    area="scan",
                    setting=f"setting {n}",
                    found="off",
                    severity=severity,
                    recommendation=f"turn setting {n} on",
                )
            )
        return row

    older = check(date(2024, 5, 1), "report_delivered", ("high",))
    latest = check(date(2025, 5, 1), "report_delivered", ("low", "high", "critical", "medium", "high"))
    check(date(2026, 2, 1), "cancelled")  # before the period, cancelled: not the latest one that counts
    many = ("low",) * 10 + ("medium",) * 10 + ("high",) * 20  # more than a report lists: every high one, no more
    inside = check(date(2026, 11, 10), "findings_recorded", many)
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
            5,
            {"critical": 1, "high": 2, "medium": 1, "low": 1},
        ),
        (
            inside.id,
            date(2026, 11, 10),
            "findings_recorded",
            engineer.name,
            40,
            {"critical": 0, "high": 20, "medium": 10, "low": 10},
        ),
    ]
    # the nonconformities with their recommendations, most serious first (then as recorded)
    listed = [(f.severity, f.setting, f.recommendation) for f in report.healthchecks[0].nonconformities]
    assert listed == [
        ("critical", "setting 2", "turn setting 2 on"),
        ("high", "setting 1", "turn setting 1 on"),
        ("high", "setting 4", "turn setting 4 on"),
        ("medium", "setting 3", "turn setting 3 on"),
        ("low", "setting 0", "turn setting 0 on"),
    ]
    assert report.healthchecks[0].findings_not_listed == 0
    assert {f.severity for f in report.healthchecks[1].nonconformities} == {"high"}
    assert (len(report.healthchecks[1].nonconformities), report.healthchecks[1].findings_not_listed) == (20, 20)
    assert [(n.body, n.author) for n in report.notes] == [
        ("Q4: fewer false positives", tam.name),
        ("overlaps by one day", tam.name),
    ]
    assert report.requests_total == 0 and report.sla_attainment_pct is None and report.by_severity["1"] == 0


def test_releases_delivered_to_the_customers_channel(world_pipeline, staff, config):
    """A real pipeline run: the fix of one request, and of a duplicate of it from the same customer, reaches the
    customer's own channel; acceptance to channel is measured from the log. A duplicate joined after the fix was
    already on the channel had nothing delivered for it (no negative time), and a period not holding the
    publication has no release, whenever the requests were received."""
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
        b = Builder(s, w.config)
        late = b.request(by=b.person("tam", tam_for=[customer_id]), customer=s.get(Customer, customer_id)).id
    with db.transaction(w.seg.sessions) as s:
        joined = Duplicate(decision="duplicate", duplicate_of=primary)
        intake.triage(s, actor=staff["triage"], request_id=late, decision=joined, config=w.config)
    with db.transaction(w.seg.sessions) as s:
        as_of = datetime.now(UTC)
        today = as_of.astimezone(ZONE).date()
        period = periods.between(today - timedelta(days=1), today)
        report = build_customer_report(s, customer_id=customer_id, period=period, config=w.config, as_of=as_of)
        before = periods.between(today - timedelta(days=3), today - timedelta(days=1))
        earlier = build_customer_report(s, customer_id=customer_id, period=before, config=w.config, as_of=as_of)
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
        assert r.hours_to_deliver == round((r.delivered_at - r.accepted_at).total_seconds() / 3600, 1) >= 0
    assert late not in [r.request_id for r in report.releases] and earlier.releases == []
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
    # the last change of the request itself (the notices it set off and its routing come later or say nothing)
    own = [at for at, action in story.events["C"] if action.startswith("request.") and action not in ROUTING_ACTIONS]
    assert rows[ids["C"]].changed_at == own[-1] < story.events["C"][-1][0]
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


def test_a_notice_or_a_routing_alone_does_not_make_a_request_changed(session, config, build):
    """A cancelled severity 1 request is no longer open: it is in the digest on the day it changed, not on the day
    a notice about it was queued or its routing was recorded (staff-only events its customer never sees)."""
    customer = build.customer()
    user = build.person("customer", customer_id=customer.id)
    request = build.request(by=build.person("tam", tam_for=[customer.id]), customer=customer, severity=1)
    requests_service.cancel(session, actor=user, request_id=request.id, data=Cancel(reason="solved"))
    internal = Recipient(audience="internal", channel="slack", address="#support")
    queued = queue(session, request_id=request.id, event="request.cancelled", recipient=internal, context={}, at=T0)
    record(session, actor=Actor.system("router"), action="request.routed", entity_type="request",
           entity_id=request.id, request_id=request.id, after={"owner_id": None})  # fmt: skip
    events = session.scalars(select(AuditEvent).where(AuditEvent.request_id == request.id).order_by(AuditEvent.seq))
    times = {e.action: e.occurred_at for e in events}
    cancelled, notice = times["request.cancelled"], times["notification.queued"]
    assert queued is not None and cancelled < notice < times["request.routed"]

    def digest(as_of: datetime) -> list:
        return build_daily_digest(session, customer_ids={customer.id}, as_of=as_of, config=config).rows

    # a day after the cancellation, with the notice and the routing still inside the 24 hours: not changed
    assert digest(cancelled + timedelta(hours=24) + (notice - cancelled) / 2) == []
    [row] = digest(cancelled + timedelta(hours=23))  # with the cancellation inside: changed, at its time
    assert (row.request_id, row.status, row.changed_at, row.sla_state) == (
        request.id,
        "cancelled",
        cancelled,
        "withdrawn",
    )
