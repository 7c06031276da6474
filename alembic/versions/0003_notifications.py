"""notifications: customer preferences, Slack decisions, outbox wake-up trigger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_notification_prefs",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("slack_enabled", sa.Boolean(), nullable=False),
        sa.Column("email_enabled", sa.Boolean(), nullable=False),
        sa.Column("email_recipients", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=True),
        sa.Column("quiet_hours", sa.String(length=11), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "language IS NULL OR language IN ('en', 'ru')", name=op.f("ck_customer_notification_prefs_language")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_notification_prefs_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_notification_prefs")),
    )
    op.create_table(
        "slack_decisions",
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("notification_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=False),
        sa.Column("slack_user_id", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notifications.id"], name=op.f("fk_slack_decisions_notification_id_notifications")
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_slack_decisions_person_id_people")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name=op.f("fk_slack_decisions_request_id_release_requests")
        ),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_slack_decisions")),
        sa.UniqueConstraint("notification_id", "person_id", name="uq_slack_decisions_message_person"),
    )
    op.create_index(op.f("ix_slack_decisions_request_id"), "slack_decisions", ["request_id"], unique=False)
    op.create_index(
        "ix_notifications_due",
        "notifications",
        ["next_attempt_at"],
        unique=False,
        postgresql_where="status IN ('queued', 'failed', 'sending')",
    )
    for table in ("customer_notification_prefs", "slack_decisions"):
        op.execute(f"ALTER TABLE {table} OWNER TO rr_app")
    # Wake the deliverer as soon as a row is committed (NOTIFY is delivered at commit, never for a rollback);
    # a retried row (dead → queued) wakes it too. The deliverer still polls, so a lost wake-up only costs time.
    op.execute(
        """
        CREATE FUNCTION notifications_wake_deliverer() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('rr_outbox', NEW.id);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER notifications_wake_deliverer AFTER INSERT OR UPDATE OF status ON notifications "
        "FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION notifications_wake_deliverer()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER notifications_wake_deliverer ON notifications")
    op.execute("DROP FUNCTION notifications_wake_deliverer()")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_index(op.f("ix_slack_decisions_request_id"), table_name="slack_decisions")
    op.drop_table("slack_decisions")
    op.drop_table("customer_notification_prefs")
