"""The database itself: is it there, and which schema version does it carry."""

from __future__ import annotations

from reelgate.db.sql import Tx, query

_PING = query("SELECT 1")
_SCHEMA_VERSIONS = query("SELECT version_num FROM alembic_version")


def ping(tx: Tx) -> None:
    tx.scalar(_PING)


def schema_versions(tx: Tx) -> list[str]:
    return sorted(str(row[0]) for row in tx.all(_SCHEMA_VERSIONS))
