"""Every text the console shows has its Russian translation, and the catalogue is consistent."""

from __future__ import annotations

import re
from pathlib import Path

from release_requests.web import rendering
from release_requests.web.i18n import catalog, disagreements, translate

WEB = Path(rendering.__file__).parent
# _("text") or _('text') in a template, with or without parameters after the text
TEMPLATE_TEXT = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
# back_to(path, "notice") and error=/detail=/title=/notice=/missing= texts in the views
VIEW_TEXT = re.compile(
    r"""(?:back_to\([^,()]+(?:\([^()]*\))?[^,()]*,\s*|(?:error|detail|title|notice)=|missing=not [^"]* and )"""
    r""""([^"{}]+)\""""
)


def texts_of_templates() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((WEB / "templates").rglob("*.html")):
        for double, single in TEMPLATE_TEXT.findall(path.read_text(encoding="utf-8")):
            found.setdefault(double or single, set()).add(path.name)
    return found


def texts_of_views() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(WEB.glob("*.py")):
        for text in VIEW_TEXT.findall(path.read_text(encoding="utf-8")):
            found.setdefault(text, set()).add(path.name)
    return found


def test_every_text_of_the_console_has_a_russian_translation():
    wanted = {**texts_of_templates(), **texts_of_views()}
    for words in (rendering.STATUSES, rendering.KINDS, rendering.SLA_STATES):
        wanted.update({text: {"rendering.py"} for text in words.values()})
    missing = {text: sorted(where) for text, where in wanted.items() if text not in catalog()}
    assert not missing, (
        f"texts without a Russian translation (add them to release_requests/web/translations/): {missing}"
    )


def test_no_two_files_translate_a_text_differently():
    assert not disagreements()


def test_the_scan_finds_texts():
    assert "Sign in" in texts_of_templates()
    assert "You have signed out." in texts_of_views()


def test_translation_fills_parameters_after_translating():
    assert translate("ru", "Signed in as {name}", name="Иван") == "Вы вошли как Иван"
    assert translate("en", "Signed in as {name}", name="Ivan") == "Signed in as Ivan"
    assert translate("ru", "a text nobody translated") == "a text nobody translated"


def test_times_and_durations_read_in_the_readers_language():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from release_requests.web.rendering import duration, local_time

    moment = datetime(2026, 11, 30, 11, 5, tzinfo=UTC)
    assert local_time(moment, ZoneInfo("Europe/Moscow")) == "30 Nov 2026 14:05 MSK"
    assert local_time(moment, ZoneInfo("Europe/Moscow"), language="ru") == "30 ноя 2026 14:05 MSK"
    assert local_time(moment, ZoneInfo("Asia/Dubai"), with_date=False) == "15:05 UTC+04"
    assert duration(2 * 3600 + 5 * 60) == "2 h 05 min" and duration(-90, "ru") == "−1 мин"
