"""procrastinate job queue schema (PostgreSQL only)

Revision ID: 0004_procrastinate
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_procrastinate"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Objects the schema creates, dropped in reverse order on downgrade (the CASCADE takes triggers along).
_TABLES = ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs", "procrastinate_workers")
_TYPES = ("procrastinate_job_to_defer_v1", "procrastinate_job_event_type", "procrastinate_job_status")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # embedded mode runs jobs in-process and needs no queue tables
    from procrastinate.schema import SchemaManager

    # The schema is many statements with plpgsql bodies: hand it to the driver as one simple query
    # (no parameters, so neither SQLAlchemy nor psycopg rewrites `%` or `:name` inside it).
    cursor = bind.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(SchemaManager.get_schema())
    finally:
        cursor.close()


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    functions = bind.exec_driver_sql(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%%'"
    ).scalars()
    for table in _TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for function in list(functions):
        op.execute(f"DROP FUNCTION IF EXISTS {function} CASCADE")
    for type_ in _TYPES:
        op.execute(f"DROP TYPE IF EXISTS {type_} CASCADE")
