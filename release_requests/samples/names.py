"""File names of samples, made safe to store and to show.

A sample's name is chosen by whoever sent it, and samples may be malware: `invoice\\u202egpj.exe`
(U+202E RIGHT-TO-LEFT OVERRIDE) is shown by every bidi-aware screen as `invoiceexe.jpg`. The name is
kept as evidence, so what would deceive or break a display is made visible instead of removed: each
bidi control, control character, line/paragraph separator or lone surrogate becomes `[U+XXXX]`
(`invoice[U+202E]gpj.exe`), and path separators become `_` (a name is never a path). The same function
runs when a name is stored and when one is shown, so names stored before it existed are safe too.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 255  # samples.filename is VARCHAR(255)

# Explicit embeddings, overrides and isolates, the implicit marks and the Arabic letter mark.
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e"  # LRE RLE PDF LRO RLO
    "\u2066\u2067\u2068\u2069"  # LRI RLI FSI PDI
    "\u200e\u200f\u061c"  # LRM RLM ALM
)
_UNSHOWABLE_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})  # controls, line/paragraph separators, surrogates
_PATH_SEPARATORS = frozenset("/\\")


def _shown(char: str) -> str:
    if char in BIDI_CONTROLS or unicodedata.category(char) in _UNSHOWABLE_CATEGORIES:
        return f"[U+{ord(char):04X}]"
    return "_" if char in _PATH_SEPARATORS else char


def safe_filename(name: str | None) -> str | None:
    """`name` with every character that could deceive or break a display made visible; None if empty.

    At most MAX_LENGTH characters, cut before an escape rather than through it.
    """
    if not name:
        return None
    kept, length = [], 0
    for part in map(_shown, name):
        if length + len(part) > MAX_LENGTH:
            break
        kept.append(part)
        length += len(part)
    return "".join(kept) or None
