"""in-flight counter: each balance row counts its account's unfinished generations

The in-flight cap is then checked by the same conditional UPDATE that holds the credits, so a submit holds
its account's row lock only from that statement to its COMMIT (PostgreSQL), instead of from a FOR UPDATE at
the start of the transaction.

Revision ID: 0008_in_flight_counter
Revises: 0007_provider_marks
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_in_flight_counter"
down_revision: str | None = "0007_provider_marks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "('queued', 'submitting', 'processing', 'storing')"


def upgrade() -> None:
    with op.batch_alter_table("balances") as batch:
        batch.add_column(sa.Column("in_flight", sa.Integer(), nullable=False, server_default="0"))
        batch.create_check_constraint("in_flight_nonnegative", "in_flight >= 0")
    op.execute(
        "UPDATE balances SET in_flight = (SELECT count(*) FROM generations g "
        f"WHERE g.user_id = balances.user_id AND g.status IN {_ACTIVE})"
    )


def downgrade() -> None:
    with op.batch_alter_table("balances") as batch:
        batch.drop_constraint("in_flight_nonnegative", type_="check")
        batch.drop_column("in_flight")
