"""What is said: one Jinja2 template per event and language, rendered into an e-mail and a Slack message.

Each event template (`templates/{language}/{event}.j2`) writes a subject and a plain-text body; the shared
layout (`templates/_layout.j2`) turns them into the text and HTML parts of an e-mail and a Block Kit
message, adding what every message carries: the request id, its current state, the SLA countdown and a
link to its status page. Variables come from the outbox row's context (fixed when it was queued) and
from the database at send time (`request`, `sla`). A variable that is missing is an error
(StrictUndefined), never an empty gap in a message a customer reads. A notice about no request (an
invitation: `request` empty) is its subject and body alone, without the request footer.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from release_requests.config import SeverityConfig
from release_requests.documents import Attachment
from release_requests.errors import DomainError

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("en", "ru")
# internal messages a person acts on in Slack, and the buttons (action ids) each carries
BUTTONS = {"approval.requested": ("approve", "reject"), "page.sent": ("acknowledge",)}
BUTTON_EVENTS = frozenset(BUTTONS)
SLACK_EVENT_TYPE = "rr_notification"  # Slack message metadata: how a resend finds what was already posted

LABELS = {
    "en": {
        "request": "Request",
        "state": "State",
        "sla": "Response SLA",
        "status_link": "Request status",
        "states": {
            "submitted": "received, awaiting triage",
            "needs_info": "waiting for your information",
            "accepted": "accepted",
            "rejected": "rejected",
            "duplicate": "duplicate",
            "building": "building a fix",
            "verifying": "verifying the fix",
            "awaiting_approval": "awaiting approval",
            "releasing": "releasing",
            "released": "released",
            "closed": "closed",
            "cancelled": "cancelled",
            "failed": "failed",
        },
        "met": "met",
        "paused": "paused until we hear from you",
        "due_in": "due in {0}, at {1}",
        "overdue": "overdue by {0} (was due {1})",
        "none": "not applicable",
        "units": ("d", "h", "min"),
        "approve": "Approve",
        "reject": "Reject",
        "acknowledge": "Acknowledge",
    },
    "ru": {
        "request": "Запрос",
        "state": "Состояние",
        "sla": "Срок ответа",
        "status_link": "Статус запроса",
        "states": {
            "submitted": "получен, ожидает разбора",
            "needs_info": "ждём информацию от вас",
            "accepted": "принят",
            "rejected": "отклонён",
            "duplicate": "дубликат",
            "building": "готовим исправление",
            "verifying": "проверяем исправление",
            "awaiting_approval": "ожидает утверждения",
            "releasing": "выпускаем",
            "released": "выпущен",
            "closed": "закрыт",
            "cancelled": "отменён",
            "failed": "сбой",
        },
        "met": "соблюдён",
        "paused": "приостановлен до вашего ответа",
        "due_in": "осталось {0}, до {1}",
        "overdue": "просрочен на {0} (срок был {1})",
        "none": "не применяется",
        "units": ("д", "ч", "мин"),
        "approve": "Утвердить",
        "reject": "Отклонить",
        "acknowledge": "Подтвердить",
    },
}


class RenderError(DomainError):
    """The message cannot be produced (no template, a missing variable, invalid Block Kit): retrying cannot help."""

    code = "render_error"


@dataclass(frozen=True)
class Rendered:
    subject: str  # plain: the e-mail subject
    text: str
    html: str
    blocks: list[dict]
    slack_text: str  # the subject escaped for Slack: chat.postMessage's `text`, shown in notifications
    attachments: tuple[Attachment, ...] = ()  # files the e-mail carries (a report's PDF or CSV)


COMPOSED = "composed"  # context key of a message its domain wrote whole (a report): sent as it is


def composed(
    *, subject: str, text: str, html: str, slack_blocks: list[dict], attachments: tuple[Attachment, ...] = ()
) -> dict:
    """The outbox context of a message composed by its domain (a digest, a report with its PDF): fixed when it
    is queued, so every attempt sends the same message. Whoever composes it escapes what it quotes."""
    return {
        COMPOSED: {
            "subject": " ".join(subject.split()),
            "text": text,
            "html": html,
            "slack_blocks": slack_blocks,
            "attachments": [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "content_base64": base64.b64encode(a.content).decode("ascii"),
                }
                for a in attachments
            ],
        }
    }


def _from_composed(message: dict) -> Rendered:
    try:
        attachments = tuple(
            Attachment(a["filename"], a["content_type"], base64.b64decode(a["content_base64"], validate=True))
            for a in message["attachments"]
        )
        return Rendered(
            subject=message["subject"],
            text=message["text"].rstrip("\n") + "\n",
            html=message["html"],
            blocks=list(message["slack_blocks"]),
            slack_text=slack_escape(message["subject"]),
            attachments=attachments,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RenderError(f"composed message: {type(exc).__name__}: {exc}") from None


def duration(seconds: int, units: tuple[str, str, str]) -> str:
    """'2 h 05 min', '3 d 4 h': precise enough for a countdown, short enough for a phone screen."""
    minutes = max(0, seconds) // 60
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return f"{days} {units[0]} {hours} {units[1]}"
    if hours:
        return f"{hours} {units[1]} {mins:02d} {units[2]}"
    return f"{mins} {units[2]}"


def countdown(sla: dict | None, t: dict) -> str:
    if sla is None:
        return t["none"]
    if sla["met_at"] is not None:
        return t["met"]
    if sla["paused"]:
        return t["paused"]
    if sla["remaining_seconds"] is not None:
        return t["due_in"].format(duration(sla["remaining_seconds"], t["units"]), sla["due_at_local"])
    return t["overdue"].format(duration(sla["overdue_seconds"] or 0, t["units"]), sla["due_at_local"])


def _paragraphs(value: str) -> Markup:
    """Plain text → escaped HTML paragraphs (blank line = new paragraph, newline = line break)."""
    parts = [p for p in re.split(r"\n\s*\n", value.strip()) if p.strip()]
    return Markup("\n").join(Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(p).split("\n"))) for p in parts)


def slack_escape(value: str, limit: int | None = None) -> str:
    """Slack's three control characters escaped, so that customer text cannot mention @channel or forge links.

    Slack parses `<!channel>`, `<@U…>` and `<url|label>` in every text it shows, the notification fallback
    `text` included (https://api.slack.com/reference/surfaces/formatting#escaping). With `limit`, the
    escaped text is cut to at most that many characters without splitting an entity (a dangling `&am`
    would show as garbage), ending in "…".
    """
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if limit is None or len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # the layout escapes per part: HTML, Slack mrkdwn, JSON
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["paragraphs"] = _paragraphs
    env.filters["slack"] = slack_escape
    return env


_ENV = _environment()


def template_name(event: str, language: str) -> str:
    return f"{language}/{event}.j2"


def render(
    *,
    notification_id: str,
    event: str,
    language: str,
    audience: str,
    context: dict,
    request: dict | None,
    sla: dict | None,
    status_url: str,
    severities: SeverityConfig,
) -> Rendered:
    """Render every part of one notice; RenderError names the template and what is wrong. `request` is None
    (or empty) for a notice about no request: then `sla` and `status_url` are not shown. A message composed
    by its domain (`composed`) is taken as it is."""
    if COMPOSED in context:
        return _from_composed(context[COMPOSED])
    name = template_name(event, language if language in LANGUAGES else "en")
    if event == "approval.requested" and "stage" not in context:
        raise RenderError(f"template {name}: 'stage' is undefined (the buttons need it)")
    language = language if language in LANGUAGES else "en"
    t = {**LABELS[language], "severity": {n: severities.label(n, language) for n in (1, 2, 3, 4)}}
    request = request or {}
    if event in BUTTON_EVENTS and not request:
        raise RenderError(f"template {name}: 'request' is undefined (the buttons need it)")
    variables = {
        **context,
        "request": request,
        "sla": sla,
        "countdown": countdown(sla, t),
        "status_url": status_url,
        "notification_id": notification_id,
        "audience": audience,
        "language": language,
        "t": t,
        "actions": _buttons(event, notification_id, request["id"], context, t) if event in BUTTON_EVENTS else [],
    }
    try:
        template = _ENV.get_template(name)
        parts = {part: template.render(variables, part=part).strip() for part in ("subject", "text", "html", "slack")}
    except jinja2.TemplateNotFound:
        raise RenderError(f"no template {name} for event '{event}'") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {name}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {name}: {exc}") from None
    try:
        blocks = json.loads(parts["slack"])
    except json.JSONDecodeError as exc:
        raise RenderError(f"template {name}: the Slack part is not valid JSON ({exc})") from None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and "type" in b for b in blocks):
        raise RenderError(f"template {name}: the Slack part must be a list of blocks")
    subject = " ".join(parts["subject"].split())
    return Rendered(
        subject=subject, text=parts["text"] + "\n", html=parts["html"], blocks=blocks, slack_text=slack_escape(subject)
    )


def _buttons(event: str, notification_id: str, request_id: str, context: dict, t: dict) -> list[dict]:
    """The buttons of a message a person acts on; each carries the message's id and its request (and the stage
    a sign-off signs), which `workflows.slack_decisions` checks against the outbox row before acting."""
    if event == "page.sent":  # the paged person takes the page: the climb stops
        value = json.dumps({"notification_id": notification_id, "request_id": request_id})
        text = {"type": "plain_text", "text": t["acknowledge"]}
        return [{"type": "button", "action_id": "acknowledge", "style": "primary", "text": text, "value": value}]
    value = json.dumps({"notification_id": notification_id, "request_id": request_id, "stage": context["stage"]})
    return [
        {
            "type": "button",
            "action_id": "approve",
            "style": "primary",
            "text": {"type": "plain_text", "text": t["approve"]},
            "value": value,
        },
        {
            "type": "button",
            "action_id": "reject",
            "style": "danger",
            "text": {"type": "plain_text", "text": t["reject"]},
            "value": value,
        },
    ]
