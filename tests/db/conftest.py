"""A scratch SQLite database per test, opened through `Database` as the services open theirs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from reelgate.db.engine import Database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "scratch.db"


@asynccontextmanager
async def scratch_database(path: Path, *statements: str) -> AsyncIterator[Database]:
    """A Database on `path` with `statements` (its schema and seed rows) committed first."""
    database = Database(f"sqlite+aiosqlite:///{path}")
    async with database.write_connection() as connection:
        for statement in statements:
            await connection.execute(text(statement))
    try:
        yield database
    finally:
        await database.dispose()
