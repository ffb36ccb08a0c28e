"""Alembic environment: always driven with a connection handed in by reelgate.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from reelgate.db.schema import metadata
from reelgate.db.tables_queue import include_object

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `reelgate migrate` (it supplies the connection)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=include_object,
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # API and worker processes may start together: one migrates, the others wait and find it done.
        connection.execute(text("SELECT pg_advisory_xact_lock(7254120166)"))
    context.run_migrations()
