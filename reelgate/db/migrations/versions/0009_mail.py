"""mail: the email outbox, per-account opt-outs, and single-use tokens sent by email

Revision ID: 0009_mail
Revises: 0008_in_flight_counter
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelgate.db.types

revision: str = "0009_mail"
down_revision: str | None = "0008_in_flight_counter"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE")


def upgrade() -> None:
    at = reelgate.db.types.UTCDateTime(timezone=True)
    op.create_table(
        "email_outbox",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("event_key", sa.String(length=120), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", at, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", at, nullable=False),
        sa.Column("sent_at", at, nullable=True),
        _user_fk("email_outbox"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_outbox")),
    )
    with op.batch_alter_table("email_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_outbox_user_id"), ["user_id"], unique=False)
        batch_op.create_index("ux_email_outbox_kind_event", ["kind", "event_key"], unique=True)
        batch_op.create_index("ix_email_outbox_status_next", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "email_opt_outs",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", at, nullable=False),
        _user_fk("email_opt_outs"),
        sa.PrimaryKeyConstraint("user_id", "kind", name=op.f("pk_email_opt_outs")),
    )
    op.create_table(
        "email_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("expires_at", at, nullable=False),
        sa.Column("used_at", at, nullable=True),
        sa.Column("created_at", at, nullable=False),
        _user_fk("email_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_tokens_token_hash")),
    )
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_tokens_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("email_tokens")
    op.drop_table("email_opt_outs")
    op.drop_table("email_outbox")
