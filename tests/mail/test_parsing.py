"""The pure side of e-mail intake: parsing what anyone may send, the receiving server's verdict, threading
and subject tags, and turning attachments (zips and bombs included) into samples."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

import pytest

from release_requests.mail.attachments import unpack
from release_requests.mail.authentication import meets, read_verdict
from release_requests.mail.parsing import MailAttachment, parse
from release_requests.mail.threading import locate, read_subject
from tests.mail.conftest import SAMPLE, make_zip, message

CONTACT = "Ivan Petrov <Ivan.Petrov@Customer.example>"
LIMITS = {"max_files": 20, "max_bytes": 1_000_000, "max_unpacked": 3_000_000, "passwords": ["infected"]}


def test_a_plain_message_is_read_whole():
    raw = message(
        sender=CONTACT,
        subject="=?utf-8?b?W1MxXSDQl9Cw0YDQv9C70LDRgtCw?=",  # "[S1] Зарплата", encoded as mail programs do
        message_id="<abc@customer.example>",
        in_reply_to="<n1@release-requests>",
        references="<RR-2026-000123@release-requests> <n1@release-requests>",
        received="from mx.customer.example by mx.vendor.example; Mon, 01 Jun 2026 10:00:00 +0000",
        attachments=(("invoice\u202egpj.exe", SAMPLE),),
    )
    parsed = parse(raw)
    assert parsed.message_id == "<abc@customer.example>" and not parsed.synthetic_id
    assert parsed.sender == "ivan.petrov@customer.example" and parsed.sender_name == "Ivan Petrov"
    assert parsed.subject == "[S1] Зарплата"
    assert parsed.in_reply_to == "<n1@release-requests>"
    assert parsed.references == ("<RR-2026-000123@release-requests>", "<n1@release-requests>")
    assert parsed.first_received.isoformat() == "2026-06-01T10:00:00+00:00"
    assert parsed.noise is None and parsed.unparseable is None
    assert parsed.text.startswith("Our payroll calculator")
    assert parsed.attachments == (MailAttachment("invoice[U+202E]gpj.exe", "application/octet-stream", SAMPLE),)


def test_without_a_message_id_the_id_is_the_hash_of_the_bytes():
    msg = EmailMessage()
    msg["From"] = "a@customer.example"
    msg["Subject"] = "no id"
    msg.set_content("hello")
    raw = bytes(msg)
    first, again = parse(raw), parse(raw)
    assert first.synthetic_id and first.message_id == again.message_id == f"<{first.sha256}@inbound.invalid>"
    assert parse(raw + b"more").message_id != first.message_id


def test_quoted_replies_are_cut_and_forwards_are_kept():
    reply = "Here is the file.\n\nOn Mon, 1 Jun 2026 at 10:00, Support <s@vendor.example> wrote:\n> Which file?\n"
    assert parse(message(sender=CONTACT, text=reply)).text == "Here is the file."
    bottom = "It is C:\\payroll.exe\n\n> Which file?\n> Please say.\n"
    assert parse(message(sender=CONTACT, text=bottom)).text == "It is C:\\payroll.exe"
    forward = "See below.\n\n---------- Forwarded message ---------\nFrom: User <u@x.example>\nSubject: FP\n\nflagged!"
    assert "flagged!" in parse(message(sender=CONTACT, subject="Fwd: FP", text=forward)).text
    outlook = "Yes.\n\n-----Original Message-----\nFrom: Support\nSent: Monday\nSubject: x\n\nWhich file?"
    assert parse(message(sender=CONTACT, subject="RE: x", text=outlook)).text == "Yes."


def test_an_html_only_message_becomes_text_without_scripts_styles_or_fetching():
    html = (
        "<html><head><title>t</title><style>p{color:red}</style><script>alert('x')</script></head><body>"
        "<p>Payroll &amp; HR app <b>flagged</b></p><img src='http://tracker.example/p.png'>"
        "<div>since 09:00</div><blockquote>old question</blockquote></body></html>"
    )
    parsed = parse(message(sender=CONTACT, text=None, html=html))
    assert parsed.html_only
    assert parsed.body == "Payroll & HR app flagged\nsince 09:00\n> old question"
    assert parsed.text == "Payroll & HR app flagged\nsince 09:00"
    assert "alert" not in parsed.body and "color" not in parsed.body and "tracker" not in parsed.body


def test_the_text_part_wins_over_the_html_part():
    parsed = parse(message(sender=CONTACT, text="plain words", html="<p>html words</p>"))
    assert parsed.text == "plain words" and not parsed.html_only and parsed.attachments == ()


MALFORMED = [
    b"",
    b"\x00\x01\x02\xff garbage without headers",
    b"From: a@customer.example\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nno boundary ever\r\n",
    b"From: a@customer.example\r\nContent-Type: multipart/mixed\r\n\r\n--\r\n--\r\n",
    b"From: =?utf-8?q?broken?= <<<a@@b>>\r\nSubject: =?x-unknown?b?!!!?=\r\nDate: yesterday-ish\r\n\r\nbody",
    b'From: a@customer.example\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
    b"Content-Type: text/plain; charset=no-such-charset\r\nContent-Transfer-Encoding: base64\r\n\r\n!!notbase64!!\r\n"
    b"--zz\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=bad''%ZZ\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nTVqQ\r\n--zz--\r\n",
    b"Message-ID: <" + b"x" * 5000 + b">\r\nFrom: a@customer.example\r\nReferences: " + b"<r@x> " * 5000 + b"\r\n\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_mime_never_raises(raw):
    parsed = parse(raw)
    assert parsed.message_id.startswith("<") and len(parsed.message_id) <= 998
    assert len(parsed.references) <= 50


def test_malformed_mime_keeps_what_can_be_read_and_says_what_was_wrong():
    parsed = parse(MALFORMED[5])
    assert parsed.sender == "a@customer.example"
    assert "body: LookupError" in parsed.defects  # the unknown charset, decoded leniently instead
    assert len(parsed.attachments) == 1 and parsed.attachments[0].data == b"MZ\x90"
    assert parse(MALFORMED[1]).unparseable == "the message cannot be parsed (no header lines)"
    assert parse(MALFORMED[4]).sender is None


@pytest.mark.parametrize(
    ("headers", "sender", "says"),
    [
        ({"auto_submitted": "auto-replied"}, CONTACT, "Auto-Submitted: auto-replied"),
        ({"auto_submitted": "auto-generated; owner-email=x@y"}, CONTACT, "Auto-Submitted: auto-generated"),
        ({"precedence": "bulk"}, CONTACT, "Precedence: bulk"),
        ({"precedence": "List"}, CONTACT, "Precedence: list"),
        ({"x_loop": "support@vendor.example"}, CONTACT, "X-Loop present"),
        ({"x_autoreply": "yes"}, CONTACT, "X-Autoreply present"),
        ({"return_path": "<>"}, CONTACT, "bounce (empty Return-Path)"),
        ({}, "MAILER-DAEMON@mx.customer.example", "sent by mailer-daemon"),
        ({}, "No-Reply <no-reply@customer.example>", "sent by no-reply"),
        ({}, "postmaster@customer.example", "sent by postmaster"),
    ],
)
def test_machine_written_mail_is_noise(headers, sender, says):
    assert parse(message(sender=sender, **headers)).noise.startswith(says)


def test_a_person_writing_is_not_noise_even_through_a_list():
    assert parse(message(sender=CONTACT, auto_submitted="no")).noise is None
    assert parse(message(sender=CONTACT, list_id="<soc.customer.example>")).noise is None  # a team's group address


# --- authentication -------------------------------------------------------------------------------

TRUSTED = ["mx.vendor.example"]


def _verdict(*headers: str, from_domain: str = "customer.example"):
    return read_verdict(headers, trusted=TRUSTED, from_domain=from_domain)


def test_only_trusted_servers_are_believed_and_the_topmost_counts():
    forged = "mx.customer.example; spf=pass smtp.mailfrom=customer.example; dmarc=pass"
    assert _verdict(forged).authserv_id is None
    ours = (
        "mx.vendor.example; spf=fail smtp.mailfrom=customer.example; dkim=none; dmarc=fail header.from=customer.example"
    )
    older = "mx.vendor.example; spf=pass smtp.mailfrom=customer.example; dmarc=pass"
    verdict = _verdict(forged, ours, older)
    assert (verdict.authserv_id, verdict.spf, verdict.dkim, verdict.dmarc) == (
        "mx.vendor.example",
        "fail",
        "none",
        "fail",
    )
    assert meets("spf_or_dkim", verdict)[0] is False and meets("dmarc", verdict)[0] is False
    assert meets("none", verdict) == (True, "authentication not required")
    assert meets("dmarc", _verdict())[1] == "no Authentication-Results from a trusted server (trusted_authserv_ids)"


def test_a_pass_counts_only_for_the_from_domain():
    header = (
        "mx.vendor.example 1; spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=bounce@mail.customer.example;\r\n"
        ' dkim=pass (2048-bit key) header.d=evil.example header.s=s1; dkim=fail header.d="customer.example"; '
        "dmarc=none"
    )
    verdict = _verdict(header)
    assert verdict.spf_aligned and not verdict.dkim_aligned and verdict.dkim == "pass"
    assert meets("spf_or_dkim", verdict)[0]
    forged_from = _verdict(header.replace("mail.customer.example", "evil.example"))
    assert not forged_from.spf_aligned and not forged_from.dkim_aligned
    ok, why = meets("spf_or_dkim", forged_from)
    assert not ok and why.startswith("neither SPF nor DKIM passed for the From domain")
    assert meets("dmarc", _verdict("mx.vendor.example; dmarc=pass header.from=customer.example"))[0]


# --- threading and subject tags -------------------------------------------------------------------


def test_threading_order_in_reply_to_then_references_right_to_left_then_subject():
    known = {"<a@x>": "RR-2026-000001", "<b@x>": "RR-2026-000002", "<c@x>": "RR-2026-000003"}.get
    subject = "Re: [RR-2026-000009] flagged"
    first = locate(in_reply_to="<b@x>", references=["<a@x>", "<c@x>"], subject=subject, id_prefix="RR", known=known)
    assert (first.request_id, first.via, first.subject_id) == ("RR-2026-000002", "In-Reply-To", "RR-2026-000009")
    refs = locate(
        in_reply_to="<z@x>", references=["<a@x>", "<c@x>", "<y@x>"], subject=subject, id_prefix="RR", known=known
    )
    assert (refs.request_id, refs.via) == ("RR-2026-000003", "References")
    by_subject = locate(in_reply_to=None, references=["<y@x>"], subject=subject, id_prefix="RR", known=known)
    assert (by_subject.request_id, by_subject.via) == ("RR-2026-000009", "subject")
    nothing = locate(
        in_reply_to=None, references=[], subject="RR-2026-000009 without brackets", id_prefix="RR", known=known
    )
    assert nothing.request_id is None


@pytest.mark.parametrize(
    ("subject", "severity", "kind", "title"),
    [
        ("[S1][FP] Payroll flagged", 1, "false_positive", "Payroll flagged"),
        ("Re: Fwd: [s2] [HOTFIX] agent crash [RR-2026-000123]", 2, "private_hotfix", "agent crash"),
        ("AW: [FN] missed dropper", 3, "false_negative", "missed dropper"),
        ("Ответ: Зарплата", 3, "false_positive", "Зарплата"),
        ("", 3, "false_positive", "(no subject)"),
        ("Re: [S1]", 1, "false_positive", "(no subject)"),
        ("x" * 400, 3, "false_positive", "x" * 300),
    ],
)
def test_subject_tags_and_title(subject, severity, kind, title):
    tags = read_subject(subject, id_prefix="RR", default_severity=3, default_kind="false_positive")
    assert (tags.severity, tags.kind, tags.title) == (severity, kind, title)


# --- attachments ----------------------------------------------------------------------------------


def _attachment(name, data):
    return MailAttachment(name, "application/octet-stream", data)


def test_a_zip_with_the_usual_password_is_opened_and_a_plain_zip_too():
    protected = make_zip([("payroll.exe", SAMPLE), ("readme.txt", b"hello")], password=b"infected")
    with pytest.raises(RuntimeError):  # the archive is really encrypted
        zipfile.ZipFile(io.BytesIO(protected)).read("payroll.exe")
    unpacked = unpack([_attachment("samples.zip", protected)], **LIMITS)
    assert [(s.filename, s.data) for s in unpacked.samples] == [("payroll.exe", SAMPLE), ("readme.txt", b"hello")]
    assert unpacked.notes == ()
    plain = unpack([_attachment("renamed.dat", make_zip([("dir/a.exe", SAMPLE)]))], **LIMITS)  # magic, not name
    assert [(s.filename, s.data) for s in plain.samples] == [("dir_a.exe", SAMPLE)]


def test_an_unknown_password_or_aes_stores_the_archive_itself_with_a_note():
    other = make_zip([("a.exe", SAMPLE)], password=b"secret")
    unpacked = unpack([_attachment("other.zip", other)], **LIMITS)
    assert [(s.filename, s.data) for s in unpacked.samples] == [("other.zip", other)]
    assert unpacked.notes[0] == "other.zip → a.exe: no password in archive_passwords opens it"
    aes = make_zip([("a.exe", SAMPLE)], aes=True)
    unpacked = unpack([_attachment("aes.zip", aes)], **LIMITS)
    assert [s.data for s in unpacked.samples] == [aes]
    assert unpacked.notes == ("aes.zip: AES-encrypted zip (cannot be opened here); stored unopened",)


def test_zip_bombs_are_stopped_by_declared_size_by_a_capped_read_and_by_the_total():
    zeros = b"\x00" * 5_000_000
    bomb = unpack([_attachment("bomb.zip", make_zip([("big.bin", zeros)]))], **LIMITS)
    assert bomb.samples == ()
    assert bomb.notes == ("bomb.zip → big.bin: declares 5000000 bytes, over the sample limit of 1000000",)
    lying = make_zip([("small.bin", zeros)], declared_size=100)  # says 100 bytes, inflates to 5 MB
    liar = unpack([_attachment("liar.zip", lying)], **LIMITS)
    assert liar.notes[0] == "liar.zip → small.bin: unreadable (BadZipFile)"  # the read stopped at 100 bytes
    assert [s.data for s in liar.samples] == [lying]  # the evidence is kept, unopened (5 kB)
    many = make_zip([(f"part{i}.bin", b"\x00" * 900_000) for i in range(5)])
    total = unpack([_attachment("many.zip", many)], **LIMITS)
    assert len(total.samples) == 3  # 3 × 900 kB fit under 3 MB unpacked; the rest is noted
    assert [n.split(":")[1].strip() for n in total.notes] == ["over the archive's unpacked limit of 3000000 bytes"] * 2


def test_nested_archives_are_stored_not_opened_and_limits_are_noted():
    inner = make_zip([("deep.exe", SAMPLE)])
    outer = make_zip([("inner.zip", inner)], password=b"infected")
    unpacked = unpack([_attachment("outer.zip", outer)], **LIMITS)
    assert [(s.filename, s.data) for s in unpacked.samples] == [("inner.zip", inner)]
    assert unpacked.notes == ("outer.zip → inner.zip: an archive inside the archive; stored as it is, not opened",)
    limits = {**LIMITS, "max_files": 2}
    crowd = unpack(
        [_attachment(f"f{i}.exe", SAMPLE) for i in range(3)] + [_attachment(None, b"x" * 2_000_000)], **limits
    )
    assert [s.filename for s in crowd.samples] == ["f0.exe", "f1.exe"]
    assert crowd.notes == ("f2.exe: more than 2 files in one message", "(unnamed): more than 2 files in one message")
    big = unpack([_attachment("big.iso", b"x" * 2_000_000)], **LIMITS)
    assert big.notes == ("big.iso: 2000000 bytes, over the sample limit of 1000000",)


def test_a_broken_zip_is_stored_as_it_is():
    broken = b"PK\x03\x04" + b"\x00" * 100
    unpacked = unpack([_attachment("broken.zip", broken)], **LIMITS)
    assert [s.data for s in unpacked.samples] == [broken]
    assert unpacked.notes[0].startswith("broken.zip: not a readable zip")
