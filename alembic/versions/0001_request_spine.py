"""request spine

Revision ID: 0001
Revises:
Create Date: 2026-11-27 08:25:22.484997
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=80), nullable=False),
        sa.Column("entity_type", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=80), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    op.create_index(op.f("ix_audit_events_request_id"), "audit_events", ["request_id"], unique=False)
    op.create_table(
        "customers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tier", sa.String(length=20), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("subdivision", sa.String(length=10), nullable=True),
        sa.Column("business_hours", sa.String(length=200), nullable=False),
        sa.Column("extra_closed_dates", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("slack_channel", sa.String(length=80), nullable=True),
        sa.Column("email_contacts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("licensed_products", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("language IN ('en', 'ru')", name=op.f("ck_customers_language")),
        sa.CheckConstraint("tier IN ('enterprise', 'standard')", name=op.f("ck_customers_tier")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("name", name=op.f("uq_customers_name")),
    )
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("working_hours", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("slack_user_id", sa.String(length=40), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(role = 'customer') = (customer_id IS NOT NULL)", name=op.f("ck_people_customer_users_only")
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'tam', 'duty_manager', 'triage', 'build_engineer', "
            "'release_manager', 'customer', 'emergency')",
            name=op.f("ck_people_role"),
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_people_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("email", name=op.f("uq_people_email")),
        sa.UniqueConstraint("slack_user_id", name=op.f("uq_people_slack_user_id")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_api_tokens_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_person_id"), "api_tokens", ["person_id"], unique=False)
    op.create_table(
        "release_requests",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("product", sa.String(length=100), nullable=True),
        sa.Column("product_version", sa.String(length=50), nullable=True),
        sa.Column("detection_name", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("submitted_by_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("duplicate_of_id", sa.String(length=20), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('portal', 'phone', 'email', 'tam')", name=op.f("ck_release_requests_channel")),
        sa.CheckConstraint(
            "kind IN ('false_positive', 'false_negative', 'private_hotfix')",
            name=op.f("ck_release_requests_kind"),
        ),
        sa.CheckConstraint("severity BETWEEN 1 AND 4", name=op.f("ck_release_requests_severity")),
        sa.ForeignKeyConstraint(["assignee_id"], ["people.id"], name=op.f("fk_release_requests_assignee_id_people")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_release_requests_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["release_requests.id"],
            name=op.f("fk_release_requests_duplicate_of_id_release_requests"),
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["people.id"], name=op.f("fk_release_requests_owner_id_people")),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"], ["people.id"], name=op.f("fk_release_requests_submitted_by_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_requests")),
    )
    op.create_index(op.f("ix_release_requests_customer_id"), "release_requests", ["customer_id"], unique=False)
    op.create_index(op.f("ix_release_requests_status"), "release_requests", ["status"], unique=False)
    op.create_table(
        "tam_assignments",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_tam_assignments_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_tam_assignments_person_id_people")),
        sa.PrimaryKeyConstraint("customer_id", "person_id", name=op.f("pk_tam_assignments")),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=20), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("stored", sa.Boolean(), nullable=False),
        sa.Column("submitted_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_samples_sha256_hex")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["release_requests.id"], name=op.f("fk_samples_request_id_release_requests")
        ),
        sa.ForeignKeyConstraint(["submitted_by_id"], ["people.id"], name=op.f("fk_samples_submitted_by_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_samples")),
        sa.UniqueConstraint("request_id", "sha256", name="uq_samples_request_sha256"),
    )
    op.create_index(op.f("ix_samples_request_id"), "samples", ["request_id"], unique=False)
    op.create_index(op.f("ix_samples_sha256"), "samples", ["sha256"], unique=False)
    op.execute("CREATE SEQUENCE release_request_number_seq")
    _app_role_and_audit_guard()


APP_TABLES = ("customers", "people", "api_tokens", "release_requests", "tam_assignments", "samples")


def _app_role_and_audit_guard() -> None:
    """The app role owns the business tables; the audit log belongs to the migrating user and only
    accepts SELECT and INSERT from the app. A trigger refuses UPDATE, DELETE and TRUNCATE for everyone,
    so even an owner must first disable it on purpose — and `relreq audit verify` still sees the edit."""
    op.execute(
        """
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rr_app') THEN
            CREATE ROLE rr_app NOLOGIN;
          END IF;
        END $$;
        """
    )
    op.execute("GRANT rr_app TO CURRENT_USER")
    op.execute("GRANT USAGE ON SCHEMA public TO rr_app")
    for table in APP_TABLES:
        op.execute(f"ALTER TABLE {table} OWNER TO rr_app")
    op.execute("ALTER SEQUENCE release_request_number_seq OWNER TO rr_app")
    op.execute("REVOKE ALL ON audit_events FROM PUBLIC")
    op.execute("REVOKE ALL ON audit_events FROM rr_app")
    op.execute("GRANT SELECT, INSERT ON audit_events TO rr_app")
    op.execute(
        """
        CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END $$;
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
    op.execute("DROP TRIGGER audit_events_no_update_delete ON audit_events")
    op.execute("DROP FUNCTION audit_events_refuse_change()")
    op.execute("DROP SEQUENCE release_request_number_seq")
    op.drop_index(op.f("ix_samples_sha256"), table_name="samples")
    op.drop_index(op.f("ix_samples_request_id"), table_name="samples")
    op.drop_table("samples")
    op.drop_table("tam_assignments")
    op.drop_index(op.f("ix_release_requests_status"), table_name="release_requests")
    op.drop_index(op.f("ix_release_requests_customer_id"), table_name="release_requests")
    op.drop_table("release_requests")
    op.drop_index(op.f("ix_api_tokens_person_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("people")
    op.drop_table("customers")
    op.drop_index(op.f("ix_audit_events_request_id"), table_name="audit_events")
    op.drop_table("audit_events")
