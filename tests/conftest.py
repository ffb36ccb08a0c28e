"""Shared fixtures: settings in a temporary data dir, a database per test (SQLite, and PostgreSQL when
reachable), a running app with its embedded worker, and signed-up users with API keys."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from reelgate.app import create_app
from reelgate.db.database import sqlalchemy_url
from reelgate.db.migrate import upgrade_to_head
from reelgate.services import accounts
from reelgate.services.context import ServiceContext
from reelgate.settings import Settings
from tests.simulators.base import AppServer

METRICS_TOKEN = "test-metrics-token"
METRICS_HEADERS = {"Authorization": f"Bearer {METRICS_TOKEN}"}
PG_ADMIN_URL = os.environ.get("REELGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


PG_AVAILABLE = _pg_reachable()


def _skip_or_fail_without_pg() -> None:
    if os.environ.get("CI"):
        pytest.fail("PostgreSQL is not reachable at REELGATE_TEST_PG, and CI must run the PostgreSQL tests")
    pytest.skip("PostgreSQL is not reachable (set REELGATE_TEST_PG); running on SQLite only")


def _pg_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"postgresql://{base.split('://', 1)[1]}/{name}"


def _create_pg_database(template: str | None = None) -> str:
    name = f"reelgate_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def _drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database migrated once per test session; each test gets a copy (much faster than migrating)."""
    if not PG_AVAILABLE:
        _skip_or_fail_without_pg()
    name = _create_pg_database()

    upgrade_to_head(sqlalchemy_url(_pg_url(name)))
    try:
        yield name
    finally:
        _drop_pg_database(name)


@pytest.fixture
def pg_database_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test, dropped afterwards."""
    name = _create_pg_database(template=pg_template)
    try:
        yield _pg_url(name)
    finally:
        _drop_pg_database(name)


@pytest.fixture
def empty_pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database with no schema at all (for the migration test)."""
    if not PG_AVAILABLE:
        _skip_or_fail_without_pg()
    name = _create_pg_database()
    try:
        yield _pg_url(name)
    finally:
        _drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reelgate.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'reelgate.db'}"


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "sandbox_delay_seconds": 0.3,
        "poll_initial_seconds": 0.1,
        "poll_max_seconds": 0.5,
        "public_url": "http://testserver",
        "secret_key": "test-secret-key-for-reelgate-tests",
        "metrics_token": METRICS_TOKEN,  # /metrics answers on the app's own listener to this token only
        # The spine's tests run PostgreSQL in embedded style too; production-mode tests turn this off.
        "embedded_worker": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url)


@dataclass
class Running:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def ctx(self) -> ServiceContext:
        ctx: ServiceContext = self.app.state.ctx
        return ctx


async def start_app(settings: Settings) -> AsyncIterator[Running]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Running(app=app, client=client)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async for value in start_app(settings):
        yield value


@dataclass
class Account:
    id: str
    email: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_account(ctx: ServiceContext, *, credits: int = 100, email: str | None = None) -> Account:
    email = email or f"user-{secrets.token_hex(4)}@example.com"
    user = await accounts.create_user(ctx, email, "correct horse battery", credits=credits)
    key = await accounts.create_api_key(ctx, user.id, "test")
    return Account(id=user.id, email=email, key=key.secret)


@pytest.fixture
async def alice(running: Running) -> Account:
    return await make_account(running.ctx, credits=100, email="alice@example.com")


@pytest.fixture
async def bob(running: Running) -> Account:
    return await make_account(running.ctx, credits=100, email="bob@example.com")


@pytest.fixture
def images() -> Iterator[AppServer]:
    """The loopback image host (tests/simulators/images.py), for start and end images given by URL."""
    from tests.simulators.images import Images

    server = AppServer(Images())
    server.start()
    try:
        yield server
    finally:
        server.stop()
