"""The Health Check report: nonconformities and recommendations, most serious first, in the customer's language.

One HTML page serves the browser, the e-mail and the PDF (WeasyPrint): inline styles only (mail clients drop
stylesheets), no script, nothing fetched. Everything the engineer typed is escaped by Jinja2's autoescape; the
plain-text part has nothing to escape. Dates are the customer's: the Health Check's day is a day in their
zone, and the moment the report was made is shown in their zone, named.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from release_requests.documents import Attachment, html_to_pdf
from release_requests.healthchecks.schemas import SEVERITIES, FindingOut, HealthCheckOut
from release_requests.notifications.render import composed, slack_escape

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("en", "ru")

LABELS: dict[str, dict] = {
    "en": {
        "title": "Health Check report",
        "customer": "Customer",
        "date": "Date",
        "engineer": "Engineer",
        "certificate_year": "Certificate year",
        "open_ended": "open-ended",
        "made_at": "Report made",
        "summary": "Nonconformities found",
        "none_found": "No nonconformities were found: the product settings we audited follow our recommendations.",
        "severities": {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"},
        "product": "Product",
        "area": "Area",
        "setting": "Setting",
        "found": "What we found",
        "recommendation": "Recommendation",
        "letter": "The report of your Health Check {id} is below and attached as a PDF.",
        "months": (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
        "weekdays": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        "date_format": "{weekday}, {day} {month} {year}",
    },
    "ru": {
        "title": "Отчёт о проверке состояния (Health Check)",
        "customer": "Клиент",
        "date": "Дата",
        "engineer": "Инженер",
        "certificate_year": "Год сертификата",
        "open_ended": "бессрочно",
        "made_at": "Отчёт составлен",
        "summary": "Найдено несоответствий",
        "none_found": "Несоответствий не найдено: проверенные настройки продуктов соответствуют нашим рекомендациям.",
        "severities": {"critical": "Критичные", "high": "Высокие", "medium": "Средние", "low": "Низкие"},
        "product": "Продукт",
        "area": "Область",
        "setting": "Параметр",
        "found": "Что обнаружено",
        "recommendation": "Рекомендация",
        "letter": "Отчёт о проверке {id} — ниже и во вложении (PDF).",
        "months": (
            "января",
            "февраля",
            "марта",
            "апреля",
            "мая",
            "июня",
            "июля",
            "августа",
            "сентября",
            "октября",
            "ноября",
            "декабря",
        ),
        "weekdays": ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"),
        "date_format": "{weekday}, {day} {month} {year} г.",
    },
}


def long_date(day: date, language: str) -> str:
    """'Monday, 14 December 2026' / 'понедельник, 14 декабря 2026 г.'"""
    t = LABELS[language]
    return t["date_format"].format(
        weekday=t["weekdays"][day.weekday()], day=day.day, month=t["months"][day.month - 1], year=day.year
    )


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


_ENV = _environment()


@dataclass(frozen=True)
class ReportData:
    healthcheck: HealthCheckOut
    findings: list[FindingOut]
    language: str
    made_at: datetime  # aware; shown in the customer's zone

    def variables(self, *, letter: bool) -> dict:
        hc, language = self.healthcheck, self.language if self.language in LANGUAGES else "en"
        t = LABELS[language]
        year_end = hc.certificate_year_end.isoformat() if hc.certificate_year_end else t["open_ended"]
        return {
            "t": t,
            "language": language,
            "hc": hc,
            "subject": self.subject,
            "letter": t["letter"].format(id=hc.label) if letter else None,
            "date": long_date(hc.scheduled_on, language),
            "certificate_year": f"{hc.certificate_year_start.isoformat()} – {year_end}",
            "made_at": f"{self.made_at.astimezone(ZoneInfo(hc.timezone)):%Y-%m-%d %H:%M} ({hc.timezone})",
            "total": len(self.findings),
            "groups": [
                (severity, [f for f in self.findings if f.severity == severity])
                for severity in SEVERITIES
                if any(f.severity == severity for f in self.findings)
            ],
        }

    @property
    def subject(self) -> str:
        t = LABELS[self.language if self.language in LANGUAGES else "en"]
        return f"{t['title']} {self.healthcheck.label}: {self.healthcheck.customer}"


def render_html(data: ReportData, *, letter: bool = False) -> str:
    """The report as one self-contained HTML page; `letter` adds the line an e-mail opens with."""
    return _ENV.get_template("report.html.j2").render(data.variables(letter=letter))


def render_text(data: ReportData, *, letter: bool = False) -> str:
    return _ENV.get_template("report.txt.j2").render(data.variables(letter=letter)).strip() + "\n"


def render_pdf(data: ReportData) -> Attachment:
    pdf = html_to_pdf(render_html(data), title=data.subject)
    return Attachment(f"{data.healthcheck.label}.pdf", "application/pdf", pdf)


def email(data: ReportData) -> dict:
    """The outbox context of the e-mail that delivers the report: the page itself, its text, and the PDF."""
    return composed(
        subject=data.subject,
        text=render_text(data, letter=True),
        html=render_html(data, letter=True),
        slack_blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(data.subject, 3000)}}],
        attachments=(render_pdf(data),),
    )
