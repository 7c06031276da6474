"""pipeline: builds, stage runs, sign-off events (append-only), segment triggers

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "builds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("fix", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("builder", sa.String(length=200), nullable=False),
        sa.Column("builder_person_id", sa.Integer(), nullable=True),
        sa.Column("branch", sa.String(length=200), nullable=True),
        sa.Column("commit", sa.String(length=40), nullable=True),
        sa.Column("version", sa.String(length=80), nullable=True),
        sa.Column("bundle_dir", sa.Text(), nullable=True),
        sa.Column("verification", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('waiting_input', 'pending', 'building', 'verifying', 'verified', 'failed')",
            name=op.f("ck_builds_status"),
        ),
        sa.ForeignKeyConstraint(["builder_person_id"], ["people.id"], name=op.f("fk_builds_builder_person_id_people")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name=op.f("fk_builds_request_id_release_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_builds")),
        sa.UniqueConstraint("request_id", "attempt", name="uq_builds_request_attempt"),
    )
    op.create_index(op.f("ix_builds_request_id"), "builds", ["request_id"], unique=False)
    op.create_table(
        "stage_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=False),
        sa.Column("build_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint("status IN ('awaiting', 'publishing', 'published')", name=op.f("ck_stage_runs_status")),
        sa.ForeignKeyConstraint(["build_id"], ["builds.id"], name=op.f("fk_stage_runs_build_id_builds")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name=op.f("fk_stage_runs_request_id_release_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_runs")),
        sa.UniqueConstraint("build_id", "stage", name="uq_stage_runs_build_stage"),
    )
    op.create_index(op.f("ix_stage_runs_request_id"), "stage_runs", ["request_id"], unique=False)
    op.create_table(
        "signoff_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=False),
        sa.Column("build_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "action IN ('approve', 'reject', 'revoke', 'override')", name=op.f("ck_signoff_events_action")
        ),
        sa.ForeignKeyConstraint(["build_id"], ["builds.id"], name=op.f("fk_signoff_events_build_id_builds")),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_signoff_events_person_id_people")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name=op.f("fk_signoff_events_request_id_release_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signoff_events")),
    )
    op.create_index(op.f("ix_signoff_events_request_id"), "signoff_events", ["request_id"], unique=False)
    op.create_table(
        "segment_triggers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=False),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("decision_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("dispatches", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'dispatched', 'done')", name=op.f("ck_segment_triggers_status")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name=op.f("fk_segment_triggers_request_id_release_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_triggers")),
        sa.UniqueConstraint("key", name=op.f("uq_segment_triggers_key")),
    )
    op.create_index(op.f("ix_segment_triggers_request_id"), "segment_triggers", ["request_id"], unique=False)
    op.create_index(op.f("ix_segment_triggers_status"), "segment_triggers", ["status"], unique=False)
    for table in ("builds", "stage_runs", "segment_triggers"):
        op.execute(f"ALTER TABLE {table} OWNER TO rr_app")
    # Sign-offs are granted or revoked, never edited: like the audit log, the app may only read and append.
    op.execute("REVOKE ALL ON signoff_events FROM PUBLIC")
    op.execute("GRANT SELECT, INSERT ON signoff_events TO rr_app")
    op.execute("GRANT USAGE ON SEQUENCE signoff_events_id_seq TO rr_app")
    op.execute(
        "CREATE TRIGGER signoff_events_no_update_delete BEFORE UPDATE OR DELETE ON signoff_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER signoff_events_no_update_delete ON signoff_events")
    op.drop_table("segment_triggers")
    op.drop_table("signoff_events")
    op.drop_table("stage_runs")
    op.drop_table("builds")
