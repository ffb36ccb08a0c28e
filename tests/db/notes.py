"""What the data layer's own tests share: a `notes` table and its statements, a database opened on it (directly
or through a fault proxy), a gate that holds the writer busy so that writes queue into one batch, and a write
that asks for a before-commit statement."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable

from reelgate.db.database import Database, open_database
from reelgate.db.postgres import PostgresDatabase
from reelgate.db.sql import BeforeCommit, Tx, query
from tests.reliability.fault_proxy import FaultProxy

TABLE = query("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
INSERT = query("INSERT INTO notes (id, body) VALUES (:id, :body)")
IDS = query("SELECT id FROM notes ORDER BY id")
MY_PID = query("SELECT pg_backend_pid()")


@contextlib.asynccontextmanager
async def postgres_notes(url: str) -> AsyncIterator[PostgresDatabase]:
    """PostgreSQL at `url`, with the notes table, closed afterwards."""
    database = await open_database(url, migrate=False)
    assert isinstance(database, PostgresDatabase)
    try:
        await database.write(lambda tx: tx.run(TABLE))
        yield database
    finally:
        await database.close()


@contextlib.asynccontextmanager
async def proxied_postgres_notes(url: str) -> AsyncIterator[tuple[PostgresDatabase, FaultProxy]]:
    """The same, reached through a FaultProxy that can cut connections or lose a COMMIT's answer."""
    proxy = FaultProxy("127.0.0.1", 5432)
    await proxy.start()
    try:
        async with postgres_notes(url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")) as database:
            yield database, proxy
    finally:
        await proxy.stop()


async def cut(proxy: FaultProxy) -> None:
    proxy.cut_all()


class Gate:
    """Holds the writer (SQLite's thread, PostgreSQL's group-commit lane) inside one transaction until opened,
    so what is written meanwhile queues up into one batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def work(self, tx: Tx) -> None:
        self.entered.set()
        assert self.opened.wait(10)

    async def close_behind(self, db: Database) -> asyncio.Task[None]:
        task = asyncio.create_task(db.write(self.work, grouped=True))
        await asyncio.to_thread(self.entered.wait, 10)
        return task


class Refused(Exception):
    """A write's own failure (say, not enough credits) raised after it wrote."""


def asking(note_id: int, action: BeforeCommit, *, refuse: bool = False) -> Callable[[Tx], int]:
    """A write that inserts a note and asks `action` to run with its id before the COMMIT, then (if told to)
    raises Refused."""

    def work(tx: Tx) -> int:
        tx.run(INSERT, {"id": note_id, "body": f"note {note_id}"})
        tx.before_commit(action, note_id)
        if refuse:
            raise Refused(f"note {note_id}")
        return note_id

    return work
