"""Fixtures and builders for e-mail intake tests: raw messages built with `email.message.EmailMessage` (as a
mail program would send them), zip archives written byte by byte (the standard library cannot encrypt one,
so ZipCrypto — what `zip -P infected` does — is written here), and intake configs with small limits.

The delivery fixtures (a local Slack, a real SMTP server, a deliverer, a fresh database per test) are the
notification tests' own."""

from __future__ import annotations

import random
import struct
import uuid
import zlib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import pytest

from tests.notifications.conftest import (  # noqa: F401 — fixtures shared with the notification tests
    engine,
    make_deliverer,
    scene,
    slack,
    smtp,
    smtp_server,
)

SAMPLE = b"MZ\x90\x00" + b"payroll calculator, wrongly detected\x00" * 40
# 897 random emoji: 3.6 kB that do not compress, past the 2704 bytes a Postgres btree index row may have
_EMOJI = random.Random(15)
HUGE_MESSAGE_ID = ("<" + "".join(chr(_EMOJI.randrange(0x1F300, 0x1FB00)) for _ in range(897)) + "@x>").encode()


def message(
    *,
    sender: str,
    subject: str = "Payroll app flagged",
    text: str | None = "Our payroll calculator is detected since this morning's update.\n\nRegards, SOC",
    html: str | None = None,
    message_id: str | None = None,
    attachments: tuple[tuple[str, bytes], ...] = (),
    date: datetime | None = None,
    **headers: str,
) -> bytes:
    """A message as a mail program sends it; `headers` by keyword (`in_reply_to=` → In-Reply-To)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@vendor.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@customer.example>"
    for name, value in headers.items():
        msg[name.replace("_", "-").title()] = value
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    for filename, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    return bytes(msg)


def with_email(config, *, samples_max_bytes: int | None = None, **email):
    """`config` with `[email]` settings (and the sample size limit) changed."""
    intake = config.intake
    changes = {"email": intake.email.model_copy(update=email)}
    if samples_max_bytes is not None:
        changes["samples"] = intake.samples.model_copy(update={"max_bytes": samples_max_bytes})
    return config.model_copy(update={"intake": intake.model_copy(update=changes)})


def _crc_byte(crc: int, byte: int) -> int:
    return zlib.crc32(bytes([byte]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def zipcrypto(data: bytes, password: bytes, crc: int) -> bytes:
    """PKWARE traditional encryption (APPNOTE 6.1): a 12-byte header whose last byte checks the password."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = _crc_byte(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = _crc_byte(keys[2], keys[1] >> 24)

    for byte in password:
        update(byte)
    out = bytearray()
    for byte in bytes(11) + bytes([crc >> 24]) + data:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def make_zip(
    members: list[tuple[str, bytes]],
    *,
    password: bytes | None = None,
    declared_size: int | None = None,
    aes: bool = False,
) -> bytes:
    """A zip of deflated members, optionally ZipCrypto-encrypted, lying about sizes, or marked AES (method 99)."""
    out, central = bytearray(), bytearray()
    for name, data in members:
        crc = zlib.crc32(data)
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = packer.compress(data) + packer.flush()
        flags = 0x1 if password or aes else 0
        if password:
            body = zipcrypto(body, password, crc)
        method = 99 if aes else 8
        size = len(data) if declared_size is None else declared_size
        raw_name = name.encode()
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc, len(body), size, len(raw_name), 0
        )
        out += raw_name + body
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            flags,
            method,
            0,
            0x21,
            crc,
            len(body),
            size,
            len(raw_name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += raw_name
    directory_at = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), directory_at, 0)
    return bytes(out)


@pytest.fixture
def samples_dir(tmp_path):
    path = tmp_path / "samples"
    path.mkdir()
    return path
