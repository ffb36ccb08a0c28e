"""Engines and the unit of work: one transaction per use case, committed or rolled back as a whole."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

from reelgate.db import sqlite_inline
from reelgate.db.write_batch import WriteBatch

# What services run statements on: an ORM session, or a bare Core connection on hot paths.
Executor: TypeAlias = AsyncSession | AsyncConnection

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
        # Let us issue BEGIN ourselves (the driver's implicit transactions would start DEFERRED). The inline
        # driver opens its connections this way already.
        if dbapi_connection.isolation_level is not None:
            dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that later upgrades to a
        # write can fail with SQLITE_BUSY without waiting. Read-only sessions keep WAL's free reads.
        # Read-only sessions run in autocommit: a WAL read needs no transaction, and each BEGIN is one more
        # trip to aiosqlite's thread.
        # BEGIN goes straight to the driver: a full SQLAlchemy execution for it costs more than the statement.
        options = conn.get_execution_options()
        if options.get(_READONLY):
            return
        driver = conn.connection.driver_connection
        # A snapshot begins deferred: its first read pins one WAL snapshot for the session.
        await_(driver.begin("BEGIN" if options.get(_SNAPSHOT) else "BEGIN IMMEDIATE"))


def create_engine_for(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # No reset-on-return: every session here ends in an explicit commit or rollback, and the extra
        # ROLLBACK would be one more statement per request.
        engine = create_async_engine(
            url,
            async_creator=sqlite_inline.creator(path or ":memory:", timeout=30),
            pool_reset_on_return=None,
        )
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
        self._queued_writers = 0  # waiting for the write turn right now
        self._batch: WriteBatch | None = None  # SQLite's open group-commit transaction (db/write_batch.py)
        self._committers: set[asyncio.Task[None]] = set()
        self._write = async_sessionmaker(self.engine, expire_on_commit=False)
        self._joined = async_sessionmaker(expire_on_commit=False, join_transaction_mode="create_savepoint")
        self._read_engine = self.engine.execution_options(**{_READONLY: True})
        self._read = async_sessionmaker(self._read_engine, expire_on_commit=False)
        # One consistent view across several statements (e.g. `ledger check` on a live database).
        snapshot_options = {_SNAPSHOT: True} if url.startswith("sqlite") else {"isolation_level": "REPEATABLE READ"}
        self._snapshot = async_sessionmaker(self.engine.execution_options(**snapshot_options), expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        """This process's turn at SQLite's single writer (a no-op on PostgreSQL, whose rows lock themselves)."""
        if self._write_lock is None:
            yield
            return
        if self._write_lock.locked():
            self._queued_writers += 1
            try:
                async with asyncio.timeout(_WRITE_LOCK_WAIT):
                    await self._write_lock.acquire()
            finally:
                self._queued_writers -= 1
        else:
            await self._write_lock.acquire()  # free: no timer to arm and cancel
        try:
            yield
        finally:
            self._write_lock.release()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: commits when the block ends, rolls back if it raises."""
        if self._write_lock is None:
            async with self._write() as session, session.begin():
                yield session
            return
        # On SQLite the session joins the group commit on the batch's connection. Its own SAVEPOINT keeps a
        # rollback (a failed flush, an exception in the block) to its own work; committing it only releases
        # the SAVEPOINT, and the block returns once the batch's COMMIT has made the work durable.
        async with self.write_connection() as connection, self._joined(bind=connection) as session, session.begin():
            yield session

    @asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """The same write transaction on a bare Core connection, for hot paths that need no ORM unit of work
        (a Session's flush and identity map cost more than the statements themselves).

        On SQLite, writers queued behind each other share one COMMIT (db/write_batch.py); each caller's block
        still returns only once its work is durable, or raises."""
        if self._write_lock is None:
            async with self.engine.begin() as connection:
                yield connection
            return
        async with self._write_turn():
            batch = self._batch
            if batch is not None and (batch.closed or batch.full):
                await self._commit_open_batch()
                batch = None
            if batch is None:
                batch = self._batch = await WriteBatch.open(self.engine)
            try:
                async with batch.member() as connection:
                    yield connection
            finally:
                if batch.closed and self._batch is batch:
                    self._batch = None
            if self._queued_writers == 0:
                # Nobody to share the COMMIT with: commit now, in this turn, as a plain transaction would.
                self._batch = None
                await batch.commit()
                return
            if batch.members == 1:
                # Others are queued: they join this transaction, and a committer queued behind them commits it.
                committer = asyncio.create_task(self._commit_after_queue(batch))
                self._committers.add(committer)
                committer.add_done_callback(self._committers.discard)
        await batch.wait_committed()

    async def _commit_after_queue(self, batch: WriteBatch) -> None:
        # The lock is FIFO, so every writer queued before this task has had its turn (and joined) when it gets
        # its own. No timeout: the members are waiting on this COMMIT.
        assert self._write_lock is not None
        async with self._write_lock:
            if self._batch is batch:
                self._batch = None
            with contextlib.suppress(Exception):  # the members get the error through the batch
                await batch.commit()

    async def _commit_open_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            with contextlib.suppress(Exception):  # the members get the error through the batch
                await batch.commit()

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A read-only Core connection (autocommit reads on SQLite), for hot read paths."""
        async with self._read_engine.connect() as connection:
            yield connection

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
        if self._write_lock is not None:
            async with self._write_lock:
                await self._commit_open_batch()
        await self.engine.dispose()
