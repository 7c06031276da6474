"""release line: builds know the line commit they were made on, their change and its opaque reference;
stages record the channel versions they expect; staff-only channels; advisories for same-cause requests

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("builds", sa.Column("line_base", sa.String(length=40), nullable=True))
    op.add_column("builds", sa.Column("change_id", sa.String(length=16), nullable=True))
    op.add_column("builds", sa.Column("fix_ref", sa.String(length=20), nullable=True))
    op.add_column("builds", sa.Column("rebased_from_id", sa.Integer(), nullable=True))
    op.create_foreign_key(op.f("fk_builds_rebased_from_id_builds"), "builds", "builds", ["rebased_from_id"], ["id"])
    op.create_index(op.f("ix_builds_fix_ref"), "builds", ["fix_ref"], unique=False)
    op.add_column(
        "stage_runs",
        sa.Column("expected", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    # a stage of a base that was rebuilt on a moved line never publishes: its successor does
    op.drop_constraint(op.f("ck_stage_runs_status"), "stage_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_stage_runs_status"), "stage_runs", "status IN ('awaiting', 'publishing', 'published', 'superseded')"
    )
    op.add_column("channel_pointers", sa.Column("staff_only", sa.Boolean(), server_default=sa.false(), nullable=False))
    # channels of the default `internal` stage published before this revision are staff-only from now on
    op.execute(
        "UPDATE channel_pointers SET staff_only = true WHERE channel = 'internal' OR channel LIKE 'hotfix-internal-%'"
    )
    op.add_column("release_requests", sa.Column("advisory_id", sa.String(length=20), nullable=True))
    op.create_index(op.f("ix_release_requests_advisory_id"), "release_requests", ["advisory_id"], unique=False)
    op.execute("CREATE SEQUENCE advisory_number_seq")
    op.execute("ALTER SEQUENCE advisory_number_seq OWNER TO rr_app")


def downgrade() -> None:
    op.execute("DROP SEQUENCE advisory_number_seq")
    op.drop_index(op.f("ix_release_requests_advisory_id"), table_name="release_requests")
    op.drop_column("release_requests", "advisory_id")
    op.drop_column("channel_pointers", "staff_only")
    op.drop_column("stage_runs", "expected")
    op.drop_constraint(op.f("ck_stage_runs_status"), "stage_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_stage_runs_status"), "stage_runs", "status IN ('awaiting', 'publishing', 'published')"
    )
    op.drop_index(op.f("ix_builds_fix_ref"), table_name="builds")
    op.drop_constraint(op.f("fk_builds_rebased_from_id_builds"), "builds", type_="foreignkey")
    op.drop_column("builds", "rebased_from_id")
    op.drop_column("builds", "fix_ref")
    op.drop_column("builds", "change_id")
    op.drop_column("builds", "line_base")
