"""Mail that reached the support mailbox, kept whole, and where each message went.

Every message read (from IMAP, a mail system's pipe, or the API) is one row, keyed by its Message-ID: a
message seen again (a re-delivery, a second poller, a retried pipe) finds its row and files nothing.
The raw bytes are kept (evidence, and what a duty manager reads before assigning a held message); the
`outcome` says what became of it and `reason` says why, in words. `mailbox_cursors` remembers the last
IMAP UID taken from each mailbox, advanced in the same transaction as the message's row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from release_requests.db import Base

# filed: a new request; threaded: added to a request as the customer's message; answered: it answered the
# request's open question (the clock runs again); held: kept for a duty manager to assign (unknown sender,
# not authenticated, malformed, too large); ignored: an auto-reply, bulk or list mail, a bounce — never
# answered; assigned: a held or ignored message a duty manager filed or attached by hand.
OUTCOMES = ("filed", "threaded", "answered", "held", "ignored", "assigned")


class InboundMail(Base):
    __tablename__ = "inbound_mail"
    __table_args__ = (
        CheckConstraint("outcome IN ('filed', 'threaded', 'answered', 'held', 'ignored', 'assigned')", name="outcome"),
        CheckConstraint("source IN ('imap', 'pipe', 'api')", name="source"),
        Index("ix_inbound_mail_outcome_received", "outcome", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # as sent (angle brackets included); a message without one gets <sha256-of-the-bytes@inbound.invalid>
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(10))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when it reached our server
    sender: Mapped[str | None] = mapped_column(String(254), index=True)  # the From address, lower-cased
    sender_name: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(1000), default="")
    size: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str | None] = mapped_column(ForeignKey("release_requests.id"), index=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    # what the receiving server said: {"authserv_id": ..., "spf": "pass", "dkim": "none", "dmarc": ...}
    authentication: Mapped[dict] = mapped_column(JSONB, default=dict)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MailboxCursor(Base):
    """The last IMAP UID taken from one mailbox (`user@host:port/INBOX`, never the password) under one
    UIDVALIDITY; a new UIDVALIDITY starts again from the first UID (Message-IDs keep that from refiling)."""

    __tablename__ = "mailbox_cursors"

    mailbox: Mapped[str] = mapped_column(String(300), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
