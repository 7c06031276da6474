"""intake by e-mail and phone, and paging: inbound mail (kept whole, one row per Message-ID), IMAP cursors,
a phone call's caller and callback number on the request, pages with their escalation chain, and the
`pager` outbox channel (the paging service's Events v2 webhook)

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NEW_TABLES = ("inbound_mail", "mailbox_cursors", "pages")


def _fk(table: str, column: str, target: str, key: str = "id") -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.{key}", name=op.f(f"fk_{table}_{column}_{target}"))


def _now(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _set_channels(channels: str) -> None:
    op.drop_constraint(op.f("ck_notifications_channel"), "notifications", type_="check")
    op.create_check_constraint(op.f("ck_notifications_channel"), "notifications", f"channel IN ({channels})")


def upgrade() -> None:
    op.add_column("release_requests", sa.Column("caller_name", sa.String(200), nullable=True))
    op.add_column("release_requests", sa.Column("callback_number", sa.String(40), nullable=True))
    _set_channels("'slack', 'email', 'webhook', 'pager'")
    op.create_table(
        "inbound_mail",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.String(998), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sender", sa.String(254)),
        sa.Column("sender_name", sa.String(200)),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(20), _fk("inbound_mail", "request_id", "release_requests")),
        sa.Column("customer_id", sa.String(40), _fk("inbound_mail", "customer_id", "customers")),
        sa.Column("authentication", JSONB, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("assigned_by_id", sa.Integer, _fk("inbound_mail", "assigned_by_id", "people")),
        sa.Column("assigned_at", sa.DateTime(timezone=True)),
        _now(),
        sa.CheckConstraint(
            "outcome IN ('filed', 'threaded', 'answered', 'held', 'ignored', 'assigned')",
            name=op.f("ck_inbound_mail_outcome"),
        ),
        sa.CheckConstraint("source IN ('imap', 'pipe', 'api')", name=op.f("ck_inbound_mail_source")),
        sa.UniqueConstraint("message_id", name=op.f("uq_inbound_mail_message_id")),
    )
    op.create_index(op.f("ix_inbound_mail_sender"), "inbound_mail", ["sender"])
    op.create_index(op.f("ix_inbound_mail_request_id"), "inbound_mail", ["request_id"])
    op.create_index(op.f("ix_inbound_mail_customer_id"), "inbound_mail", ["customer_id"])
    op.create_index("ix_inbound_mail_outcome_received", "inbound_mail", ["outcome", "received_at"])
    op.create_table(
        "mailbox_cursors",
        sa.Column("mailbox", sa.String(300), primary_key=True),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("last_uid", sa.BigInteger, nullable=False),
        _now("updated_at"),
    )
    op.create_table(
        "pages",
        sa.Column("request_id", sa.String(20), _fk("pages", "request_id", "release_requests"), primary_key=True),
        sa.Column("dedup_key", sa.String(100), nullable=False),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("chain", JSONB, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("paged_person_id", sa.Integer, _fk("pages", "paged_person_id", "people")),
        sa.Column("paged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("escalate_at", sa.DateTime(timezone=True)),
        sa.Column("acknowledged_by_id", sa.Integer, _fk("pages", "acknowledged_by_id", "people")),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("acknowledged_via", sa.String(10)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        _now(),
        _now("updated_at"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint(
            "status IN ('paging', 'acknowledged', 'resolved', 'exhausted')", name=op.f("ck_pages_status")
        ),
        sa.CheckConstraint(
            "acknowledged_via IN ('slack', 'cli', 'api', 'web')", name=op.f("ck_pages_acknowledged_via")
        ),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_pages_dedup_key")),
    )
    op.create_index("ix_pages_escalate_at", "pages", ["escalate_at"], postgresql_where=sa.text("status = 'paging'"))
    for table in NEW_TABLES:  # like every business table, the app role owns them
        op.execute(f"ALTER TABLE {table} OWNER TO rr_app")


def downgrade() -> None:
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
    op.execute("DELETE FROM notifications WHERE channel = 'pager'")
    _set_channels("'slack', 'email', 'webhook'")
    op.drop_column("release_requests", "callback_number")
    op.drop_column("release_requests", "caller_name")
