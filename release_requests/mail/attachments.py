"""A message's attachments → the samples to store, and a note for everything left out.

Samples may be malware and archives may be bombs, so nothing here executes, renders or trusts a header:

- at most `[email] max_attachments` files per message (archive members included), each at most
  `[samples] max_bytes`;
- a zip is recognised by its first bytes, not its name, and opened with the standard `zipfile`: encrypted
  members are tried with `[email] archive_passwords` (the samples convention: `infected`);
- members are counted before anything is read; each member's declared size is checked and its read is
  capped as well (a declared size can lie);
- ONE budget per message, `[email] max_unpacked_bytes`, for everything kept in memory to be stored: every
  member of every archive and every plain attachment together (five small zips that unpack to 100 MiB
  each stop at one budget, not five);
- an archive inside the archive is stored as it is, not opened; an archive `zipfile` cannot open (AES
  encryption, an unknown password, a broken directory) is stored whole, with a note saying so.

Every file left out gets a note (`name: why`) that lands on the request's description and the mail row.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from release_requests.mail.parsing import MailAttachment
from release_requests.samples.names import safe_filename

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's directory
ARCHIVE_MAGIC = (*ZIP_MAGIC, b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
AES_METHOD = 99  # WinZip AES: the standard library cannot decrypt it
MAX_MEMBERS = 1000  # an archive listing more is not opened at all
_CHUNK = 1 << 16


@dataclass(frozen=True)
class SampleFile:
    filename: str | None
    data: bytes


@dataclass(frozen=True)
class Unpacked:
    samples: tuple[SampleFile, ...]
    notes: tuple[str, ...]  # "name: why", one per file left out (or stored in a way worth saying)


def is_zip(data: bytes) -> bool:
    return data.startswith(ZIP_MAGIC)


def _label(name: str | None) -> str:
    return name or "(unnamed)"


class _Limits:
    """What one message may still add: files, and bytes (`room`, what is left of the message's budget)."""

    def __init__(self, *, max_files: int, max_bytes: int, max_unpacked: int, passwords: list[str]) -> None:
        self.max_files, self.max_bytes, self.max_unpacked = max_files, max_bytes, max_unpacked
        self.passwords = [p.encode() for p in passwords]
        self.samples: list[SampleFile] = []
        self.notes: list[str] = []
        self.kept = 0  # bytes of `samples`

    @property
    def full(self) -> bool:
        return len(self.samples) >= self.max_files

    @property
    def room(self) -> int:
        return self.max_unpacked - self.kept

    def over_budget(self, label: str) -> None:
        self.notes.append(f"{label}: over the message's unpacked limit of {self.max_unpacked} bytes")

    def take(self, name: str | None, data: bytes) -> None:
        if self.full:
            self.notes.append(f"{_label(name)}: more than {self.max_files} files in one message")
        elif len(data) > self.max_bytes:
            self.notes.append(f"{_label(name)}: {len(data)} bytes, over the sample limit of {self.max_bytes}")
        elif len(data) > self.room:
            self.over_budget(_label(name))
        else:
            self.samples.append(SampleFile(name, data))
            self.kept += len(data)


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, pwd: bytes | None, cap: int) -> bytes | None:
    """The member's bytes, or None if it yields more than `cap` (whatever its header declared). Written chunk by
    chunk into one buffer whose bytes are handed over as they are (`getvalue` copies nothing), so a member
    costs its size in memory once, not twice."""
    out = io.BytesIO()
    with archive.open(info, pwd=pwd) as member:
        while chunk := member.read(_CHUNK):
            out.write(chunk)
            if out.tell() > cap:
                return None
    return out.getvalue()


def _open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: _Limits, cap: int) -> bytes | None | str:
    """The member's bytes, None if over `cap`, or a string saying why it could not be read."""
    encrypted = bool(info.flag_bits & 0x1)
    for pwd in limits.passwords if encrypted else [None]:
        try:
            return _read_capped(archive, info, pwd, cap)
        except RuntimeError:  # "Bad password"
            continue
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, ValueError) as exc:
            if encrypted:  # a wrong password can pass the one-byte check and fail the CRC: try the next
                continue
            return f"unreadable ({type(exc).__name__})"
    return "no password in archive_passwords opens it"


def _unzip(name: str | None, data: bytes, limits: _Limits) -> None:
    """Store the members of a zip, or the zip itself when it cannot be opened the way samples are sent."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        limits.notes.append(f"{_label(name)}: not a readable zip ({type(exc).__name__}); stored as it is")
        limits.take(name, data)
        return
    if len(members) > MAX_MEMBERS:
        limits.notes.append(f"{_label(name)}: {len(members)} members (limit {MAX_MEMBERS}); stored unopened")
        limits.take(name, data)
        return
    if any(i.compress_type == AES_METHOD for i in members):
        limits.notes.append(f"{_label(name)}: AES-encrypted zip (cannot be opened here); stored unopened")
        limits.take(name, data)
        return
    failed = 0
    for info in members:
        member_name = safe_filename(info.filename)
        label = f"{_label(name)} → {_label(member_name)}"
        if limits.full:
            limits.notes.append(f"{label}: more than {limits.max_files} files in one message")
            continue
        if info.file_size > limits.max_bytes:
            limits.notes.append(
                f"{label}: declares {info.file_size} bytes, over the sample limit of {limits.max_bytes}"
            )
            continue
        if info.file_size > limits.room:
            limits.over_budget(label)
            continue
        content = _open_member(archive, info, limits, min(limits.max_bytes, limits.room))
        if isinstance(content, str):
            failed += 1
            limits.notes.append(f"{label}: {content}")
            continue
        if content is None:
            limits.notes.append(f"{label}: unpacks to more than it declares or than the limits allow; left out")
            continue
        if content.startswith(ARCHIVE_MAGIC):
            limits.notes.append(f"{label}: an archive inside the archive; stored as it is, not opened")
        limits.take(member_name, content)
    if failed and failed == len(members):  # nothing opened: the lab gets the archive itself
        limits.notes.append(f"{_label(name)}: no member could be opened; the archive is stored as it is")
        limits.take(name, data)


def unpack(
    attachments: tuple[MailAttachment, ...] | list[MailAttachment],
    *,
    max_files: int,
    max_bytes: int,
    max_unpacked: int,
    passwords: list[str],
) -> Unpacked:
    """The files to store as samples from `attachments`, and a note for everything else."""
    limits = _Limits(max_files=max_files, max_bytes=max_bytes, max_unpacked=max_unpacked, passwords=passwords)
    for attachment in attachments:
        if is_zip(attachment.data):
            _unzip(attachment.filename, attachment.data, limits)
        else:
            limits.take(attachment.filename, attachment.data)
    return Unpacked(tuple(limits.samples), tuple(limits.notes))
