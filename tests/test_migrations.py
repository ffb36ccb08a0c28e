"""Upgrading an empty database yields exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from reelgate.db.database import sqlalchemy_url
from reelgate.db.migrate import upgrade_to_head
from reelgate.db.schema import metadata
from reelgate.db.tables_queue import include_object


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("empty_pg_database_url"))


def test_upgrade_from_empty_matches_models(empty_database_url: str) -> None:
    url = sqlalchemy_url(empty_database_url)
    upgrade_to_head(url)
    upgrade_to_head(url)  # idempotent: a second start changes nothing
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": include_object}
            )
            assert list(compare_metadata(context, metadata)) == []
    finally:
        engine.dispose()
