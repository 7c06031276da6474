"""reports and Health Checks: report preferences, digest subscriptions, report deliveries (each once), the
TAM's notes; Health Checks and their findings; a customer's support certificate period

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "report_preferences",
    "digest_subscriptions",
    "report_deliveries",
    "report_notes",
    "healthchecks",
    "healthcheck_findings",
)
LIVE = sa.text("status <> 'cancelled'")
HHMM = "'^([01][0-9]|2[0-3]):[0-5][0-9]$'"


def _fk(table: str, column: str, target: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", name=op.f(f"fk_{table}_{column}_{target}"))


def _now() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.add_column("customers", sa.Column("certificate_start", sa.Date, nullable=True))
    op.add_column("customers", sa.Column("certificate_end", sa.Date, nullable=True))
    op.create_check_constraint(
        op.f("ck_customers_certificate_period"),
        "customers",
        "certificate_end IS NULL OR certificate_end > certificate_start",
    )
    op.create_table(
        "report_preferences",
        sa.Column(
            "customer_id", sa.String(40), _fk("report_preferences", "customer_id", "customers"), primary_key=True
        ),
        sa.Column("recipients", JSONB, nullable=False),
        sa.Column("frequency", sa.String(10), nullable=False),
        sa.Column("sections", JSONB, nullable=False),
        sa.Column("language", sa.String(2)),
        sa.Column("format", sa.String(4), nullable=False),
        sa.Column("digest_enabled", sa.Boolean, nullable=False),
        sa.Column("digest_at", sa.String(5), nullable=False),
        sa.Column("digest_slack", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "frequency IN ('none', 'weekly', 'monthly', 'quarterly')", name=op.f("ck_report_preferences_frequency")
        ),
        sa.CheckConstraint("format IN ('html', 'pdf', 'csv')", name=op.f("ck_report_preferences_format")),
        sa.CheckConstraint("language IS NULL OR language IN ('en', 'ru')", name=op.f("ck_report_preferences_language")),
        sa.CheckConstraint(f"digest_at ~ {HHMM}", name=op.f("ck_report_preferences_digest_at")),
    )
    op.create_table(
        "digest_subscriptions",
        sa.Column("person_id", sa.Integer, _fk("digest_subscriptions", "person_id", "people"), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("send_at", sa.String(5), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(f"send_at ~ {HHMM}", name=op.f("ck_digest_subscriptions_send_at")),
    )
    op.create_table(
        "report_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("customer_id", sa.String(40), _fk("report_deliveries", "customer_id", "customers")),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        _now(),
        sa.CheckConstraint("kind IN ('digest', 'customer_report')", name=op.f("ck_report_deliveries_kind")),
        sa.UniqueConstraint("kind", "recipient", "period_start", "period_end", name="uq_report_deliveries_once"),
    )
    op.create_table(
        "report_notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.String(40), _fk("report_notes", "customer_id", "customers"), nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("author_id", sa.Integer, _fk("report_notes", "author_id", "people"), nullable=False),
        _now(),
        sa.CheckConstraint("period_end >= period_start", name=op.f("ck_report_notes_ordered")),
    )
    op.create_index(op.f("ix_report_notes_customer_id"), "report_notes", ["customer_id"])
    op.create_table(
        "healthchecks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.String(40), _fk("healthchecks", "customer_id", "customers"), nullable=False),
        sa.Column("engineer_id", sa.Integer, _fk("healthchecks", "engineer_id", "people"), nullable=False),
        sa.Column("scheduled_on", sa.Date, nullable=False),
        sa.Column("certificate_year_start", sa.Date, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("booked_by_id", sa.Integer, _fk("healthchecks", "booked_by_id", "people"), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint(
            "status IN ('booked', 'confirmed', 'in_progress', 'findings_recorded', 'report_delivered', 'cancelled')",
            name=op.f("ck_healthchecks_status"),
        ),
    )
    op.create_index(op.f("ix_healthchecks_customer_id"), "healthchecks", ["customer_id"])
    # one live Health Check per certificate year, and one per engineer and day: the database decides a race
    op.create_index(
        "uq_healthchecks_one_per_year",
        "healthchecks",
        ["customer_id", "certificate_year_start"],
        unique=True,
        postgresql_where=LIVE,
    )
    op.create_index(
        "uq_healthchecks_engineer_day",
        "healthchecks",
        ["engineer_id", "scheduled_on"],
        unique=True,
        postgresql_where=LIVE,
    )
    op.create_table(
        "healthcheck_findings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "healthcheck_id",
            sa.Integer,
            _fk("healthcheck_findings", "healthcheck_id", "healthchecks"),
            nullable=False,
        ),
        sa.Column("product", sa.String(100), nullable=False),
        sa.Column("area", sa.String(100), nullable=False),
        sa.Column("setting", sa.String(200), nullable=False),
        sa.Column("found", sa.Text, nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("recommendation", sa.Text, nullable=False),
        _now(),
        sa.CheckConstraint(
            "severity IN ('critical', 'high', 'medium', 'low')", name=op.f("ck_healthcheck_findings_severity")
        ),
    )
    op.create_index(op.f("ix_healthcheck_findings_healthcheck_id"), "healthcheck_findings", ["healthcheck_id"])
    # like every business table, the app role owns them
    for table in NEW_TABLES:
        op.execute(f"ALTER TABLE {table} OWNER TO rr_app")
    # an entity's own history (a Health Check's life on its page) without scanning the whole log
    op.create_index("ix_audit_events_entity", "audit_events", ["entity_type", "entity_id"])
    # the customer report reads one customer's requests of one period
    op.create_index("ix_release_requests_customer_received", "release_requests", ["customer_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_release_requests_customer_received", table_name="release_requests")
    op.drop_index("ix_audit_events_entity", table_name="audit_events")
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
    op.drop_constraint(op.f("ck_customers_certificate_period"), "customers", type_="check")
    op.drop_column("customers", "certificate_end")
    op.drop_column("customers", "certificate_start")
