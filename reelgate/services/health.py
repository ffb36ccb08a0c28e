"""The database's own health: reachable, at which schema version, and kept analyzed (for /readyz, `reelgate doctor`
and the warning a server logs when it starts)."""

from __future__ import annotations

from reelgate.db.database import Database
from reelgate.db.queries import meta


async def ping_database(db: Database) -> None:
    await db.read(meta.ping)


async def schema_versions(db: Database) -> list[str]:
    """The applied migration heads; empty when the schema was never created."""
    try:
        return await db.read(meta.schema_versions)
    except Exception:  # noqa: BLE001 - no alembic_version table yet reads as "not migrated"
        return []


# Why it matters: every lookup of a generation names both its id and its owner, and generations has an index on
# the owner. With no statistics, PostgreSQL's planner cannot tell which index is selective and may take the
# owner's, reading every generation that user ever made to find one (measured: a retrieve went from 0.05 ms to
# 1.5 ms of execution with 2,250 generations of one user). ANALYZE, which autovacuum runs as tables grow, ends it.
AUTOVACUUM_OFF = (
    "PostgreSQL's autovacuum is off, so no table is analyzed as it grows and the planner works from missing or "
    "stale statistics: a generation's lookup may then read every generation of its owner. Turn autovacuum on "
    "(PostgreSQL's default), or run ANALYZE on a schedule."
)


async def maintenance_problem(db: Database) -> str | None:
    """What keeps the planner from good statistics on this database, or None (always None on SQLite)."""
    if db.dialect != "postgresql":
        return None
    return None if await db.read(meta.autovacuum) == "on" else AUTOVACUUM_OFF
