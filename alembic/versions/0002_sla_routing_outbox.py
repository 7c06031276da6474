"""sla routing outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 08:34:15.447405
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "duty_fallback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_duty_fallback_single_row")),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_duty_fallback_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_fallback")),
    )
    op.create_table(
        "duty_shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_duty_shifts_ends_after_start")),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_duty_shifts_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_shifts")),
    )
    op.create_index(op.f("ix_duty_shifts_person_id"), "duty_shifts", ["person_id"], unique=False)
    op.create_index(op.f("ix_duty_shifts_starts_at"), "duty_shifts", ["starts_at"], unique=False)
    op.create_table(
        "leave",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("last_day >= first_day", name=op.f("ck_leave_ordered")),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_leave_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leave")),
    )
    op.create_index(op.f("ix_leave_person_id"), "leave", ["person_id"], unique=False)
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=True),
        sa.Column("event", sa.String(length=60), nullable=False),
        sa.Column("audience", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("recipient_person_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dedupe_key", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("audience IN ('customer', 'internal')", name=op.f("ck_notifications_audience")),
        sa.CheckConstraint("channel IN ('slack', 'email')", name=op.f("ck_notifications_channel")),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'failed', 'dead')", name=op.f("ck_notifications_status")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_person_id"], ["people.id"], name=op.f("fk_notifications_recipient_person_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name=op.f("fk_notifications_request_id_release_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    op.create_index(op.f("ix_notifications_request_id"), "notifications", ["request_id"], unique=False)
    op.create_index(op.f("ix_notifications_status"), "notifications", ["status"], unique=False)
    op.create_table(
        "sla_crossings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.String(length=20), nullable=False),
        sa.Column("crossed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name=op.f("fk_sla_crossings_request_id_release_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_crossings")),
        sa.UniqueConstraint("request_id", "severity", "threshold", name="uq_sla_crossings_once"),
    )
    op.create_index(op.f("ix_sla_crossings_request_id"), "sla_crossings", ["request_id"], unique=False)
    for table in ("duty_fallback", "duty_shifts", "leave", "notifications", "sla_crossings"):
        op.execute(f"ALTER TABLE {table} OWNER TO rr_app")


def downgrade() -> None:
    op.drop_index(op.f("ix_sla_crossings_request_id"), table_name="sla_crossings")
    op.drop_table("sla_crossings")
    op.drop_index(op.f("ix_notifications_status"), table_name="notifications")
    op.drop_index(op.f("ix_notifications_request_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(op.f("ix_leave_person_id"), table_name="leave")
    op.drop_table("leave")
    op.drop_index(op.f("ix_duty_shifts_starts_at"), table_name="duty_shifts")
    op.drop_index(op.f("ix_duty_shifts_person_id"), table_name="duty_shifts")
    op.drop_table("duty_shifts")
    op.drop_table("duty_fallback")
