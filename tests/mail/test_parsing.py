"""The pure side of e-mail intake: parsing what anyone may send, the receiving server's verdict, threading
and subject tags, and turning attachments (zips and bombs included) into samples."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from email.message import EmailMessage

import pytest

from release_requests.mail import parsing
from release_requests.mail.attachments import unpack
from release_requests.mail.authentication import meets, read_verdict
from release_requests.mail.parsing import MailAttachment, parse
from release_requests.mail.threading import locate, read_subject
from release_requests.notifications import transports
from tests.mail.conftest import HUGE_MESSAGE_ID, SAMPLE, make_zip, message

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


@pytest.mark.parametrize(
    "message_id",
    [
        b"<ab\x00cd@customer.example>",  # Postgres text refuses NUL
        HUGE_MESSAGE_ID,
        b"<" + b"x" * 251 + b">",
        b"<a b@customer.example>",
        b"<caf\xc3\xa9@customer.example>",
    ],
)
def test_only_a_printable_ascii_message_id_is_taken_anything_else_gets_the_hash_of_the_bytes(message_id):
    raw = message(sender=CONTACT, message_id="<MARK@x>", in_reply_to="<MARK@x>", references="<ok@x> <MARK@x>")
    raw = raw.replace(b"<MARK@x>", message_id)
    parsed = parse(raw)
    assert parsed.synthetic_id and parsed.message_id == f"<{parsed.sha256}@inbound.invalid>"
    assert parsed.in_reply_to is None and parsed.references == ("<ok@x>",)
    longest = "<" + "x" * 250 + ">"
    assert parse(message(sender=CONTACT, message_id=longest)).message_id == longest


def test_intake_and_outgoing_mail_share_one_message_id_pattern():
    assert parsing.MESSAGE_ID is transports.MESSAGE_ID_PATTERN


def test_nul_is_removed_from_everything_that_is_stored():
    raw = message(
        sender="Iv NUL an <ivan@customer.example>",
        subject="Payroll NUL flagged",
        text="the file NUL is flagged",
        attachments=(("pay NUL roll.exe", SAMPLE),),
        authentication_results="mx.vendor.example; spf=pass NUL smtp.mailfrom=customer.example",
    ).replace(b" NUL ", b"\x00")
    parsed = parse(raw)
    assert (parsed.sender_name, parsed.subject, parsed.body, parsed.text) == (
        "Ivan",
        "Payrollflagged",
        "the fileis flagged",
        "the fileis flagged",
    )
    assert parsed.attachments[0].filename == "pay[U+0000]roll.exe"  # shown, as every control character
    assert "\x00" not in "".join(parsed.authentication_results)
    assert parsing.storable("a\x00b\udcff") == "ab\ufffd"  # undecodable bytes kept as U+FFFD


def test_a_truncated_message_keeps_its_true_size_and_reads_no_attachment():
    whole = message(sender=CONTACT, text="Everything is flagged.", attachments=(("payroll.exe", SAMPLE),))
    cut = parse(whole[:-200], size=len(whole))
    assert (cut.truncated, cut.size, cut.attachments) == (True, len(whole), ())
    assert cut.text == "Everything is flagged."
    assert parse(whole, size=len(whole)) == parse(whole)  # the whole message: not truncated


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

    def find(in_reply_to, references, subject=subject, owned=lambda request_id: True):
        return locate(
            in_reply_to=in_reply_to, references=references, subject=subject, id_prefix="RR", known=known, owned=owned
        )

    first = find("<b@x>", ["<a@x>", "<c@x>"])
    assert (first.request_id, first.via, first.subject_id) == ("RR-2026-000002", "In-Reply-To", "RR-2026-000009")
    refs = find("<z@x>", ["<a@x>", "<c@x>", "<y@x>"])
    assert (refs.request_id, refs.via) == ("RR-2026-000003", "References")
    by_subject = find(None, ["<y@x>"])
    assert (by_subject.request_id, by_subject.via) == ("RR-2026-000009", "subject")
    nothing = find(None, [], subject="RR-2026-000009 without brackets")
    assert nothing.request_id is None


def test_a_step_naming_someone_elses_request_does_not_end_threading():
    known = {"<theirs@x>": "RR-2026-000001", "<mine@x>": "RR-2026-000002"}.get
    mine = {"RR-2026-000002", "RR-2026-000009"}.__contains__

    def find(in_reply_to, references, subject="Re: flagged"):
        return locate(
            in_reply_to=in_reply_to, references=references, subject=subject, id_prefix="RR", known=known, owned=mine
        )

    refs = find("<theirs@x>", ["<mine@x>", "<theirs@x>"])
    assert (refs.request_id, refs.via, refs.passed_over) == ("RR-2026-000002", "References", ("In-Reply-To",))
    subject = find("<theirs@x>", ["<theirs@x>"], subject="Re: [RR-2026-000009] flagged")
    assert (subject.request_id, subject.via, subject.passed_over) == ("RR-2026-000009", "subject", ("In-Reply-To",))
    none = find(None, ["<theirs@x>"], subject="Re: [RR-2026-000001] flagged")
    assert (none.request_id, none.passed_over) == (None, ("References", "subject"))


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
    assert [n.split(":")[1].strip() for n in total.notes] == ["over the message's unpacked limit of 3000000 bytes"] * 2


def test_one_unpacked_budget_for_the_whole_message_not_one_per_archive():
    # five small zips, each unpacking to the whole budget (as five 100 kB zips of four 25 MiB members would)
    zips = [
        _attachment(f"z{n}.zip", make_zip([(f"z{n}-{i}.bin", bytes([n * 4 + i]) * 740_000) for i in range(4)]))
        for n in range(5)
    ]
    unpacked = unpack([*zips, _attachment("notes.txt", b"x" * 10)], **LIMITS)
    assert sum(len(s.data) for s in unpacked.samples) <= LIMITS["max_unpacked"]
    assert [s.filename for s in unpacked.samples] == ["z0-0.bin", "z0-1.bin", "z0-2.bin", "z0-3.bin", "notes.txt"]
    over = [n for n in unpacked.notes if n.endswith("over the message's unpacked limit of 3000000 bytes")]
    assert len(over) == 16 and over[0].startswith("z1.zip → z1-0.bin")
    # a plain attachment spends the same budget
    plain = unpack([_attachment("a.bin", b"a" * 900_000)] * 4, **LIMITS)
    assert len(plain.samples) == 3 and plain.notes == ("a.bin: over the message's unpacked limit of 3000000 bytes",)


def test_a_member_costs_its_size_in_memory_once():
    size = 20_000_000
    archive = make_zip([("big.bin", b"\x00" * size)])
    limits = {**LIMITS, "max_bytes": 2 * size, "max_unpacked": 2 * size}
    tracemalloc.start()
    try:
        unpacked = unpack([_attachment("big.zip", archive)], **limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(unpacked.samples[0].data) == size
    assert peak < 1.3 * size  # the read buffer is handed over, not copied


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
