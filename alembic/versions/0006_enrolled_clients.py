"""enrolled update clients, telemetry batch ids (replay guard), halted channel pointers

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrolled_clients",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("enrolled_by", sa.String(length=200), nullable=False),
        sa.Column("enrolled_by_id", sa.Integer(), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_enrolled_clients_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolled_clients")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_enrolled_clients_secret_hash")),
    )
    op.create_index(op.f("ix_enrolled_clients_customer_id"), "enrolled_clients", ["customer_id"], unique=False)
    op.create_table(
        "telemetry_batches",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detections", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["enrolled_clients.id"], name=op.f("fk_telemetry_batches_client_id_enrolled_clients")
        ),
        sa.PrimaryKeyConstraint("client_id", "batch_id", name=op.f("pk_telemetry_batches")),
    )
    op.add_column("channel_pointers", sa.Column("halted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("channel_pointers", sa.Column("halted_reason", sa.Text(), nullable=True))
    op.add_column("channel_pointers", sa.Column("halted_version", sa.String(length=80), nullable=True))
    op.add_column("channel_pointers", sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_channel_pointers_halted_version_releases"),
        "channel_pointers",
        "releases",
        ["halted_version"],
        ["version"],
    )
    op.create_check_constraint(
        op.f("ck_channel_pointers_halted_complete"),
        "channel_pointers",
        "(halted_at IS NULL) = (halted_reason IS NULL) AND (halted_at IS NULL) = (halted_version IS NULL)",
    )
    # Like every business table: the app role owns them (channel_pointers already is rr_app's).
    for table in ("enrolled_clients", "telemetry_batches"):
        op.execute(f"ALTER TABLE {table} OWNER TO rr_app")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_channel_pointers_halted_complete"), "channel_pointers", type_="check")
    op.drop_constraint(op.f("fk_channel_pointers_halted_version_releases"), "channel_pointers", type_="foreignkey")
    for column in ("resumed_at", "halted_version", "halted_reason", "halted_at"):
        op.drop_column("channel_pointers", column)
    op.drop_table("telemetry_batches")
    op.drop_index(op.f("ix_enrolled_clients_customer_id"), table_name="enrolled_clients")
    op.drop_table("enrolled_clients")
