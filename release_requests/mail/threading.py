"""Which request a message belongs to, and what its subject asks for: pure functions, no database.

Threading follows osTicket's and Zammad's order; the first step that finds a request of the sender's own
customer decides:

1. the message's own Message-ID was seen before → a duplicate (the `inbound_mail` unique key does this);
2. In-Reply-To names a message we know;
3. References, right to left (the newest first);
4. a request id in brackets in the subject, `[RR-2026-000123]` (the prefix is `[requests] id_prefix`).

Messages we know are our own notices (`<notification-id@release-requests>`), every notice's thread root
(`<RR-2026-000123@release-requests>`, in the References of every notice about that request) and earlier
inbound messages that went to a request. The caller supplies both lookups: which request a message belongs
to, and whether a request is the sender's customer's. A step naming someone else's request (a forwarded
thread, a colleague at another customer in Cc) does not end the search: the next step is tried.

Subject tags set what a new request is: `[S1]`…`[S4]` its severity, `[FP]`, `[FN]` or `[HOTFIX]` its kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

KIND_TAGS = {"FP": "false_positive", "FN": "false_negative", "HOTFIX": "private_hotfix"}
_TAG = re.compile(r"\[\s*(S[1-4]|FP|FN|HOTFIX)\s*\]", re.IGNORECASE)
# Re:, Fwd:, and their common translations, repeated ("Re: Fwd: RE:"), with optional counters ("Re[2]:")
_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|vs|tr|rv|odp|antw|ответ|отв|пересл|fw)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
TITLE_LIMIT = 300
NO_SUBJECT = "(no subject)"


@dataclass(frozen=True)
class ThreadMatch:
    """`request_id` found by `via` ("In-Reply-To", "References", "subject"); None: a new conversation.
    `subject_id` is a request id named in the subject (whether or not threading used it); `passed_over` the
    steps that named a request that is not the sender's customer's (or no request at all)."""

    request_id: str | None
    via: str | None
    subject_id: str | None
    passed_over: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubjectTags:
    severity: int
    kind: str
    title: str


def _id_pattern(id_prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\[\s*({re.escape(id_prefix)}-\d{{4}}-\d{{6,}})\s*\]")


def subject_request_id(subject: str, *, id_prefix: str) -> str | None:
    found = _id_pattern(id_prefix).search(subject)
    return found.group(1) if found else None


def locate(
    *,
    in_reply_to: str | None,
    references: tuple[str, ...] | list[str],
    subject: str,
    id_prefix: str,
    known: Callable[[str], str | None],
    owned: Callable[[str], bool],
) -> ThreadMatch:
    """Steps 2–4 above. `known(message_id)` → the request id that message belongs to, or None;
    `owned(request_id)` → whether that request exists and is the sender's customer's."""
    subject_id = subject_request_id(subject, id_prefix=id_prefix)
    candidates = [("In-Reply-To", in_reply_to)] if in_reply_to else []
    candidates += [("References", r) for r in reversed(references) if r != in_reply_to]
    passed_over: list[str] = []
    for via, message_id in candidates:
        if request_id := known(message_id):
            if owned(request_id):
                return ThreadMatch(request_id, via, subject_id, tuple(dict.fromkeys(passed_over)))
            passed_over.append(via)
    if subject_id:
        if owned(subject_id):
            return ThreadMatch(subject_id, "subject", subject_id, tuple(dict.fromkeys(passed_over)))
        passed_over.append("subject")
    return ThreadMatch(None, None, subject_id, tuple(dict.fromkeys(passed_over)))


def read_subject(subject: str, *, id_prefix: str, default_severity: int, default_kind: str) -> SubjectTags:
    """Severity and kind from the tags (the defaults without them), and the title: the subject without tags,
    reply/forward prefixes or the request id, at most 300 characters, "(no subject)" if nothing is left."""
    severity, kind = default_severity, default_kind
    for tag in _TAG.findall(subject):
        tag = tag.upper()
        if tag.startswith("S"):
            severity = int(tag[1])
        else:
            kind = KIND_TAGS[tag]
    title = _id_pattern(id_prefix).sub(" ", _TAG.sub(" ", subject))
    previous = None
    while previous != title:  # "Re: [S1] Fwd: …": prefixes may follow a removed tag
        previous, title = title, _PREFIX.sub("", title.strip())
    title = " ".join(title.split())[:TITLE_LIMIT].strip()
    return SubjectTags(severity=severity, kind=kind, title=title or NO_SUBJECT)
