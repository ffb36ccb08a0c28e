"""routing: the model and provider account a generation is bound to, and its enhanced prompt

Revision ID: 0005_routing
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_routing"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch_op:
        batch_op.add_column(sa.Column("served_model", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("provider_account", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("enhanced_prompt", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch_op:
        batch_op.drop_column("enhanced_prompt")
        batch_op.drop_column("provider_account")
        batch_op.drop_column("served_model")
