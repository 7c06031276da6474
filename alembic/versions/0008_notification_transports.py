"""notification transports: the outbox takes `webhook` rows, and `skipped` for a transport that is not configured

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_notifications_channel"), "notifications", type_="check")
    op.create_check_constraint(
        op.f("ck_notifications_channel"), "notifications", "channel IN ('slack', 'email', 'webhook')"
    )
    op.drop_constraint(op.f("ck_notifications_status"), "notifications", type_="check")
    op.create_check_constraint(
        op.f("ck_notifications_status"),
        "notifications",
        "status IN ('queued', 'sending', 'sent', 'failed', 'dead', 'skipped')",
    )


def downgrade() -> None:
    # what the old constraints cannot hold: a skipped notice becomes dead (it was not sent), webhook rows go
    op.execute("UPDATE notifications SET status = 'dead' WHERE status = 'skipped'")
    op.execute("DELETE FROM notifications WHERE channel = 'webhook'")
    op.drop_constraint(op.f("ck_notifications_status"), "notifications", type_="check")
    op.create_check_constraint(
        op.f("ck_notifications_status"), "notifications", "status IN ('queued', 'sending', 'sent', 'failed', 'dead')"
    )
    op.drop_constraint(op.f("ck_notifications_channel"), "notifications", type_="check")
    op.create_check_constraint(op.f("ck_notifications_channel"), "notifications", "channel IN ('slack', 'email')")
