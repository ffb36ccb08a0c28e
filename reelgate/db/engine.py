"""Engines and the unit of work: one transaction per use case, committed or rolled back as a whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

_READONLY = "reelgate_readonly"
_SNAPSHOT = "reelgate_snapshot"
_WRITE_LOCK_WAIT = 30.0  # the same patience as SQLite's busy_timeout


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # Writers wait for each other instead of failing with "database is locked".
        cursor.execute("PRAGMA busy_timeout=30000")
        # FULL: a committed ledger entry survives power loss, not just a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # Let us issue BEGIN ourselves (the driver's implicit transactions would start DEFERRED).
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that later upgrades to a
        # write can fail with SQLITE_BUSY without waiting. Read-only sessions keep WAL's free reads.
        # Read-only sessions run in autocommit: a WAL read needs no transaction, and each BEGIN is one more
        # trip to aiosqlite's thread.
        options = conn.get_execution_options()
        if options.get(_SNAPSHOT):
            conn.exec_driver_sql("BEGIN")  # deferred: the first read pins one WAL snapshot for the session
        elif not options.get(_READONLY):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine_for(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # No reset-on-return: every session here ends in an explicit commit or rollback, and the extra
        # ROLLBACK would be another thread hop per request.
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_reset_on_return=None)
        _configure_sqlite(engine)
        return engine
    # Bounded waits: a dead or blackholed database must turn into an error (503), not a hung request.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


class Database:
    """Owns the engine; hands out write transactions and read-only sessions."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine_for(url, pool_size=pool_size)
        # SQLite has one writer at a time. Queueing writers in the process (FIFO, no polling) beats letting
        # them sleep in SQLite's busy handler, whose back-off turns a burst into multi-second tail latency.
        # Other processes (the CLI) still wait on busy_timeout.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if url.startswith("sqlite") else None
        self._write = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read = async_sessionmaker(self.engine.execution_options(**{_READONLY: True}), expire_on_commit=False)
        # One consistent view across several statements (e.g. `ledger check` on a live database).
        snapshot_options = {_SNAPSHOT: True} if url.startswith("sqlite") else {"isolation_level": "REPEATABLE READ"}
        self._snapshot = async_sessionmaker(self.engine.execution_options(**snapshot_options), expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: commits when the block ends, rolls back if it raises."""
        if self._write_lock is None:
            async with self._write() as session, session.begin():
                yield session
            return
        async with asyncio.timeout(_WRITE_LOCK_WAIT):
            await self._write_lock.acquire()
        try:
            async with self._write() as session, session.begin():
                yield session
        finally:
            self._write_lock.release()

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session, session.begin():
            yield session

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A read-only session whose statements all see the same committed state."""
        async with self._snapshot() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
