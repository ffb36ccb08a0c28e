"""Group commit for SQLite: writers queued behind each other share one transaction and one COMMIT.

SQLite has one writer at a time, and with synchronous=FULL every COMMIT waits for the disk. When a burst of
writers is queued, the first one opens a transaction; each writer queued behind it runs its own work inside
that transaction under a SAVEPOINT (so a writer that fails undoes only its own statements), and one COMMIT
then makes all of them durable at once. Nobody's block returns before that COMMIT has succeeded, so for each
caller this is exactly a transaction of its own: committed when its block ends, or an error.

A writer with nobody queued behind it commits at once, as a plain transaction would: a batch forms only
when there is a queue to share it with, so there is no waiting for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reelgate.db.sqlite_inline import InlineConnection

# A cap on one transaction's size, so a long queue still commits (and answers) in steps.
MAX_MEMBERS = 64


class WriteBatch:
    """One open write transaction and the writers who have put their work in it."""

    def __init__(self, connection: AsyncConnection, driver: sqlite3.Connection) -> None:
        self.connection = connection
        self._driver = driver
        self.members = 0
        self.committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False

    @classmethod
    async def open(cls, engine: AsyncEngine) -> WriteBatch:
        connection = await engine.connect()
        try:
            await connection.begin()  # BEGIN IMMEDIATE (engine.py's begin event): takes SQLite's write lock
            raw = connection.sync_connection.connection.driver_connection if connection.sync_connection else None
            if not isinstance(raw, InlineConnection):
                raise TypeError("write batches need reelgate's inline SQLite driver")
        except BaseException:
            await connection.close()
            raise
        return cls(connection, raw.sqlite3_connection)

    @contextlib.asynccontextmanager
    async def member(self) -> AsyncIterator[AsyncConnection]:
        """Runs one writer's block in the batch. The first writer needs no savepoint: if it fails, the whole
        transaction is rolled back and the batch closed, with nobody else's work in it yet."""
        first = self.members == 0
        name = f"w{self.members}"
        if not first:
            self._driver.execute(f"SAVEPOINT {name}")
        try:
            yield self.connection
        except BaseException:
            if first:
                await self.abandon()
            else:
                self._driver.execute(f"ROLLBACK TO {name}")
                self._driver.execute(f"RELEASE {name}")
            raise
        if not first:
            self._driver.execute(f"RELEASE {name}")
        self.members += 1

    @property
    def full(self) -> bool:
        return self.members >= MAX_MEMBERS

    async def commit(self) -> None:
        """COMMIT (waits for the disk off the event loop) and tell every member how it went. The COMMIT runs in
        a task of its own: a cancelled caller must not cut it short for the others, and it waits for the COMMIT
        to finish before letting its write turn go."""
        if self.closed:
            return
        self.closed = True
        running = asyncio.ensure_future(self._commit())
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            while not running.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([running])
            raise
        await self.committed

    async def _commit(self) -> None:
        try:
            await self.connection.commit()
        except Exception as error:
            self._settle(error)
            with contextlib.suppress(Exception):
                await self.connection.rollback()
        else:
            self._settle(None)
        await self._close_connection()

    async def abandon(self) -> None:
        """Rolls back whatever is in the transaction (only called before any member's work was kept)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self.connection.rollback()
        self._settle(None)
        await self._close_connection()

    async def wait_committed(self) -> None:
        """A member's wait for the COMMIT; cancelling the waiter does not stop the COMMIT for the others."""
        await asyncio.shield(self.committed)

    def _settle(self, error: BaseException | None) -> None:
        if self.committed.done():
            return
        if error is None:
            self.committed.set_result(None)
        else:
            self.committed.set_exception(error)
            self.committed.exception()  # read once, so a batch nobody waits on logs no "never retrieved"

    async def _close_connection(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
