"""accounts: server-side studio sessions, the administrators' audit log, one active retry per job

Revision ID: 0011_accounts
Revises: 0010_merge
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reelgate.db.types import UTCDateTime

revision: str = "0011_accounts"
down_revision: str | None = "0010_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE_RETRY = "retry_of IS NOT NULL AND status IN ('queued', 'submitting', 'processing', 'storing')"


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("authenticated_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=False),
        sa.Column("user_agent", sa.String(200), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("actor_id", sa.String(40), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target_user_id", sa.String(40), nullable=True),
        sa.Column("target_email", sa.String(320), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_created", "audit_log", ["created_at"])
    # A job retried twice at once before this revision keeps its oldest unfinished retry as its retry; the others
    # run on as plain generations.
    op.execute(
        f"UPDATE generations SET retry_of = NULL WHERE {_ACTIVE_RETRY} AND id <> (SELECT min(g.id) FROM "
        f"generations g WHERE g.retry_of = generations.retry_of AND g.{_ACTIVE_RETRY.replace(' AND ', ' AND g.')})"
    )
    op.create_index(
        "uq_generations_active_retry",
        "generations",
        ["retry_of"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE_RETRY),
        postgresql_where=sa.text(_ACTIVE_RETRY),
    )


def downgrade() -> None:
    op.drop_index("uq_generations_active_retry", table_name="generations")
    op.drop_index("ix_audit_log_created", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_sessions_user_id", table_name="sessions")
    op.drop_table("sessions")
