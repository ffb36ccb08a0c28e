"""Upgrading an empty database yields exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from reelgate.db.engine import Database
from reelgate.db.migrate import upgrade_to_head
from reelgate.db.schema import metadata
from reelgate.db.tables_queue import include_object


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("empty_pg_database_url"))


async def test_upgrade_from_empty_matches_models(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        await upgrade_to_head(db.engine)
        await upgrade_to_head(db.engine)  # idempotent: a second start changes nothing

        def diff(connection: Any) -> list[Any]:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": include_object}
            )
            return list(compare_metadata(context, metadata))

        async with db.engine.connect() as conn:
            differences = await conn.run_sync(diff)
        assert differences == []
    finally:
        await db.dispose()
