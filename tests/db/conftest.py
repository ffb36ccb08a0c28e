"""The PostgreSQL databases the data layer's tests share: one opened on the notes table, and one reached through
a fault proxy. (SQLite's tests define their own `db`.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from reelgate.db.postgres import PostgresDatabase
from tests.db.notes import postgres_notes, proxied_postgres_notes
from tests.reliability.fault_proxy import FaultProxy


@pytest.fixture
async def db(pg_database_url: str) -> AsyncIterator[PostgresDatabase]:
    async with postgres_notes(pg_database_url) as database:
        yield database


@pytest.fixture
async def proxied_db(pg_database_url: str) -> AsyncIterator[tuple[PostgresDatabase, FaultProxy]]:
    async with proxied_postgres_notes(pg_database_url) as (database, proxy):
        yield database, proxy
