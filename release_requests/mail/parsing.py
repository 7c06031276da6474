"""One raw RFC 822 message → `ParsedMail`: what intake needs to decide, and nothing that runs or renders.

Mail is written by anyone, so parsing never raises: the standard `email` package (`policy.default`) reads
what it can, each header and part is read on its own (one broken header costs that header, not the
message), and whatever was wrong is kept in `defects` for the duty manager. HTML is turned into text by
the standard library's tokenizer alone (no rendering, no fetching, no scripts); quoted replies are cut
with `quotequail` (kept; `talon` is not). Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

import quotequail

from release_requests.notifications.transports import MESSAGE_ID_PATTERN as MESSAGE_ID
from release_requests.samples.names import safe_filename

SYNTHETIC_DOMAIN = "inbound.invalid"
MAX_REFERENCES = 50  # the newest ones: enough to thread, bounded lookups
MAX_HTML_CHARS = 2_000_000  # beyond this an HTML body is cut before it is tokenized
NOISE_SENDERS = frozenset(
    {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply", "bounce", "bounces"}
)
NOISE_PRECEDENCE = frozenset({"bulk", "list", "junk"})
# vacation responders that predate RFC 3834 still say so in one of these
NOISE_HEADERS = ("X-Loop", "X-Autoreply", "X-Autorespond", "X-Auto-Response")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # undecodable bytes (surrogateescape): UTF-8 cannot hold them


@dataclass(frozen=True)
class MailAttachment:
    filename: str | None  # made safe to show (samples.names.safe_filename); None when it had none
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ParsedMail:
    """What one message says. `noise` is why it must never be answered (None: a person wrote it);
    `unparseable` is why nothing could be read at all (then only `message_id` and the sizes are set).
    Every string is `storable`: no NUL, no lone surrogate."""

    message_id: str  # as sent (MESSAGE_ID_PATTERN), or <sha256@inbound.invalid> when missing or anything else
    synthetic_id: bool
    sha256: str
    size: int  # of the whole message, even when only its first bytes were read (`truncated`)
    in_reply_to: str | None
    references: tuple[str, ...]  # in header order (oldest first)
    subject: str  # decoded, one line
    sender: str | None  # the From address, lower-cased; None if there is no usable one
    sender_name: str | None
    date: datetime | None
    first_received: datetime | None  # the date of the topmost Received: header (our own server's)
    noise: str | None
    body: str  # the whole text (the text/plain part, or the HTML part as text)
    text: str  # `body` without quoted replies: what the customer wrote this time
    html_only: bool
    attachments: tuple[MailAttachment, ...]
    authentication_results: tuple[str, ...]
    defects: tuple[str, ...]
    headers_only: bool = False  # too large to parse: headers read, body and attachments not
    truncated: bool = False  # only the first bytes of the message were read: its attachments are not
    unparseable: str | None = None

    @property
    def from_domain(self) -> str | None:
        return self.sender.rpartition("@")[2] if self.sender else None


def storable(value: str) -> str:
    """`value` as Postgres text takes it: NUL removed, lone surrogates as U+FFFD. Whatever anyone writes
    must never make the message's row (or the request filed from it) fail to insert."""
    return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))


def one_line(value: str, limit: int) -> str:
    """Header text as one line without control characters, at most `limit` characters."""
    return " ".join(_CONTROL.sub(" ", storable(value)).split())[:limit]


def synthetic_message_id(raw: bytes) -> str:
    return f"<{hashlib.sha256(raw).hexdigest()}@{SYNTHETIC_DOMAIN}>"


class _Reader:
    """Header access that records a defect instead of raising (policy.default parses headers lazily)."""

    def __init__(self, message: EmailMessage) -> None:
        self.message = message
        self.defects: list[str] = [type(d).__name__ for d in message.defects]

    def get(self, name: str):
        try:
            return self.message.get(name)
        except Exception as exc:  # noqa: BLE001 — any header may be broken in any way; the message survives it
            self.defects.append(f"{name}: {type(exc).__name__}")
            return None

    def get_all(self, name: str) -> list[str]:
        try:
            return [str(v) for v in self.message.get_all(name) or []]
        except Exception as exc:  # noqa: BLE001 — as above
            self.defects.append(f"{name}: {type(exc).__name__}")
            return []


def _message_id(reader: _Reader, raw: bytes) -> tuple[str, bool]:
    value = reader.get("Message-ID")
    found = MESSAGE_ID.search(str(value)) if value is not None else None
    if found is None:
        return synthetic_message_id(raw), True
    return found.group(0), False


def _sender(reader: _Reader) -> tuple[str | None, str | None]:
    value = reader.get("From")
    if value is None:
        return None, None
    addresses = getattr(value, "addresses", None)
    if addresses:
        name, address = addresses[0].display_name, addresses[0].addr_spec
    else:  # the structured parse failed: the classic parser is more forgiving
        pairs = getaddresses([str(value)])
        name, address = pairs[0] if pairs else ("", "")
    address = storable(address or "").strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or len(address) > 254 or _CONTROL.search(address) or " " in address:
        address = None
    return address, one_line(name or "", 200) or None


def _date(value) -> datetime | None:
    if value is None:
        return None
    try:
        moment = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else None  # a date without a zone says nothing precise


def _first_received(reader: _Reader) -> datetime | None:
    received = reader.get_all("Received")
    if not received:
        return None
    return _date(received[0].rpartition(";")[2].strip())


def _noise(reader: _Reader, sender: str | None) -> str | None:
    """Why this message was written by a machine (RFC 3834 and the older conventions), or None."""
    auto = reader.get("Auto-Submitted")
    if auto is not None and str(auto).split(";")[0].strip().lower() not in ("", "no"):
        return f"Auto-Submitted: {one_line(str(auto), 60)}"
    precedence = reader.get("Precedence")
    if precedence is not None and str(precedence).strip().lower() in NOISE_PRECEDENCE:
        return f"Precedence: {str(precedence).strip().lower()}"
    for name in NOISE_HEADERS:
        if reader.get(name) is not None:
            return f"{name} present"
    return_path = reader.get("Return-Path")
    if return_path is not None and str(return_path).strip() in ("<>", ""):
        return "bounce (empty Return-Path)"
    if reader.message.get_content_type() == "multipart/report":
        return "bounce (delivery report)"
    if sender is not None and sender.partition("@")[0] in NOISE_SENDERS:
        return f"sent by {sender.partition('@')[0]}"
    return None


class _HtmlText(HTMLParser):
    """Text of an HTML body: scripts, styles and head dropped, blocks on their own lines, quoted blocks
    marked with "> " (so the quote cutter sees them). Nothing is fetched or executed; entities are decoded."""

    SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "object", "iframe", "svg"})
    BLOCK = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "ul", "ol", "hr", "section"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.skipping = 0
        self.quoting = 0

    def _newline(self) -> None:
        if self.lines[-1].strip():
            self.lines.append("")

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag == "blockquote":
            self._newline()
            self.quoting += 1
        elif tag in self.BLOCK:
            self._newline()

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag in self.BLOCK:
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "blockquote":
            self._newline()
            self.quoting = max(0, self.quoting - 1)
        elif tag in self.BLOCK:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        words = " ".join(data.split())
        if not words:
            return
        if not self.lines[-1]:
            self.lines[-1] = "> " * self.quoting
            words = words.lstrip()
        elif not self.lines[-1].endswith(" "):
            words = " " + words
        self.lines[-1] += words


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html[:MAX_HTML_CHARS])
        parser.close()
    except Exception:  # noqa: BLE001 — the tokenizer is lenient; whatever it read so far is the text
        pass
    return "\n".join(line.rstrip() for line in parser.lines).strip()


_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|wg|tr|пересл)\s*:", re.IGNORECASE)


def _drop_trailing_quote(text: str) -> str:
    """A reply quoted with "> " at the bottom and no "On … wrote:" line above it: the quote goes."""
    lines = text.rstrip().split("\n")
    end = len(lines)
    while end and (lines[end - 1].startswith(">") or not lines[end - 1].strip()):
        end -= 1
    return "\n".join(lines[:end]) if end < len(lines) else text


def strip_quoted(text: str, *, subject: str = "") -> str:
    """What the sender wrote this time: quoted replies (and the "On … wrote:" line) cut. A forward (its subject
    says so) is kept whole — the forwarded report is the point —, and so is a message that would be left empty."""
    if not text.strip():
        return ""
    try:
        if _FORWARD_SUBJECT.match(subject) and (quotequail.unwrap(text) or {}).get("type") == "forward":
            return text.strip()
        parts = quotequail.quote(text, limit=100_000, quote_intro_line=True)
        kept = "\n".join(part for expanded, part in parts if expanded)
    except Exception:  # noqa: BLE001 — a heuristic on untrusted text: failing means keeping the text
        return text.strip()
    kept = _drop_trailing_quote(kept).strip()
    return kept or text.strip()


def _content(part, defects: list[str]) -> str:
    try:
        return part.get_content()
    except Exception as exc:  # noqa: BLE001 — unknown charsets, broken encodings: decode leniently instead
        defects.append(f"body: {type(exc).__name__}")
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)


def _body(message: EmailMessage, defects: list[str]) -> tuple[str, bool, set[int]]:
    """The text body, whether it came from HTML alone, and the ids of the parts used for it."""
    try:
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
    except Exception as exc:  # noqa: BLE001 — a malformed structure: no body, attachments may still be read
        defects.append(f"structure: {type(exc).__name__}")
        return "", False, set()
    used = {id(p) for p in (plain, html) if p is not None}
    if plain is not None:
        return _content(plain, defects).replace("\r\n", "\n").strip(), False, used
    if html is not None:
        return html_to_text(_content(html, defects)), True, used
    return "", False, used


def _attachments(message: EmailMessage, used: set[int], defects: list[str]) -> tuple[MailAttachment, ...]:
    """Every leaf part that is not the body: anything with a file name, anything that is not text, and
    text marked as an attachment. Parts of an attached message (a forwarded report) are included."""
    found = []
    try:
        parts = [p for p in message.walk() if not p.is_multipart() and id(p) not in used and p is not message]
    except Exception as exc:  # noqa: BLE001 — see _body
        defects.append(f"structure: {type(exc).__name__}")
        return ()
    for part in parts:
        try:
            filename = part.get_filename()
            content_type = part.get_content_type()
            disposition = part.get_content_disposition()
        except Exception as exc:  # noqa: BLE001 — a broken part header costs that part's metadata only
            defects.append(f"part: {type(exc).__name__}")
            filename, content_type, disposition = None, "application/octet-stream", "attachment"
        if content_type.startswith("text/") and not filename and disposition != "attachment":
            continue  # an alternative body (another text/plain or text/html), not a file
        if content_type == "message/rfc822":
            continue  # its own parts are walked
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        defects.extend(type(d).__name__ for d in part.defects)
        found.append(MailAttachment(safe_filename(filename), content_type, payload))
    return tuple(found)


def parse(raw: bytes, *, headers_only: bool = False, size: int | None = None) -> ParsedMail:
    """Read one message; never raises. `headers_only`: the body is not parsed (a message over the size limit).
    `size`: the whole message's size when `raw` is only its first bytes (a huge one fetched in part from the
    mailbox): then it is `truncated`, and no attachment is read — the last one would be cut short."""
    sha256 = hashlib.sha256(raw).hexdigest()
    truncated = size is not None and size > len(raw)
    size = size if truncated else len(raw)
    try:
        if headers_only:
            message = BytesHeaderParser(policy=policy.default).parsebytes(raw)
        else:
            message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 — the parser gave up: keep the bytes and say why
        return ParsedMail(
            message_id=synthetic_message_id(raw),
            synthetic_id=True,
            sha256=sha256,
            size=size,
            in_reply_to=None,
            references=(),
            subject="",
            sender=None,
            sender_name=None,
            date=None,
            first_received=None,
            noise=None,
            body="",
            text="",
            html_only=False,
            attachments=(),
            authentication_results=(),
            defects=(type(exc).__name__,),
            truncated=truncated,
            unparseable=storable(f"the message cannot be parsed ({type(exc).__name__}: {exc})")[:500],
        )
    reader = _Reader(message)
    message_id, synthetic = _message_id(reader, raw)
    sender, sender_name = _sender(reader)
    in_reply_to = MESSAGE_ID.search(str(reader.get("In-Reply-To") or ""))
    references = MESSAGE_ID.findall(" ".join(reader.get_all("References")))[-MAX_REFERENCES:]
    body, html_only, attachments = "", False, ()
    if not headers_only:
        body, html_only, used = _body(message, reader.defects)
        body = storable(body)
        if not truncated:
            attachments = _attachments(message, used, reader.defects)
    subject = one_line(str(reader.get("Subject") or ""), 1000)
    unparseable = None
    if not message.keys():
        unparseable = "the message cannot be parsed (no header lines)"
    return ParsedMail(
        message_id=message_id,
        synthetic_id=synthetic,
        sha256=sha256,
        size=size,
        in_reply_to=in_reply_to.group(0) if in_reply_to else None,
        references=tuple(references),
        subject=subject,
        sender=sender,
        sender_name=sender_name,
        date=_date(reader.get("Date")),
        first_received=_first_received(reader),
        noise=_noise(reader, sender),
        body=body,
        text=strip_quoted(body, subject=subject),
        html_only=html_only,
        attachments=attachments,
        authentication_results=tuple(storable(r) for r in reader.get_all("Authentication-Results")),
        defects=tuple(dict.fromkeys(reader.defects)),
        headers_only=headers_only,
        truncated=truncated,
        unparseable=unparseable,
    )
