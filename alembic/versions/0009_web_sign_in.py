"""web console sign-in: passwords (argon2), single-use login links, browser sessions, failed attempts; a
person's language; a request's submission key (a form sent twice files one request)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("people", sa.Column("language", sa.String(2), nullable=True))
    op.add_column("people", sa.Column("password_hash", sa.String(200), nullable=True))
    op.create_check_constraint(op.f("ck_people_language"), "people", "language IN ('en', 'ru')")
    # the portal's form key (and the API's optional one): the same person sending one key again files nothing new
    op.add_column("release_requests", sa.Column("submission_key", sa.String(64), nullable=True))
    op.create_unique_constraint(
        op.f("uq_release_requests_submission_key"), "release_requests", ["submission_key", "submitted_by_id"]
    )
    op.create_table(
        "login_links",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "person_id",
            sa.Integer,
            sa.ForeignKey("people.id", name=op.f("fk_login_links_person_id_people")),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("token_hash", name=op.f("uq_login_links_token_hash")),
    )
    op.create_index(op.f("ix_login_links_person_id"), "login_links", ["person_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "person_id",
            sa.Integer,
            sa.ForeignKey("people.id", name=op.f("fk_web_sessions_person_id_people")),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index(op.f("ix_web_sessions_person_id"), "web_sessions", ["person_id"])
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index(op.f("ix_sign_in_failures_email"), "sign_in_failures", ["email"])
    op.create_index(op.f("ix_sign_in_failures_client"), "sign_in_failures", ["client"])
    op.create_index(op.f("ix_sign_in_failures_at"), "sign_in_failures", ["at"])
    for table in ("login_links", "web_sessions", "sign_in_failures"):  # like every business table
        op.execute(f"ALTER TABLE {table} OWNER TO rr_app")


def downgrade() -> None:
    op.drop_table("sign_in_failures")
    op.drop_table("web_sessions")
    op.drop_table("login_links")
    op.drop_constraint(op.f("uq_release_requests_submission_key"), "release_requests", type_="unique")
    op.drop_column("release_requests", "submission_key")
    op.drop_constraint(op.f("ck_people_language"), "people", type_="check")
    op.drop_column("people", "password_hash")
    op.drop_column("people", "language")
