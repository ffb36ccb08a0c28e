"""Whether the database is kept analyzed: `reelgate doctor` and a starting server say so when PostgreSQL's
autovacuum is off, because the planner then has no statistics and may find a generation through its owner's
index, reading every generation of that user (services/health.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reelgate.db.database import database_for
from reelgate.doctor import diagnose
from reelgate.services import health
from tests.conftest import make_settings, start_app


def server_autovacuum(url: str) -> str:
    """The setting as the server reports it, read apart from the code under test."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
    assert row is not None
    return str(row[0])


def statistics_check(checks: list[Any]) -> Any:
    found = [c for c in checks if c.name == "database statistics"]
    assert len(found) == 1, checks
    return found[0]


async def test_postgresql_reports_its_autovacuum_as_the_server_has_it(pg_database_url: str, tmp_path: Path) -> None:
    db = database_for(pg_database_url)
    await db.open()
    try:
        problem = await health.maintenance_problem(db)
    finally:
        await db.close()
    expected_off = server_autovacuum(pg_database_url) == "off"
    assert problem == (health.AUTOVACUUM_OFF if expected_off else None)
    check = statistics_check(await diagnose(make_settings(tmp_path, pg_database_url, embedded_worker=False)))
    assert check.ok is not expected_off and not check.fatal
    assert check.detail == (health.AUTOVACUUM_OFF if expected_off else "autovacuum on")


async def test_a_starting_server_warns_when_postgresql_is_never_analyzed(
    pg_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="reelgate"):
        async for _ in start_app(make_settings(tmp_path, pg_database_url)):
            pass
    warned = [r for r in caplog.records if r.getMessage() == health.AUTOVACUUM_OFF]
    assert len(warned) == (1 if server_autovacuum(pg_database_url) == "off" else 0)


async def test_sqlite_has_no_statistics_to_keep(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path)
    check = statistics_check(await diagnose(settings))
    assert check.ok and check.detail == "nothing to keep (SQLite)"
    with caplog.at_level(logging.WARNING, logger="reelgate"):
        async for _ in start_app(settings):
            pass
    assert not [r for r in caplog.records if r.getMessage() == health.AUTOVACUUM_OFF]


class _Answering:
    """A PostgreSQL Database that answers the autovacuum question with a given setting, for the branch the
    machine's own server does not take (a server's autovacuum cannot be switched for one session)."""

    dialect = "postgresql"

    def __init__(self, setting: str) -> None:
        self.setting = setting

    async def read(self, work: Callable[[Any], Any], *, snapshot: bool = False) -> Any:
        class Tx:
            dialect = "postgresql"

            def scalar(_self, query: Any, params: Any = None) -> str:  # noqa: N805 - a Tx's method
                assert "current_setting('autovacuum')" in query.postgresql
                return self.setting

        return work(Tx())


@pytest.mark.parametrize(("setting", "problem"), [("on", None), ("off", health.AUTOVACUUM_OFF)])
async def test_either_setting_reads_as_it_should(setting: str, problem: str | None) -> None:
    assert await health.maintenance_problem(_Answering(setting)) == problem  # type: ignore[arg-type]


async def test_a_server_starts_when_the_setting_cannot_be_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreadable(db: Any) -> str | None:
        raise OSError("connection reset while asking")

    monkeypatch.setattr(health, "maintenance_problem", unreadable)
    with caplog.at_level(logging.WARNING, logger="reelgate"):
        async for running in start_app(make_settings(tmp_path)):
            assert (await running.client.get("/healthz")).status_code == 200
    assert [r for r in caplog.records if r.getMessage() == "could not read whether the database is kept analyzed"]
