"""releases: update channels, their history, telemetry, known-clean files

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 08:51:56.319877
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("from_version", sa.String(length=80), nullable=True),
        sa.Column("to_version", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("rollout_percent", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=20), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('publish', 'revert', 'halt', 'rollout_step')", name=op.f("ck_channel_history_action")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_history")),
    )
    op.create_index("ix_channel_history_channel_id", "channel_history", ["channel", "id"], unique=False)
    op.create_table(
        "known_clean_files",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_known_clean_files")),
    )
    op.create_table(
        "telemetry_detections",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("base_version", sa.String(length=80), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=30), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "verdict IN ('detected', 'quarantined', 'allowed', 'false_positive_reported')",
            name=op.f("ck_telemetry_detections_verdict"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_detections")),
    )
    op.create_index(
        "ix_telemetry_detections_base_received", "telemetry_detections", ["base_version", "received_at"], unique=False
    )
    op.create_index(
        "ix_telemetry_detections_client_received", "telemetry_detections", ["client_id", "received_at"], unique=False
    )
    op.create_table(
        "releases",
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=True),
        sa.Column("private_to", sa.String(length=40), nullable=True),
        sa.Column("product", sa.String(length=100), nullable=True),
        sa.Column("manifest", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("manifest_json", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("signing_key_id", sa.String(length=16), nullable=False),
        sa.Column("files", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("allowlist", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("registered_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("(kind = 'hotfix') = (private_to IS NOT NULL)", name=op.f("ck_releases_hotfix_is_private")),
        sa.CheckConstraint("kind IN ('base', 'hotfix')", name=op.f("ck_releases_kind")),
        sa.ForeignKeyConstraint(["private_to"], ["customers.id"], name=op.f("fk_releases_private_to_customers")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name=op.f("fk_releases_request_id_release_requests")
        ),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_releases")),
    )
    op.create_index(op.f("ix_releases_request_id"), "releases", ["request_id"], unique=False)
    op.create_table(
        "channel_pointers",
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("previous_version", sa.String(length=80), nullable=True),
        sa.Column("private_to", sa.String(length=40), nullable=True),
        sa.Column("rollout_percent", sa.Integer(), nullable=False),
        sa.Column("rollout_step", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pointer_version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("rollout_percent BETWEEN 1 AND 100", name=op.f("ck_channel_pointers_rollout_percent")),
        sa.ForeignKeyConstraint(
            ["previous_version"], ["releases.version"], name=op.f("fk_channel_pointers_previous_version_releases")
        ),
        sa.ForeignKeyConstraint(
            ["private_to"], ["customers.id"], name=op.f("fk_channel_pointers_private_to_customers")
        ),
        sa.ForeignKeyConstraint(["version"], ["releases.version"], name=op.f("fk_channel_pointers_version_releases")),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_pointers")),
    )
    for table in ("releases", "channel_pointers", "telemetry_detections", "known_clean_files"):
        op.execute(f"ALTER TABLE {table} OWNER TO rr_app")
    # The pointer history stays with the migrating user: the app may read it and append to it, never rewrite it.
    op.execute("REVOKE ALL ON channel_history FROM PUBLIC")
    op.execute("GRANT SELECT, INSERT ON channel_history TO rr_app")


def downgrade() -> None:
    op.drop_table("channel_pointers")
    op.drop_index(op.f("ix_releases_request_id"), table_name="releases")
    op.drop_table("releases")
    op.drop_index("ix_telemetry_detections_client_received", table_name="telemetry_detections")
    op.drop_index("ix_telemetry_detections_base_received", table_name="telemetry_detections")
    op.drop_table("telemetry_detections")
    op.drop_table("known_clean_files")
    op.drop_index("ix_channel_history_channel_id", table_name="channel_history")
    op.drop_table("channel_history")
