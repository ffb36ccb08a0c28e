"""The database's own health: reachable, and at which schema version (for /readyz and `reelgate doctor`)."""

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
