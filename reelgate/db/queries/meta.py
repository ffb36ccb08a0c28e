"""The database itself: is it there, which schema version does it carry, and is it kept analyzed."""

from __future__ import annotations

from reelgate.db.sql import Tx, query

_PING = query("SELECT 1")
_SCHEMA_VERSIONS = query("SELECT version_num FROM alembic_version")
# PostgreSQL's autovacuum is what keeps the planner's statistics current; SQLite has no such daemon to ask about.
_AUTOVACUUM = query("SELECT current_setting('autovacuum')", sqlite="SELECT 'not applicable'")


def ping(tx: Tx) -> None:
    tx.scalar(_PING)


def schema_versions(tx: Tx) -> list[str]:
    return sorted(str(row[0]) for row in tx.all(_SCHEMA_VERSIONS))


def autovacuum(tx: Tx) -> str:
    """PostgreSQL's `autovacuum` setting ('on' or 'off'); 'not applicable' on SQLite."""
    return str(tx.scalar(_AUTOVACUUM))
