"""What our e-mails say about themselves in their headers: a subject that reads the same in any language
after folding, `Auto-Submitted` on every message, and a reply threaded under the customer's message."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from release_requests.notifications.render import Rendered
from release_requests.notifications.transports import build_email


def _sent(subject: str, **kwargs) -> bytes:
    rendered = Rendered(subject=subject, text="Body\n", html="<p>Body</p>", blocks=[], slack_text=subject)
    message = build_email(
        notification_id="n-1",
        request_id="RR-2026-000042",
        rendered=rendered,
        sender="MSA Support <msa@vendor.example>",
        to="soc@bank.example",
        language="ru",
        date=datetime(2026, 11, 30, 12, tzinfo=UTC),
        **kwargs,
    )
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


@pytest.mark.parametrize(
    "subject",
    [
        "[RR-2026-000001] Мы получили ваш запрос: Payroll application quarantined on all workstations",
        "[RR-2026-000001] Page: severity 1 critical request from Moscow Bank — acknowledge",
        "[RR-2026-000001] " + "Оповещение " * 30,
        "[RR-2026-000001] plain ASCII subject that is long enough to be folded by the generator " * 2,
    ],
)
def test_a_folded_subject_reads_exactly_as_written(subject):
    raw = _sent(subject)
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == subject
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=400))
def test_any_subject_survives_the_wire(subject):
    subject = " ".join(subject.split()) or "x"  # what render() makes of a subject: one line, single spaces
    assert message_from_bytes(_sent(subject), policy=policy.default)["Subject"] == subject


def test_every_message_says_a_machine_sent_it_and_a_reply_threads_under_the_customers_message():
    notice = message_from_bytes(_sent("Notice"), policy=policy.default)
    assert notice["Auto-Submitted"] == "auto-generated" and notice["X-Auto-Response-Suppress"] == "All"
    assert notice["In-Reply-To"] is None and notice["References"] == "<RR-2026-000042@release-requests>"
    reply = message_from_bytes(
        _sent("Re", in_reply_to="<abc@bank.example>", auto_submitted="auto-replied"), policy=policy.default
    )
    assert reply["In-Reply-To"] == "<abc@bank.example>" and reply["Auto-Submitted"] == "auto-replied"
    assert reply["References"] == "<RR-2026-000042@release-requests> <abc@bank.example>"
    forged = message_from_bytes(_sent("Re", in_reply_to="<a@b>\r\nBcc: x@evil.example"), policy=policy.default)
    assert forged["In-Reply-To"] is None and forged["Bcc"] is None
