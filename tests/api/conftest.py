"""The API tests run in three modes: embedded on SQLite, embedded on PostgreSQL, and production mode
(PostgreSQL: an API-only app with a production worker beside it), and must give the same results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reelgate.settings import Settings
from tests.conftest import Running, make_settings, start_app
from tests.production.harness import production_settings, queue_worker

PRODUCTION = "postgresql+workers"


@pytest.fixture(params=["sqlite", "postgresql", PRODUCTION])
def api_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path, api_mode: str) -> str:
    if api_mode == "sqlite":
        return f"sqlite:///{tmp_path / 'reelgate.db'}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str, api_mode: str) -> Settings:
    overrides = production_settings() if api_mode == PRODUCTION else {}
    return make_settings(tmp_path / "data", database_url, **overrides)


@pytest.fixture
async def running(settings: Settings, api_mode: str) -> AsyncIterator[Running]:
    async for value in start_app(settings):
        if api_mode != PRODUCTION:
            yield value
            continue
        async with queue_worker(settings):
            yield value
