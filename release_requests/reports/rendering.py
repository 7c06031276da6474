"""How reports look: the customer report as HTML (browser and e-mail alike), PDF and CSV; the daily digest as
text, HTML, Slack blocks and a subject line. Figures come computed (`reports.schemas`); this module only
shows them, in English or Russian, with times in the reader's zone and the zone named.

Everything a customer or a person typed (titles, names, notes, next steps) is escaped on the way out: HTML by
Jinja2's autoescape, Slack by `slack_escape`, CSV against formula injection, text by keeping it on one line
so a title cannot forge a row. The HTML is one self-contained page: inline styles only (mail clients drop
stylesheets), no script, nothing fetched; charts are inline SVG and repeat figures the tables already give.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from markupsafe import Markup

from release_requests.config import get_config
from release_requests.documents import html_to_pdf
from release_requests.errors import InvalidInput
from release_requests.healthchecks.report import LABELS as HEALTHCHECK_LABELS
from release_requests.notifications.render import LABELS as NOTICE_LABELS
from release_requests.notifications.render import duration, slack_escape
from release_requests.reports import charts
from release_requests.reports.models import REPORT_SECTIONS
from release_requests.reports.schemas import (
    Breach,
    CustomerReport,
    DailyDigest,
    DigestRow,
    ReleaseDelivered,
    RequestRow,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("en", "ru")
SLACK_MAX_BLOCKS = 50  # https://api.slack.com/reference/block-kit/blocks
SLACK_MAX_HEADER = 150
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run as a formula (OWASP: CSV injection)
FINDING_WORDS = ("product", "area", "setting", "found", "recommendation")  # the Health Check report's own words
FINDING_COLUMNS = ("healthcheck_id", "finding_id", *FINDING_WORDS, "severity")

LABELS: dict[str, dict] = {
    "en": {
        "report_title": "Support report",
        "period": "Period",
        "as_of": "Figures as of",
        "sections": {
            "summary": "Summary",
            "sla": "SLA attainment",
            "response_times": "First response times",
            "breaches": "SLA breaches",
            "releases": "Releases delivered",
            "healthcheck": "Health Check",
            "notes": "Notes from your TAM",
        },
        "requests_total": "Requests",
        "by_severity": "By severity",
        "by_kind": "By kind",
        "by_channel": "By channel",
        "count": "Requests",
        "severity": "Severity",
        "kind": "Kind",
        "channel": "Channel",
        "kinds": {
            "false_positive": "False positive",
            "false_negative": "Missed detection",
            "private_hotfix": "Private hotfix",
        },
        "channels": {"portal": "Portal", "phone": "Phone", "email": "E-mail", "tam": "Through the TAM"},
        "target": "Target",
        "clock": "Clock",
        "clocks": {"24x7": "around the clock", "business": "business hours"},
        "met": "Met",
        "breached": "Breached",
        "running": "Running",
        "withdrawn": "Withdrawn",
        "attainment": "Attainment",
        "all_severities": "All severities",
        "attainment_rule": (
            "Attainment is met ÷ (met + breached), over the outcomes decided in this period — met at our first "
            "qualified response, breached at the due time — whenever the request was received. A request whose "
            "clock is still running counts once it is met or breached; one you withdrew before our response "
            "counts in neither. Running: received in this period, not decided yet."
        ),
        "p50": "Median first response (p50)",
        "p90": "First response, 90th percentile (p90)",
        "response_rule": (
            "Minutes on the SLA clock from receipt to the first qualified response, pauses for your "
            "information excluded (business minutes for severities 3 and 4), for the responses given in "
            "this period."
        ),
        "minutes": "min",
        "request": "Request",
        "due": "Due",
        "responded": "Responded",
        "reason": "Reason",
        "yes": "yes",
        "no": "no",
        "reasons": None,  # English: the figure's own words (`Breach.reason`)
        "no_breaches": "No breaches in this period.",
        "release": "Release",
        "release_kinds": {"base": "base version", "hotfix": "hotfix"},
        "accepted": "Accepted",
        "delivered": "Delivered",
        "hours_to_deliver": "Hours from acceptance",
        "no_releases": "No releases delivered in this period.",
        "releases_rule": "Releases that reached your own channel in this period, from when we took each request on.",
        "date": "Date",
        "status": "Status",
        "engineer": "Engineer",
        "findings": "Findings",
        "healthcheck_statuses": {
            "booked": "booked",
            "confirmed": "confirmed",
            "in_progress": "in progress",
            "findings_recorded": "findings recorded",
            "report_delivered": "report delivered",
            "cancelled": "cancelled",
        },
        "finding_severities": {"critical": "critical", "high": "high", "medium": "medium", "low": "low"},
        "nonconformities": "Nonconformities and recommendations of the Health Check of {date}",
        "not_listed": "… and {0} more of lower severity: the Health Check report lists them all.",
        "no_healthcheck": "No Health Check in this period.",
        "note_by": "{author}, {date} (for {start} – {end})",
        "no_notes": "No notes for this period.",
        "provenance": (
            "Every figure is computed from the audit log and the request records as of {as_of}; the CSV "
            "export holds the rows behind each of them."
        ),
        "digest_title": "Daily critical digest",
        "digest_window": "Severity 1–2 requests open or changed between {since} and {as_of}.",
        "digest_empty": "No severity 1–2 requests open or changed in the last 24 hours.",
        "requests_count": ("{0} request", "{0} requests"),
        "customer": "Customer",
        "title": "Title",
        "owner": "Owner",
        "unassigned": "unassigned",
        "sla": "SLA",
        "sla_states": {
            "on_track": "on track",
            "at_risk": "at risk",
            "breached": "breached",
            "met": "met",
            "withdrawn": "withdrawn",
        },
        "sla_due": "{state}, due {due}",
        "next_step": "Next step",
        "next_steps": None,  # English: the figure's own words (`DigestRow.next_step`)
        "next_steps_detailed": None,
        "and_more": "… and {0} more (see the e-mail or the console)",
    },
    "ru": {
        "report_title": "Отчёт о поддержке",
        "period": "Период",
        "as_of": "Данные на",
        "sections": {
            "summary": "Сводка",
            "sla": "Соблюдение SLA",
            "response_times": "Время первого ответа",
            "breaches": "Нарушения SLA",
            "releases": "Поставленные выпуски",
            "healthcheck": "Health Check",
            "notes": "Заметки вашего TAM",
        },
        "requests_total": "Запросов",
        "by_severity": "По важности",
        "by_kind": "По типу",
        "by_channel": "По каналу",
        "count": "Запросов",
        "severity": "Важность",
        "kind": "Тип",
        "channel": "Канал",
        "kinds": {
            "false_positive": "Ложное срабатывание",
            "false_negative": "Пропущенное обнаружение",
            "private_hotfix": "Частное исправление",
        },
        "channels": {"portal": "Портал", "phone": "Телефон", "email": "Эл. почта", "tam": "Через TAM"},
        "target": "Целевое время",
        "clock": "Отсчёт",
        "clocks": {"24x7": "круглосуточно", "business": "рабочие часы"},
        "met": "Соблюдено",
        "breached": "Нарушено",
        "running": "Идёт отсчёт",
        "withdrawn": "Отозвано",
        "attainment": "Соблюдение",
        "all_severities": "Все уровни важности",
        "attainment_rule": (
            "Соблюдение — это соблюдено ÷ (соблюдено + нарушено) по исходам, определившимся в этом периоде: "
            "соблюдено — в момент нашего первого квалифицированного ответа, нарушено — в момент истечения срока, "
            "когда бы запрос ни был получен. Запрос, срок которого ещё идёт, учитывается, когда срок соблюдён "
            "или нарушен; отозванный вами до нашего ответа не учитывается ни там, ни там. Идёт отсчёт: получен "
            "в этом периоде, исход ещё не определился."
        ),
        "p50": "Медиана первого ответа (p50)",
        "p90": "Первый ответ, 90-й процентиль (p90)",
        "response_rule": (
            "Минуты по часам SLA от получения до первого квалифицированного ответа, без пауз в ожидании "
            "вашей информации (для важности 3 и 4 — рабочие минуты), по ответам, данным в этом периоде."
        ),
        "minutes": "мин",
        "request": "Запрос",
        "due": "Срок",
        "responded": "Ответ",
        "reason": "Причина",
        "yes": "да",
        "no": "нет",
        "reasons": {  # `Breach.reason` in Russian, from the same facts
            "answered": "ответ через {late} после срока",
            "cancelled": "отменён через {late} после срока, без квалифицированного ответа до этого",
            "unanswered": "квалифицированного ответа ещё нет (просрочен на {late})",
            "severity_changed": "важность изменена {path}: целевые {target} мин отсчитываются от получения",
            "paused": "ждали ответа клиента {paused} (не учитывается)",
            "rerouted": "передан другому ответственному",
            "rerouted_times": "передан другому ответственному {0} раз(а)",
        },
        "no_breaches": "Нарушений за период нет.",
        "release": "Выпуск",
        "release_kinds": {"base": "базовая версия", "hotfix": "исправление"},
        "accepted": "Принят",
        "delivered": "Поставлен",
        "hours_to_deliver": "Часов от принятия",
        "no_releases": "За период выпусков не было.",
        "releases_rule": "Выпуски, поступившие в ваш собственный канал в этом периоде, — от принятия запроса в работу.",
        "date": "Дата",
        "status": "Статус",
        "engineer": "Инженер",
        "findings": "Замечания",
        "healthcheck_statuses": {
            "booked": "назначен",
            "confirmed": "подтверждён",
            "in_progress": "идёт",
            "findings_recorded": "замечания записаны",
            "report_delivered": "отчёт передан",
            "cancelled": "отменён",
        },
        "finding_severities": {"critical": "критические", "high": "высокие", "medium": "средние", "low": "низкие"},
        "nonconformities": "Несоответствия и рекомендации проверки Health Check от {date}",
        "not_listed": "… и ещё {0} менее серьёзных: все они есть в отчёте о проверке Health Check.",
        "no_healthcheck": "Health Check за период не проводился.",
        "note_by": "{author}, {date} (за {start} – {end})",
        "no_notes": "Заметок за период нет.",
        "provenance": (
            "Все показатели рассчитаны по журналу аудита и записям запросов на {as_of}; в выгрузке CSV — "
            "строки, из которых получен каждый из них."
        ),
        "digest_title": "Ежедневная сводка критических запросов",
        "digest_window": "Запросы важности 1–2, открытые или изменённые с {since} по {as_of}.",
        "digest_empty": "За последние 24 часа нет открытых или изменённых запросов важности 1–2.",
        "requests_count": ("{0} запрос", "{0} запроса", "{0} запросов"),
        "customer": "Клиент",
        "title": "Тема",
        "owner": "Ответственный",
        "unassigned": "не назначен",
        "sla": "SLA",
        "sla_states": {
            "on_track": "в срок",
            "at_risk": "под угрозой",
            "breached": "нарушен",
            "met": "соблюдён",
            "withdrawn": "отозван",
        },
        "sla_due": "{state}, срок {due}",
        "next_step": "Следующий шаг",
        "next_steps": {  # `DigestRow.next_step` in Russian, from the status
            "submitted": "ожидает разбора",
            "needs_info": "ждём ответа клиента",
            "accepted": "готовим исправление",
            "building": "готовим исправление",
            "verifying": "проверяем исправление",
            "awaiting_approval": "ожидает утверждения",
            "releasing": "публикуем исправление",
            "released": "выпущен",
            "closed": "закрыт: больше ничего не требуется",
            "rejected": "отклонён: изменений не будет",
            "duplicate": "следует за исправлением запроса, дубликатом которого является",
            "cancelled": "отменён: больше ничего не требуется",
            "failed": "исправление не удалось: пересоберём или закроем",
        },
        "next_steps_detailed": {
            "awaiting_approval": "ожидает утверждения этапа {0}",
            "releasing": "публикуем этап {0}",
            "released": "выпущен в {0}",
        },
        "and_more": "… и ещё {0} (см. письмо или консоль)",
    },
}


# --- the customer report ---------------------------------------------------------------------------------


def report_subject(report: CustomerReport, *, language: str) -> str:
    t = _labels(language)
    return _line(f"{t['report_title']} — {report.customer_name} — {report.period.label}")


def report_html(report: CustomerReport, *, language: str, sections: Sequence[str] = REPORT_SECTIONS) -> str:
    """The whole report as one HTML page; only the listed sections, always in the report's own order."""
    t, shown = _labels(language), _shown(sections)
    return _ENV.get_template("report.html").render(
        report=report,
        t=t,
        language=language,
        shown=shown,
        zone=_zone(report.timezone),
        subject=report_subject(report, language=language),
        reasons=_reasons(report, t),
        attainment_svg=Markup(charts.attainment_chart(report.weekly, language=language)) if "sla" in shown else "",
        response_svg=(
            Markup(charts.response_chart(report.requests, language=language)) if "response_times" in shown else ""
        ),
    )


def report_text(report: CustomerReport, *, language: str, sections: Sequence[str] = REPORT_SECTIONS) -> str:
    """The same figures as plain text: the e-mail's text part, for readers whose mail shows no HTML."""
    t = _labels(language)
    text = _ENV.get_template("report.txt").render(
        report=report,
        t=t,
        shown=_shown(sections),
        zone=_zone(report.timezone),
        subject=report_subject(report, language=language),
        reasons=_reasons(report, t),
    )
    return text.rstrip("\n") + "\n"


def _responded(breach: Breach, t: dict, zone: ZoneInfo) -> str:
    if not breach.responded:
        return t["no"]
    return f"{t['yes']}, {_local(breach.responded_at, zone)}" if breach.responded_at else t["yes"]


def _shown(sections: Sequence[str]) -> list[str]:
    unknown = sorted(set(sections) - set(REPORT_SECTIONS))
    if unknown:
        raise InvalidInput(f"sections: unknown {unknown}; choose from {list(REPORT_SECTIONS)}", field="sections")
    return [s for s in REPORT_SECTIONS if s in sections]


def _reasons(report: CustomerReport, t: dict) -> dict[str, str]:
    """Each breach's reason in the reader's language: the figure's English words, or the same facts retold."""
    phrases = t["reasons"]
    if phrases is None:
        return {b.request_id: b.reason for b in report.breaches}
    rows = {r.request_id: r for r in report.requests}
    units = NOTICE_LABELS[t["language"]]["units"]
    reasons = {}
    for b in report.breaches:
        late = duration(int(b.late_minutes * 60), units)
        key = "answered" if b.responded else "cancelled" if b.cancelled else "unanswered"
        parts = [phrases[key].format(late=late)]
        row = rows.get(b.request_id)
        if len(b.severity_path) > 1 and row is not None:
            path = " → ".join(str(s) for s in b.severity_path)
            parts.append(phrases["severity_changed"].format(path=path, target=row.target_minutes))
        if row is not None and row.paused_minutes:
            parts.append(phrases["paused"].format(paused=duration(int(row.paused_minutes * 60), units)))
        if b.reroutes:
            parts.append(phrases["rerouted_times"].format(b.reroutes) if b.reroutes > 1 else phrases["rerouted"])
        reasons[b.request_id] = "; ".join(parts)
    return reasons


def breach_reasons(report: CustomerReport, *, language: str) -> dict[str, str]:
    """Request id → why its SLA was breached, in `language`, as the report tells it (the console shows it)."""
    return _reasons(report, _labels(language))


def report_pdf(report: CustomerReport, *, language: str, sections: Sequence[str] = REPORT_SECTIONS) -> bytes:
    """The same page as `report_html`, printed: its print CSS sets A4, the margins and repeated headers."""
    html = report_html(report, language=language, sections=sections)
    return html_to_pdf(html, title=report_subject(report, language=language))


def report_csv(report: CustomerReport) -> str:
    """The rows behind every figure, one CSV: `request` rows (their `received_in_period`, `decided_in_period`
    and `responded_in_period` say which figures each feeds), `release`, `breach` and Health Check `finding` rows
    with their fields, and a `summary` row (figure, value) per headline figure, so a spreadsheet can recompute
    each of them. Times are ISO 8601 in the customer's zone; empty means none."""
    zone = _zone(report.timezone)
    fields = [*RequestRow.model_fields, *ReleaseDelivered.model_fields, *Breach.model_fields, *FINDING_COLUMNS]
    columns = ["record", *dict.fromkeys(fields), "figure", "value"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: CRLF, quotes where needed
    writer.writerow(columns)
    records: list[tuple[str, dict]] = [
        *(("request", row.model_dump()) for row in report.requests),
        *(("release", release.model_dump()) for release in report.releases),
        *(("breach", breach.model_dump()) for breach in report.breaches),
        *(
            ("finding", {"healthcheck_id": h.id, "finding_id": f.id, **f.model_dump(include={*FINDING_COLUMNS})})
            for h in report.healthchecks
            for f in h.nonconformities
        ),
    ]
    for record, item in records:
        values = {"record": record, **item}
        writer.writerow([_cell(values.get(column), zone) for column in columns])
    for figure, value in _figures(report):
        values = {"record": "summary", "figure": figure, "value": value}
        writer.writerow([_cell(values.get(column), zone) for column in columns])
    return out.getvalue()


def _figures(report: CustomerReport) -> Iterator[tuple[str, object]]:
    """Every headline figure by a stable name (the JSON's, dotted for nested ones)."""
    yield from (
        ("customer_id", report.customer_id),
        ("customer_name", report.customer_name),
        ("timezone", report.timezone),
        ("period_start", report.period.start),
        ("period_end", report.period.end),
        ("period_label", report.period.label),
        ("as_of", report.as_of),
        ("requests_total", report.requests_total),
    )
    for name in ("by_severity", "by_kind", "by_channel"):
        yield from ((f"{name}.{key}", value) for key, value in getattr(report, name).items())
    yield from (
        ("sla_met", report.sla_met),
        ("sla_breached", report.sla_breached),
        ("sla_running", report.sla_running),
        ("sla_withdrawn", report.sla_withdrawn),
        ("sla_attainment_pct", report.sla_attainment_pct),
    )
    for s in report.sla_by_severity:
        for name in ("target_minutes", "clock", "met", "breached", "running", "withdrawn", "attainment_pct"):
            yield f"sla.{s.severity}.{name}", getattr(s, name)
    yield from (
        ("first_response_p50_minutes", report.first_response_p50_minutes),
        ("first_response_p90_minutes", report.first_response_p90_minutes),
        ("breaches", len(report.breaches)),
        ("releases", len(report.releases)),
    )
    for w in report.weekly:
        for name in ("met", "breached", "attainment_pct"):
            yield f"week.{w.week_start.isoformat()}.{name}", getattr(w, name)
    for h in report.healthchecks:
        yield from (
            (f"healthcheck.{h.id}.scheduled_on", h.scheduled_on),
            (f"healthcheck.{h.id}.status", h.status),
            (f"healthcheck.{h.id}.findings", h.findings),
        )
        yield from ((f"healthcheck.{h.id}.findings.{k}", v) for k, v in h.findings_by_severity.items())
        yield f"healthcheck.{h.id}.findings_not_listed", h.findings_not_listed
    yield "notes", len(report.notes)


def _cell(value: object, zone: ZoneInfo) -> str:
    """One CSV cell. Text — which may be a customer's — that a spreadsheet would run as a formula gets a
    leading apostrophe; numbers and times are ours and stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat(timespec="seconds")
    if isinstance(value, date | int | float):
        return str(value)
    if isinstance(value, list):  # a breach's severity path, read as in its reason: "2 → 1"
        return " → ".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


# --- the daily digest --------------------------------------------------------------------------------------


def digest_subject(digest: DailyDigest, *, language: str, zone: str) -> str:
    """'Daily critical digest — 2026-11-30 (3 requests)': the date is the reader's."""
    t = _labels(language)
    day = digest.as_of.astimezone(_zone(zone)).date().isoformat()
    return f"{t['digest_title']} — {day} ({_requests(len(digest.rows), language)})"


def digest_text(digest: DailyDigest, *, language: str, zone: str) -> str:
    return _render_digest("digest.txt", digest, language=language, zone=zone).rstrip("\n") + "\n"


def digest_html(digest: DailyDigest, *, language: str, zone: str) -> str:
    return _render_digest("digest.html", digest, language=language, zone=zone)


def _render_digest(template: str, digest: DailyDigest, *, language: str, zone: str) -> str:
    t, where = _labels(language), _zone(zone)
    return _ENV.get_template(template).render(
        t=t,
        language=language,
        subject=digest_subject(digest, language=language, zone=zone),
        window=_window(digest, t, where),
        rows=list(_digest_rows(digest, t, where)),
    )


def digest_slack_blocks(digest: DailyDigest, *, language: str, zone: str) -> list[dict]:
    """Block Kit: a header, the window, one section per request. Slack takes at most 50 blocks: past that,
    the last block says how many more the e-mail lists. Each field is cut so a section stays far below 3000
    characters whatever a customer typed."""
    t = _labels(language)
    subject = digest_subject(digest, language=language, zone=zone)
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": slack_escape(subject, SLACK_MAX_HEADER)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(_window(digest, t, _zone(zone)))}]},
    ]
    if not digest.rows:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(t["digest_empty"])}})
        return blocks
    room = SLACK_MAX_BLOCKS - len(blocks)
    rows = list(_digest_rows(digest, t, _zone(zone)))
    shown = rows if len(rows) <= room else rows[: room - 1]
    for row in shown:
        text = (
            f"*{slack_escape(row['id'])}* · {slack_escape(row['severity'])} · {slack_escape(row['customer'], 200)}\n"
            f"{slack_escape(row['title'], 1500)}\n"
            f"{slack_escape(t['status'])}: {slack_escape(row['status'])} · "
            f"{slack_escape(t['owner'])}: {slack_escape(row['owner'], 200)} · "
            f"{slack_escape(t['sla'])}: {slack_escape(row['sla'])}\n"
            f"{slack_escape(t['next_step'])}: {slack_escape(row['next_step'], 600)}"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if len(shown) < len(rows):
        more = slack_escape(t["and_more"].format(len(rows) - len(shown)))
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return blocks


def _digest_rows(digest: DailyDigest, t: dict, zone: ZoneInfo) -> Iterator[dict[str, str]]:
    """Each row as the words every format shows, each on one line (plain; every format escapes its own way)."""
    for row in digest.rows:
        yield {
            "id": row.request_id,
            "customer": _line(f"{row.customer_name} ({row.customer_id})"),
            "severity": t["severity_labels"].get(row.severity, str(row.severity)),
            "title": _line(row.title),
            "status": t["states"].get(row.status, row.status),
            "owner": _line(row.owner) if row.owner else t["unassigned"],
            "sla": _sla_state(row, t, zone),
            "sla_state": row.sla_state or "",
            "next_step": _line(_next_step(row, t)),
        }


def next_step(row: DigestRow, *, language: str) -> str:
    """A digest row's next step in `language`, as the digest tells it (the console shows it)."""
    return _next_step(row, _labels(language))


def _next_step(row: DigestRow, t: dict) -> str:
    if t["next_steps"] is None:
        return row.next_step
    if row.next_step_detail and row.status in t["next_steps_detailed"]:
        return t["next_steps_detailed"][row.status].format(row.next_step_detail)
    return t["next_steps"].get(row.status, row.next_step)


def _sla_state(row: DigestRow, t: dict, zone: ZoneInfo) -> str:
    if row.sla_state is None:
        return "—"
    state = t["sla_states"].get(row.sla_state, row.sla_state)
    if row.due_at is None or row.sla_state in ("met", "withdrawn"):  # decided: the due time says nothing more
        return state
    return t["sla_due"].format(state=state, due=_local(row.due_at, zone))


def _window(digest: DailyDigest, t: dict, zone: ZoneInfo) -> str:
    return t["digest_window"].format(since=_local(digest.since, zone), as_of=_local(digest.as_of, zone))


def _requests(count: int, language: str) -> str:
    """'1 request', '3 requests'; Russian has three forms (1 запрос, 3 запроса, 5 запросов)."""
    forms = LABELS[language]["requests_count"]
    if language == "en":
        return forms[0 if count == 1 else 1].format(count)
    ones, tens = count % 10, count % 100 // 10
    if tens == 1 or ones == 0 or ones >= 5:
        return forms[2].format(count)
    return forms[0 if ones == 1 else 1].format(count)


# --- shared ------------------------------------------------------------------------------------------------


def _labels(language: str) -> dict:
    """The language's words, with the severity names of the reviewed policy ('1 critical', '1 критическая')
    and the request states the notices use."""
    if language not in LABELS:
        raise InvalidInput(f"language: must be one of {list(LANGUAGES)}, got {language!r}", field="language")
    severities = get_config().severity
    return {
        **LABELS[language],
        "language": language,
        "severity_labels": {n: severities.label(n, language) for n in (1, 2, 3, 4)},
        "states": NOTICE_LABELS[language]["states"],
        "finding": {word: HEALTHCHECK_LABELS[language][word] for word in FINDING_WORDS},
    }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"zone: unknown time zone {name!r} (an IANA name like Europe/Moscow)", field="zone"
        ) from None


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    """'2026-11-28 09:00 MSK (Europe/Moscow)': the reader's time, and which zone it is."""
    if moment is None:
        return "—"
    local = moment.astimezone(zone)
    named = local.strftime("%Y-%m-%d %H:%M %Z")
    return named if local.tzname() == zone.key else f"{named} ({zone.key})"  # not "UTC (UTC)"


def _local_cell(moment: datetime | None, zone: ZoneInfo) -> Markup:
    """The same, for a narrow table cell: it may wrap between the date, the time and the zone's name, never
    inside one of them."""
    day, _, rest = _local(moment, zone).partition(" ")
    time, _, name = rest.partition(" (")
    parts = [day, time, f"({name}" if name else ""]
    keep = Markup('<span style="white-space: nowrap">{}</span>')
    return Markup(" ").join(keep.format(part) for part in parts if part)


def _line(value: str) -> str:
    """Text on one line: a newline in a customer's title cannot start a forged row or heading."""
    return " ".join(value.split())


def _one_decimal(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.1f}{unit}"


def paragraphs(text: str) -> list[str]:
    """Text a person wrote (a TAM's note), split at blank lines; each paragraph keeps its line breaks."""
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _paragraphs(value: str) -> list[list[str]]:
    """Paragraphs as lists of lines, for templates that join the lines with <br>."""
    return [p.split("\n") for p in paragraphs(value)]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        # HTML: every value escaped unless it is our own Markup (the charts' SVG); text (.txt): shown as typed
        autoescape=jinja2.select_autoescape(disabled_extensions=("txt",), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = _local
    env.filters["local_cell"] = _local_cell
    env.filters["num"] = _one_decimal
    env.filters["pct"] = lambda value: _one_decimal(value, "%")
    env.filters["paragraphs"] = _paragraphs
    env.filters["line"] = _line
    env.filters["responded"] = _responded
    return env


_ENV = _environment()
