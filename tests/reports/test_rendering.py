"""How reports look: a report built by hand (no database) shows the same figures in HTML, PDF text and CSV,
in English and Russian, with customer text escaped in every format; the digest in text, HTML and Slack."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from html import unescape

import pytest
from pypdf import PdfReader

from release_requests.errors import InvalidInput
from release_requests.healthchecks.schemas import FindingOut
from release_requests.reports import charts, rendering
from release_requests.reports.figures import NEXT_STEPS, NEXT_STEPS_DETAILED
from release_requests.reports.schemas import (
    Breach,
    CustomerReport,
    DailyDigest,
    DigestRow,
    HealthCheckSummary,
    NoteOut,
    Period,
    ReleaseDelivered,
    RequestRow,
    SeverityAttainment,
    WeekAttainment,
)
from tests.conftest import REPO

HOSTILE = "<script>alert(1)</script> & *bold* <@U123>"
DECIDED = ("met", "breached", "withdrawn")
ESCAPED_HTML = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; *bold* &lt;@U123&gt;"
ESCAPED_SLACK = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; *bold* &lt;@U123&gt;"
SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)
TARGETS = {1: 30, 2: 240, 3: 360, 4: 480}

# (severity, outcome, first response minutes) of the 17 requests received in the quarter
OUTCOMES = [
    (1, "met", 12.0),
    (1, "met", 25.5),
    (1, "breached", 72.0),
    (2, "met", 35.0),
    (2, "met", 95.0),
    (2, "met", 180.0),
    (2, "met", 210.5),
    (2, "running", None),
    (3, "met", 45.0),
    (3, "met", 120.0),
    (3, "met", 200.0),
    (3, "met", 300.0),
    (3, "met", 355.0),
    (3, "breached", None),
    (4, "withdrawn", None),
    (4, "met", 410.0),
    (4, "running", None),
]
# and one received on the last evening of Q3 (23:00 Moscow), breached unanswered at 03:00 on 1 October: it feeds
# the quarter's breaches and attainment, not its request counts
LATE = datetime(2026, 9, 30, 20, 0, tzinfo=UTC)


def request_rows() -> list[RequestRow]:
    kinds = ["false_positive"] * 11 + ["false_negative"] * 4 + ["private_hotfix"] * 2
    rows = []
    for i, ((severity, outcome, minutes), kind) in enumerate(zip(OUTCOMES, kinds, strict=True)):
        received = T0 + timedelta(days=5 * i, hours=i)
        responded = received + timedelta(minutes=minutes) if minutes is not None else None
        due = received + timedelta(minutes=TARGETS[severity])
        decided = {"met": responded, "breached": due, "withdrawn": received + timedelta(minutes=20)}.get(outcome)
        rows.append(
            RequestRow(
                request_id=f"RR-2026-{1001 + i:06d}",
                kind=kind,
                severity=severity,
                status={"met": "closed", "withdrawn": "cancelled"}.get(outcome, "building"),
                channel=["portal", "email", "phone", "tam"][i % 4],
                received_at=received,
                first_response_at=responded,
                first_response_minutes=minutes,
                target_minutes=TARGETS[severity],
                due_at=due,
                sla=outcome,
                paused_minutes=95.0 if i == 13 else 0.0,
                severity_changes=1 if i == 2 else 0,
                decided_at=decided,
                received_in_period=True,
                decided_in_period=decided is not None,
                responded_in_period=minutes is not None,
            )
        )
    rows.append(
        RequestRow(
            request_id="RR-2026-000999",
            kind="false_positive",
            severity=2,
            status="submitted",
            channel="phone",
            received_at=LATE,
            first_response_at=None,
            first_response_minutes=None,
            target_minutes=240,
            due_at=LATE + timedelta(minutes=240),
            sla="breached",
            paused_minutes=0.0,
            severity_changes=0,
            decided_at=LATE + timedelta(minutes=240),
            received_in_period=False,
            decided_in_period=True,
            responded_in_period=False,
        )
    )
    return rows


FINDINGS = [
    ("critical", "Endpoint Security", "Real-time protection", "Scan on access", "Turned off on 12 servers",
     "Turn scanning on access back on for every server group"),
    ("high", "Mail Gateway", "Attachments", "Archive depth", HOSTILE, "=cmd|' /C calc'!A0"),
    ("high", "Endpoint Security", "Updates", "Update source", "A mirror last synced 40 days ago",
     "Point the mirror at your own channel"),
]  # fmt: skip


def sample_report(**overrides) -> CustomerReport:
    rows = request_rows()
    values = dict(
        customer_id="moscow-bank",
        customer_name="Moscow Bank",
        timezone="Europe/Moscow",
        period=Period(start=date(2026, 10, 1), end=date(2026, 12, 31), label="2026Q4"),
        as_of=datetime(2026, 12, 31, 21, 0, tzinfo=UTC),
        requests_total=17,
        by_severity={"1": 3, "2": 5, "3": 6, "4": 3},
        by_kind={"false_positive": 11, "false_negative": 4, "private_hotfix": 2},
        by_channel={"portal": 5, "email": 4, "phone": 4, "tam": 4},
        sla_met=12,
        sla_breached=3,
        sla_running=2,
        sla_withdrawn=1,
        sla_attainment_pct=80.0,
        sla_by_severity=[
            SeverityAttainment(
                severity=1,
                label="critical",
                target_minutes=30,
                clock="24x7",
                met=2,
                breached=1,
                running=0,
                attainment_pct=66.7,
            ),
            SeverityAttainment(
                severity=2,
                label="high",
                target_minutes=240,
                clock="24x7",
                met=4,
                breached=1,
                running=1,
                attainment_pct=80.0,
            ),
            SeverityAttainment(
                severity=3,
                label="medium",
                target_minutes=360,
                clock="business",
                met=5,
                breached=1,
                running=0,
                attainment_pct=83.3,
            ),
            SeverityAttainment(
                severity=4,
                label="low",
                target_minutes=480,
                clock="business",
                met=1,
                breached=0,
                running=1,
                attainment_pct=100.0,
                withdrawn=1,
            ),
        ],
        first_response_p50_minutes=150.0,
        first_response_p90_minutes=355.0,
        breaches=[
            Breach(
                request_id=rows[17].request_id,
                severity=2,
                due_at=rows[17].due_at,
                responded=False,
                responded_at=None,
                reason="no qualified response yet (overdue by 91 d 18 h)",
                late_minutes=132120.0,
                severity_path=[2],
                reroutes=0,
                cancelled=False,
            ),
            Breach(
                request_id=rows[2].request_id,
                severity=1,
                due_at=rows[2].due_at,
                responded=True,
                responded_at=rows[2].first_response_at,
                reason="answered 42 min after the due time; "
                "severity changed 2 → 1: the 30 min target counts from receipt",
                late_minutes=42.0,
                severity_path=[2, 1],
                reroutes=0,
                cancelled=False,
            ),
            Breach(
                request_id=rows[13].request_id,
                severity=3,
                due_at=rows[13].due_at,
                responded=False,
                responded_at=None,
                reason="no qualified response yet (overdue by 3 d 4 h); waited 1 h 35 min for the customer's answer "
                "(not counted); re-routed to another owner 2 times",
                late_minutes=4560.0,
                severity_path=[3],
                reroutes=2,
                cancelled=False,
            ),
        ],
        releases=[
            ReleaseDelivered(
                request_id=rows[0].request_id,
                kind="hotfix",
                version="2026.10.05.2",
                channel="moscow-bank-stable",
                accepted_at=rows[0].received_at + timedelta(minutes=12),
                delivered_at=rows[0].received_at + timedelta(hours=26, minutes=42),
                hours_to_deliver=26.5,
            ),
            ReleaseDelivered(
                request_id=rows[3].request_id,
                kind="base",
                version="2026.10.21.1",
                channel="moscow-bank-stable",
                accepted_at=rows[3].received_at,
                delivered_at=rows[3].received_at + timedelta(hours=73.5),
                hours_to_deliver=73.5,
            ),
        ],
        weekly=[
            WeekAttainment(
                week_start=date(2026, 9, 28) + timedelta(weeks=w),
                met=met,
                breached=breached,
                attainment_pct=None if met + breached == 0 else round(100 * met / (met + breached), 1),
            )
            for w, (met, breached) in enumerate(
                [
                    (1, 1),
                    (2, 1),
                    (0, 0),
                    (1, 0),
                    (1, 0),
                    (1, 1),
                    (1, 0),
                    (0, 0),
                    (2, 0),
                    (1, 0),
                    (1, 0),
                    (1, 0),
                    (0, 0),
                    (0, 0),
                ]
            )
        ],
        healthchecks=[
            HealthCheckSummary(
                id=7,
                scheduled_on=date(2026, 12, 8),
                status="findings_recorded",
                engineer="Olga Smirnova",
                findings=5,
                findings_by_severity={"critical": 1, "high": 2, "medium": 1, "low": 1},
                nonconformities=[
                    FindingOut(
                        id=40 + n,
                        severity=severity,
                        product=product,
                        area=area,
                        setting=setting,
                        found=found,
                        recommendation=recommendation,
                        created_at=datetime(2026, 12, 8, 15, 0, tzinfo=UTC),
                    )
                    for n, (severity, product, area, setting, found, recommendation) in enumerate(FINDINGS)
                ],
                findings_not_listed=2,
            )
        ],
        notes=[
            NoteOut(
                id=3,
                customer_id="moscow-bank",
                period_start=date(2026, 10, 1),
                period_end=date(2026, 12, 31),
                body=f"Quiet quarter overall.\nSecond line: {HOSTILE}\n\nA new paragraph: =SUM(A1:A9)",
                author="Tanya TAM",
                created_at=datetime(2026, 12, 20, 9, 15, tzinfo=UTC),
            )
        ],
        requests=rows,
    )
    return CustomerReport(**(values | overrides))


# What a reader must find, as runs of words (each table row read left to right): every figure of the report.
FIGURES_EN = [
    "17 Requests",
    "1 critical 3",
    "2 high 5",
    "3 medium 6",
    "4 low 3",
    "False positive 11",
    "Missed detection 4",
    "Private hotfix 2",
    "Portal 5",
    "E-mail 4",
    "Phone 4",
    "Through the TAM 4",
    "1 critical 30 min around the clock 2 1 0 0 66.7%",
    "2 high 240 min around the clock 4 1 1 0 80.0%",
    "3 medium 360 min business hours 5 1 0 0 83.3%",
    "4 low 480 min business hours 1 0 1 1 100.0%",
    "All severities 12 3 2 1 80.0%",
    "150.0 min",
    "355.0 min",
    "RR-2026-001003 1 critical 2026-10-15 12:30 MSK (Europe/Moscow) yes, 2026-10-15 13:12 MSK (Europe/Moscow)",
    "answered 42 min after the due time",
    "RR-2026-001014 3 medium 2026-12-10 05:00 MSK (Europe/Moscow) no",
    "re-routed to another owner 2 times",
    "RR-2026-001001 2026.10.05.2 (hotfix) moscow-bank-stable 2026-10-05 10:12 MSK (Europe/Moscow) "
    "2026-10-06 12:42 MSK (Europe/Moscow) 26.5",
    "RR-2026-001004 2026.10.21.1 (base version)",
    "73.5",
    "2026-12-08 findings recorded Olga Smirnova 5 1 2 1 1",
    "Nonconformities and recommendations of the Health Check of 2026-12-08",
    "critical Endpoint Security · Real-time protection · Scan on access Turned off on 12 servers "
    "Turn scanning on access back on for every server group",
    "high Endpoint Security · Updates · Update source A mirror last synced 40 days ago "
    "Point the mirror at your own channel",
    "… and 2 more of lower severity: the Health Check report lists them all.",
    "RR-2026-000999 2 high 2026-10-01 03:00 MSK (Europe/Moscow) no",
    "Tanya TAM, 2026-12-20 12:15 MSK (Europe/Moscow)",
    "Quiet quarter overall.",
]
FIGURES_RU = [
    "17 Запросов",
    "1 критическая 3",
    "1 критическая 30 мин круглосуточно 2 1 0 0 66.7%",
    "3 средняя 360 мин рабочие часы 5 1 0 0 83.3%",
    "Все уровни важности 12 3 2 1 80.0%",
    "Ложное срабатывание 11",
    "ответ через 42 мин после срока; важность изменена 2 → 1: целевые 30 мин отсчитываются от получения",
    "квалифицированного ответа ещё нет (просрочен на 3 д 4 ч); ждали ответа клиента 1 ч 35 мин "
    "(не учитывается); передан другому ответственному 2 раз(а)",
    "2026.10.05.2 (исправление)",
    "2026-12-08 замечания записаны Olga Smirnova 5 1 2 1 1",
    "Несоответствия и рекомендации проверки Health Check от 2026-12-08",
    "критические Endpoint Security · Real-time protection · Scan on access",
    "Рекомендация",
]


def words(text: str) -> str:
    return " ".join(text.split())


def visible_text(html: str) -> str:
    """What a browser shows of a page: no tags, no charts, entities decoded."""
    html = re.sub(r"<svg.*?</svg>|<style.*?</style>|<title>.*?</title>", " ", html, flags=re.S)
    return words(unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(scope="module")
def report() -> CustomerReport:
    return sample_report()


@pytest.fixture(scope="module")
def html_en(report) -> str:
    return rendering.report_html(report, language="en")


@pytest.fixture(scope="module")
def rendered_pdf(report) -> bytes:
    return rendering.report_pdf(report, language="en")  # how long it takes: bench/report_bench.py, not a test


def test_html_shows_every_figure_in_the_customers_zone(html_en):
    shown = visible_text(html_en)
    for figure in FIGURES_EN:
        assert figure in shown, figure
    assert "Support report — Moscow Bank" in shown
    assert "2026-10-01 – 2026-12-31 (2026Q4)" in shown
    assert "Figures as of 2027-01-01 00:00 MSK (Europe/Moscow)" in shown


def test_html_is_one_self_contained_page_without_script(html_en):
    assert html_en.startswith("<!DOCTYPE html>")
    assert "<script" not in html_en  # the hostile note is escaped, and we write none
    assert not re.search(r"<(link|img|iframe|object)\b|\bsrc=|href=\"http|url\(http|@import", html_en)
    assert html_en.count("<svg") == 2
    # two charts on one page: their ids (clip paths, markers) must not collide
    ids = re.findall(r'\bid="([^"]+)"', html_en)
    assert len(ids) == len(set(ids))


def test_customer_text_is_escaped_and_keeps_its_paragraphs(html_en):
    assert HOSTILE not in html_en
    assert ESCAPED_HTML in html_en
    assert re.search(r"<p[^>]*>Quiet quarter overall\.<br>Second line: &lt;script", html_en)
    assert re.search(r"<p[^>]*>A new paragraph: =SUM\(A1:A9\)</p>", html_en)
    hostile = sample_report(customer_name=HOSTILE)
    html = rendering.report_html(hostile, language="en", sections=["summary"])
    assert HOSTILE not in html and f"<title>Support report — {ESCAPED_HTML} — 2026Q4</title>" in html


def test_none_is_a_dash_and_an_empty_report_says_so():
    empty = sample_report(
        requests_total=0,
        by_severity=dict.fromkeys("1234", 0),
        sla_met=0,
        sla_breached=0,
        sla_running=0,
        sla_withdrawn=0,
        sla_attainment_pct=None,
        first_response_p50_minutes=None,
        first_response_p90_minutes=None,
        breaches=[],
        releases=[],
        healthchecks=[],
        notes=[],
        requests=[],
        weekly=[WeekAttainment(week_start=date(2026, 9, 28), met=0, breached=0, attainment_pct=None)],
        sla_by_severity=[
            SeverityAttainment(
                severity=1,
                label="critical",
                target_minutes=30,
                clock="24x7",
                met=0,
                breached=0,
                running=0,
                attainment_pct=None,
            )
        ],
    )
    shown = visible_text(rendering.report_html(empty, language="en"))
    for phrase in (
        "All severities 0 0 0 0 —",
        "Median first response (p50) — min",
        "No breaches in this period.",
        "No releases delivered in this period.",
        "No Health Check in this period.",
        "No notes for this period.",
    ):
        assert phrase in shown, phrase
    assert "No data for this period" in rendering.report_html(empty, language="en", sections=["sla"])


def test_text_part_has_the_figures(report):
    text = rendering.report_text(report, language="en")
    assert text.startswith("Support report — Moscow Bank — 2026Q4\nPeriod: 2026-10-01 – 2026-12-31 (2026Q4)")
    for line in (
        "  Requests: 17",
        "  By severity: 1 critical 3 · 2 high 5 · 3 medium 6 · 4 low 3",
        "  1 critical (Target 30 min, around the clock): Met 2 · Breached 1 · Running 0 · Withdrawn 0 · "
        "Attainment 66.7%",
        "  All severities: Met 12 · Breached 3 · Running 2 · Withdrawn 1 · Attainment 80.0%",
        "  Median first response (p50): 150.0 min",
        "  RR-2026-001014 · 3 medium · Due 2026-12-10 05:00 MSK (Europe/Moscow) · Responded: no",
        "  2026-12-08 · findings recorded · Olga Smirnova · Findings: 5 (critical 1 · high 2 · medium 1 · low 1)",
        "    Nonconformities and recommendations of the Health Check of 2026-12-08:",
        "    - [critical] Endpoint Security · Real-time protection · Scan on access",
        "      What we found: Turned off on 12 servers",
        "      Recommendation: Turn scanning on access back on for every server group",
        f"      What we found: {HOSTILE}",
        "    … and 2 more of lower severity: the Health Check report lists them all.",
        f"    Second line: {HOSTILE}",  # text shows what was typed, the note's lines kept
        "    A new paragraph: =SUM(A1:A9)",
    ):
        assert line + "\n" in text, line


def test_russian_report(report):
    html = rendering.report_html(report, language="ru")
    shown = visible_text(html)
    for figure in FIGURES_RU:
        assert figure in shown, figure
    for heading in ("Сводка", "Соблюдение SLA", "Время первого ответа", "Нарушения SLA", "Поставленные выпуски"):
        assert f">{heading}</h2>" in html
    assert '<html lang="ru">' in html
    assert "Support report" not in html and "SLA breaches" not in html
    assert rendering.report_subject(report, language="ru") == "Отчёт о поддержке — Moscow Bank — 2026Q4"
    text = rendering.report_text(report, language="ru")
    assert "Соблюдение SLA" in text and "1 критическая (Целевое время 30 мин, круглосуточно)" in text


def test_every_label_exists_in_both_languages():
    def keys(value, prefix=""):
        if not isinstance(value, dict):
            return {prefix}
        return {k for key, v in value.items() for k in keys(v, f"{prefix}.{key}")}

    for labels in (rendering.LABELS, charts.LABELS):
        english, russian = keys(labels["en"]), keys(labels["ru"])
        # the English of breach reasons and next steps is the figures' own (None), the Russian retells them
        told_by_figures = {".reasons", ".next_steps", ".next_steps_detailed"}
        assert {k for k in english if k not in told_by_figures} == {
            k for k in russian if not k.startswith(tuple(told_by_figures))
        }
    assert rendering.LABELS["ru"]["next_steps"].keys() == NEXT_STEPS.keys()
    assert rendering.LABELS["ru"]["next_steps_detailed"].keys() == NEXT_STEPS_DETAILED.keys()


def test_sections_shown_only_when_listed(report):
    html = rendering.report_html(report, language="en", sections=["notes", "breaches"])
    headings = re.findall(r"<h2[^>]*>([^<]+)</h2>", html)
    assert headings == ["SLA breaches", "Notes from your TAM"]  # the report's order, not the list's
    assert "<svg" not in html  # no section with a chart: no chart rendered
    text = rendering.report_text(report, language="en", sections=["healthcheck"])
    assert "Health Check" in text and "SLA attainment" not in text and "Findings: 5" in text
    with pytest.raises(InvalidInput) as error:
        rendering.report_html(report, language="en", sections=["summary", "gossip"])
    assert error.value.field == "sections" and "gossip" in error.value.message
    with pytest.raises(InvalidInput) as error:
        rendering.report_html(report, language="de")
    assert error.value.field == "language"


def test_pdf_has_the_same_figures_on_a4(rendered_pdf):
    pdf = rendered_pdf
    assert pdf.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(pdf))
    assert all(round(float(p.mediabox.width)) == 595 and round(float(p.mediabox.height)) == 842 for p in reader.pages)
    text = " ".join(page.extract_text() for page in reader.pages)
    # cells wrap onto several lines and kerning splits words ("T arget"): compare without white space
    compact = re.sub(r"\s+", "", text)
    for figure in FIGURES_EN:
        assert re.sub(r"\s+", "", figure) in compact, figure
    assert re.sub(r"\s+", "", "Second line: " + HOSTILE) in compact  # escaped in the HTML, printed as typed
    assert f"1 / {len(reader.pages)}" in text  # numbered pages


def test_csv_holds_the_rows_behind_every_figure(report):
    table = list(csv.DictReader(io.StringIO(rendering.report_csv(report), newline="")))
    assert list(table[0])[0] == "record"
    by_record: dict[str, list[dict]] = {}
    for row in table:
        by_record.setdefault(row["record"], []).append(row)
    summary = {row["figure"]: row["value"] for row in by_record["summary"]}
    requests = by_record["request"]
    # which figures a row feeds: the requests received in the period, the outcomes decided in it
    received = [r for r in requests if r["received_in_period"] == "true"]
    decided = [r for r in requests if r["decided_in_period"] == "true"]

    assert len(requests) == 18 and len(received) == int(summary["requests_total"]) == 17
    assert set(requests[0]) >= set(RequestRow.model_fields)
    for severity in "1234":
        assert sum(r["severity"] == severity for r in received) == int(summary[f"by_severity.{severity}"])
        mine = [r for r in decided if r["severity"] == severity]
        met, breached, withdrawn = (sum(r["sla"] == outcome for r in mine) for outcome in DECIDED)
        assert (met, breached, withdrawn) == tuple(int(summary[f"sla.{severity}.{o}"]) for o in DECIDED)
        assert round(100 * met / (met + breached), 1) == float(summary[f"sla.{severity}.attainment_pct"])
        running = sum(r["severity"] == severity and r["sla"] == "running" for r in received)
        assert running == int(summary[f"sla.{severity}.running"])
    met, breached, withdrawn = (sum(r["sla"] == outcome for r in decided) for outcome in DECIDED)
    assert round(100 * met / (met + breached), 1) == float(summary["sla_attainment_pct"]) == 80.0
    assert (met, breached, withdrawn) == (int(summary["sla_met"]), int(summary["sla_breached"]), 1)
    for kind, count in report.by_kind.items():
        assert sum(r["kind"] == kind for r in received) == int(summary[f"by_kind.{kind}"]) == count
    assert summary["first_response_p50_minutes"] == "150.0" and summary["first_response_p90_minutes"] == "355.0"
    weeks = [k for k in summary if k.startswith("week.") and k.endswith(".met")]
    assert sum(int(summary[k]) for k in weeks) == 12
    for row in decided:  # each outcome in the week of its decision, in the customer's zone
        day = date.fromisoformat(row["decided_at"][:10])
        assert f"week.{(day - timedelta(days=day.weekday())).isoformat()}.met" in summary
    assert summary["healthcheck.7.findings"] == "5" and summary["healthcheck.7.findings.high"] == "2"
    assert summary["healthcheck.7.findings_not_listed"] == "2"

    breaches = by_record["breach"]
    assert [b["request_id"] for b in breaches] == ["RR-2026-000999", "RR-2026-001003", "RR-2026-001014"]
    assert {b["request_id"] for b in breaches} == {r["request_id"] for r in decided if r["sla"] == "breached"}
    breaches = breaches[1:]
    assert breaches[0]["due_at"] == "2026-10-15T12:30:00+03:00"  # ISO 8601 in the customer's zone
    assert breaches[0]["responded"] == "true" and breaches[1]["responded_at"] == ""
    assert (breaches[0]["severity_path"], breaches[0]["late_minutes"], breaches[1]["reroutes"]) == (
        "2 → 1",
        "42.0",
        "2",
    )
    assert breaches[1]["reason"].startswith("no qualified response yet")
    releases = by_record["release"]
    assert [(r["version"], r["hours_to_deliver"]) for r in releases] == [
        ("2026.10.05.2", "26.5"),
        ("2026.10.21.1", "73.5"),
    ]
    assert requests[2]["first_response_minutes"] == "72.0" and requests[13]["first_response_minutes"] == ""
    findings = by_record["finding"]
    assert [(f["healthcheck_id"], f["severity"], f["setting"]) for f in findings] == [
        ("7", "critical", "Scan on access"),
        ("7", "high", "Archive depth"),
        ("7", "high", "Update source"),
    ]
    assert findings[0]["recommendation"] == "Turn scanning on access back on for every server group"
    assert findings[1]["recommendation"] == "'=cmd|' /C calc'!A0"  # the engineer's text: no formula either


def test_csv_is_rfc4180_and_guards_against_formulas(report):
    hostile = sample_report(
        customer_name='=HYPERLINK("http://evil","x")',
        breaches=[report.breaches[0].model_copy(update={"reason": '-2+3, "quoted"\nsecond line'})],
        releases=[report.releases[0].model_copy(update={"channel": "@SUM(A1)", "version": "+1"})],
    )
    text = rendering.report_csv(hostile)
    assert text.startswith("record,request_id,kind,severity,") and text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    summary = {r["figure"]: r["value"] for r in rows if r["record"] == "summary"}
    assert summary["customer_name"] == '\'=HYPERLINK("http://evil","x")'
    breach = next(r for r in rows if r["record"] == "breach")
    assert breach["reason"] == '\'-2+3, "quoted"\nsecond line'  # quoted field with a newline, read back whole
    release = next(r for r in rows if r["record"] == "release")
    assert (release["channel"], release["version"]) == ("'@SUM(A1)", "'+1")
    # our own numbers stay numbers
    assert summary["sla_attainment_pct"] == "80.0"
    for row in rows:
        for value in row.values():
            assert not (value or "").startswith(rendering.FORMULA_STARTS), value


def test_charts_are_valid_accessible_deterministic_svg(report):
    attainment = charts.attainment_chart(report.weekly, language="en")
    response = charts.response_chart(report.requests, language="ru")
    for svg, title in ((attainment, "SLA attainment per week"), (response, "Время первого ответа")):
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG}svg" and root.get("role") == "img" and title in root.get("aria-label")
        assert title in root.find(f"{SVG}title").text
    texts = ["".join(t.itertext()) for t in ET.fromstring(attainment).iter(f"{SVG}text")]
    for label in ("100.0%", "66.7%", "—", "2026-10-05", "attainment, %"):
        assert label in texts, label
    texts = ["".join(t.itertext()) for t in ET.fromstring(response).iter(f"{SVG}text")]
    # medians are nearest-rank, as the report's p50: severity 2 answered in 35, 95, 180, 210.5 min → 95.0
    for label in ("Важность 1", "Важность 4", "цель 30 мин", "цель 480 мин", "p50 25.5", "p50 95.0", "минуты"):
        assert label in texts, label
    assert charts.attainment_chart(report.weekly, language="en") == attainment  # same rows, same bytes
    assert "Date" not in attainment and "<dc:date>" not in attainment
    empty = ET.fromstring(charts.response_chart([], language="en"))
    assert "No data for this period" in "".join(empty.itertext())


def test_charts_stay_readable_and_small_for_a_long_busy_period():
    received = datetime(2026, 1, 5, tzinfo=UTC)
    rows = [
        RequestRow(
            request_id=f"RR-2026-{i:06d}",
            kind="false_positive",
            severity=1 + i % 2,
            status="closed",
            channel="portal",
            received_at=received + timedelta(hours=i),
            first_response_at=None,
            first_response_minutes=float(i % 300),
            target_minutes=TARGETS[1 + i % 2],
            due_at=None,
            sla="met",
            paused_minutes=0.0,
            severity_changes=0,
        )
        for i in range(3000)
    ]
    response = charts.response_chart(rows, language="en")
    assert len(response) < 100_000  # a box per severity, not 3,000 points
    texts = ["".join(t.itertext()) for t in ET.fromstring(response).iter(f"{SVG}text")]
    assert "p50 148.0" in texts and "p50 149.0" in texts  # nearest rank: the 750th of 1,500 values each
    year = [
        WeekAttainment(week_start=date(2026, 1, 5) + timedelta(weeks=w), met=9, breached=1, attainment_pct=90.0)
        for w in range(52)
    ]
    texts = [
        "".join(t.itertext()) for t in ET.fromstring(charts.attainment_chart(year, language="en")).iter(f"{SVG}text")
    ]
    assert "90.0%" not in texts  # 52 value labels would overlap: the table and the CSV have them
    assert "2026-01-05" in texts and 10 <= sum(t.startswith("2026-") for t in texts) <= 16


def test_importing_the_renderer_loads_neither_matplotlib_nor_weasyprint():
    code = (
        "import sys, release_requests.reports.rendering; "
        "print(sorted(m for m in ('matplotlib', 'weasyprint') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


# --- the digest -----------------------------------------------------------------------------------------------

AS_OF = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # 09:00 in Moscow


def digest_row(i: int, **overrides) -> DigestRow:
    values = dict(
        request_id=f"RR-2026-{2001 + i:06d}",
        customer_id="moscow-bank",
        customer_name="Moscow Bank",
        severity=1 + i % 2,
        kind="false_positive",
        title=f"Payroll app flagged as Trojan.Gen #{i}",
        status="awaiting_approval",
        owner="Ivan Petrov",
        sla_state="met",
        due_at=AS_OF - timedelta(hours=20),
        changed_at=AS_OF - timedelta(hours=2),
        next_step="awaiting sign-off of stage canary",
        next_step_detail="canary",
    )
    return DigestRow(**(values | overrides))


def sample_digest(rows: list[DigestRow]) -> DailyDigest:
    return DailyDigest(as_of=AS_OF, since=AS_OF - timedelta(hours=24), customer_id=None, rows=rows)


@pytest.fixture(scope="module")
def digest() -> DailyDigest:
    return sample_digest(
        [
            digest_row(
                0,
                title=HOSTILE,
                sla_state="breached",
                due_at=AS_OF - timedelta(minutes=45),
                status="submitted",
                next_step="awaiting triage",
                next_step_detail=None,
            ),
            digest_row(
                1,
                owner=None,
                sla_state="at_risk",
                due_at=AS_OF + timedelta(hours=1),
                status="building",
                next_step="building a fix",
                next_step_detail=None,
            ),
            digest_row(2, customer_name="Ural <Steel>", customer_id="ural-steel"),
        ]
    )


def test_digest_subject_and_text(digest):
    assert rendering.digest_subject(digest, language="en", zone="Europe/Moscow") == (
        "Daily critical digest — 2026-11-30 (3 requests)"
    )
    # the reader's date: 06:00 UTC is still the 29th in Los Angeles
    assert "— 2026-11-29 (" in rendering.digest_subject(digest, language="en", zone="America/Los_Angeles")
    text = rendering.digest_text(digest, language="en", zone="Europe/Moscow")
    assert "between 2026-11-29 09:00 MSK (Europe/Moscow) and 2026-11-30 09:00 MSK (Europe/Moscow)" in text
    assert "RR-2026-002001 · 1 critical · Moscow Bank (moscow-bank)" in text
    assert f"  Title: {HOSTILE}\n" in text  # plain text shows what was typed
    assert "SLA: breached, due 2026-11-30 08:15 MSK (Europe/Moscow)" in text
    assert "Owner: unassigned" in text and "SLA: at risk, due 2026-11-30 10:00 MSK (Europe/Moscow)" in text
    assert "Next step: awaiting sign-off of stage canary" in text
    assert "Ural <Steel> (ural-steel)" in text


def test_a_withdrawn_request_reads_as_withdrawn_without_a_due_time():
    cancelled = digest_row(0, sla_state="withdrawn", status="cancelled", next_step="cancelled: nothing left to do")
    text = rendering.digest_text(sample_digest([cancelled]), language="en", zone="Europe/Moscow")
    assert "  SLA: withdrawn\n" in text
    assert "отозван" in rendering.digest_text(sample_digest([cancelled]), language="ru", zone="Europe/Moscow")
    assert "due" not in visible_text(rendering.digest_html(sample_digest([cancelled]), language="en", zone="UTC"))


def test_digest_text_keeps_customer_text_on_its_line():
    forged = sample_digest([digest_row(0, title="Real title\n\nRR-2026-999999 · 1 critical · Forged row")])
    text = rendering.digest_text(forged, language="en", zone="Europe/Moscow")
    assert not any(line.startswith("RR-2026-999999") for line in text.splitlines())
    assert "Title: Real title RR-2026-999999 · 1 critical · Forged row" in text


def test_digest_html_escapes(digest):
    html = rendering.digest_html(digest, language="en", zone="Europe/Moscow")
    assert HOSTILE not in html and "<script" not in html
    assert ESCAPED_HTML in html and "Ural &lt;Steel&gt;" in html
    shown = visible_text(html)
    assert "Daily critical digest — 2026-11-30 (3 requests)" in shown
    assert "breached, due 2026-11-30 08:15 MSK (Europe/Moscow)" in shown


def test_digest_slack_blocks_escape_and_fit(digest):
    blocks = rendering.digest_slack_blocks(digest, language="en", zone="Europe/Moscow")
    payload = json.dumps(blocks, ensure_ascii=False)
    assert "<@U123>" not in payload and "<script>" not in payload and ESCAPED_SLACK in payload
    assert "Ural &lt;Steel&gt;" in payload
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Daily critical digest — 2026-11-30 (3 requests)"},
    }
    assert len(blocks) == 2 + 3

    many = sample_digest([digest_row(i, title="x" * 10_000 + "&<>" * 100) for i in range(120)])
    blocks = rendering.digest_slack_blocks(many, language="en", zone="Europe/Moscow")
    assert len(blocks) == 50
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == 47 and all(len(b["text"]["text"]) <= 3000 for b in sections)
    assert blocks[-1]["elements"][0]["text"].startswith("… and 73 more")
    assert (
        len(rendering.digest_slack_blocks(sample_digest([digest_row(i) for i in range(48)]), language="en", zone="UTC"))
        == 50
    )  # 48 rows fit exactly: nothing cut


def test_empty_digest():
    empty = sample_digest([])
    message = "No severity 1–2 requests open or changed in the last 24 hours."
    assert (
        rendering.digest_subject(empty, language="en", zone="UTC") == "Daily critical digest — 2026-11-30 (0 requests)"
    )
    assert rendering.digest_text(empty, language="en", zone="UTC") == (
        "Daily critical digest — 2026-11-30 (0 requests)\n"
        "Severity 1–2 requests open or changed between 2026-11-29 06:00 UTC and 2026-11-30 06:00 UTC.\n\n"
        f"{message}\n"
    )
    assert message in visible_text(rendering.digest_html(empty, language="en", zone="UTC"))
    assert message in json.dumps(rendering.digest_slack_blocks(empty, language="en", zone="UTC"), ensure_ascii=False)
    assert "нет открытых или изменённых запросов важности 1–2" in rendering.digest_text(
        empty, language="ru", zone="UTC"
    )


def test_russian_digest(digest):
    assert rendering.digest_subject(digest, language="ru", zone="Europe/Moscow") == (
        "Ежедневная сводка критических запросов — 2026-11-30 (3 запроса)"
    )
    text = rendering.digest_text(digest, language="ru", zone="Europe/Moscow")
    assert "1 критическая" in text and "2 высокая" in text
    assert "Следующий шаг: ожидает утверждения этапа canary" in text  # from the status and its detail
    assert "Следующий шаг: ожидает разбора" in text
    assert "SLA: нарушен, срок 2026-11-30 08:15 MSK (Europe/Moscow)" in text
    assert "Ответственный: не назначен" in text
    blocks = json.dumps(rendering.digest_slack_blocks(digest, language="ru", zone="Europe/Moscow"), ensure_ascii=False)
    assert "Ежедневная сводка" in blocks and ESCAPED_SLACK in blocks


@pytest.mark.parametrize(
    ("count", "en", "ru"),
    [
        (0, "0 requests", "0 запросов"),
        (1, "1 request", "1 запрос"),
        (3, "3 requests", "3 запроса"),
        (5, "5 requests", "5 запросов"),
        (11, "11 requests", "11 запросов"),
        (21, "21 requests", "21 запрос"),
        (22, "22 requests", "22 запроса"),
        (112, "112 requests", "112 запросов"),
    ],
)
def test_request_counts_in_both_languages(count, en, ru):
    digest = sample_digest([digest_row(i) for i in range(count)])
    assert rendering.digest_subject(digest, language="en", zone="UTC").endswith(f"({en})")
    assert rendering.digest_subject(digest, language="ru", zone="UTC").endswith(f"({ru})")


def test_unknown_zone_is_invalid_input(digest):
    with pytest.raises(InvalidInput) as error:
        rendering.digest_text(digest, language="en", zone="Mars/Olympus")
    assert error.value.field == "zone"
