"""leaner generation indexes: no unique index on webhook tokens, and a model's completions indexed only once done

Every insert into `generations`, and on PostgreSQL every update that changes its status, writes an entry into
each of its indexes. Two of them no longer earn that cost:
- `webhook_token` was unique and required. Webhook addresses are now signed with the server's key, so new jobs
  store no token (NULL) and nothing looks a token up; the column stays for the addresses handed out before.
- `ix_generations_model_completed` indexed every job under (model, status, completed_at) for one query, a
  model's latest successes. It becomes `ix_generations_model_succeeded`, a partial index holding succeeded jobs
  only, so a job gets its entry once, when it succeeds.

Revision ID: 0022_leaner_generation_indexes
Revises: 0021_organization_projects
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_leaner_generation_indexes"
down_revision: str | None = "0021_organization_projects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUCCEEDED = "status = 'succeeded' AND completed_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_constraint("uq_generations_webhook_token", type_="unique")
        batch_op.alter_column("webhook_token", existing_type=sa.String(64), nullable=True)
    op.drop_index("ix_generations_model_completed", table_name="generations")
    op.create_index(
        "ix_generations_model_succeeded",
        "generations",
        ["model", "completed_at"],
        sqlite_where=sa.text(_SUCCEEDED),
        postgresql_where=sa.text(_SUCCEEDED),
    )


def downgrade() -> None:
    op.drop_index("ix_generations_model_succeeded", table_name="generations")
    op.create_index("ix_generations_model_completed", "generations", ["model", "status", "completed_at"])
    # The older code hands out the stored token as the only proof on unsigned providers: a random one per job.
    random_token = (
        "md5(random()::text || id)" if op.get_bind().dialect.name == "postgresql" else "lower(hex(randomblob(16)))"
    )
    op.execute(f"UPDATE generations SET webhook_token = {random_token} WHERE webhook_token IS NULL")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.alter_column("webhook_token", existing_type=sa.String(64), nullable=False)
        batch_op.create_unique_constraint("uq_generations_webhook_token", ["webhook_token"])
