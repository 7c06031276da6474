"""English and Russian for the console. The English text is the key; `translations/*.toml` map it to Russian
(one file per area, so that areas are translated apart). A text without a translation shows in English, and
a test lists every text of a template that lacks one."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "ru")
TRANSLATIONS = Path(__file__).parent / "translations"


def _files() -> list[Path]:
    """common.toml first: a shared word is defined there, and an area's file only adds its own."""
    return sorted(TRANSLATIONS.glob("*.toml"), key=lambda path: (path.name != "common.toml", path.name))


def _entries() -> list[tuple[str, str, str]]:
    return [
        (path.name, english, russian)
        for path in _files()
        for english, russian in tomllib.loads(path.read_text(encoding="utf-8")).items()
    ]


@lru_cache
def catalog() -> dict[str, str]:
    """English → Russian, from every file in translations/ (the first definition of a text wins; a test
    refuses two files translating one text differently, rather than a page failing to load)."""
    merged: dict[str, str] = {}
    for _, english, russian in _entries():
        merged.setdefault(english, russian)
    return merged


def disagreements() -> list[str]:
    """Texts that two files translate differently."""
    first: dict[str, tuple[str, str]] = {}
    found = []
    for name, english, russian in _entries():
        seen = first.setdefault(english, (name, russian))
        if seen[1] != russian:
            found.append(f"'{english}': {seen[0]} says '{seen[1]}', {name} says '{russian}'")
    return found


def translate(language: str, text: str, **params: object) -> str:
    """`text` in `language`, with `{name}` placeholders filled after translating."""
    if language == "ru":
        text = catalog().get(text, text)
    return text.format(**params) if params else text
