"""What the data layer's own tests share: a `notes` table and its statements, a database opened on it (directly
or through a fault proxy), a gate that holds the writer busy so that writes queue into one batch, writes that
count their runs, and a write that asks for a before-commit statement."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg

from reelgate.db.database import Database, open_database
from reelgate.db.postgres import PostgresDatabase
from reelgate.db.sql import BeforeCommit, Tx, query
from tests.reliability.fault_proxy import FaultProxy

TABLE = query("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
INSERT = query("INSERT INTO notes (id, body) VALUES (:id, :body)")
IDS = query("SELECT id FROM notes ORDER BY id")
MY_PID = query("SELECT pg_backend_pid()")
# For PostgreSQL's side lanes, a note stands in for a generation's rows: its body names the generation it belongs to.
CONFINED_INSERT = query("INSERT INTO notes (id, body) VALUES (:id, :body)", confined_by="body")
CONFINED_PID = query("SELECT pg_backend_pid(), CAST(:body AS text)", confined_by="body")


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


def terminate_backend(url: str, pid: int) -> None:
    """Ends PostgreSQL backend `pid` from another connection, as a restart or a failover would."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


class Gate:
    """Holds the writer (SQLite's thread, PostgreSQL's group-commit lane, or with `confined_to` that
    generation's side lane) inside one transaction until opened, so what is written meanwhile queues up into
    one batch."""

    def __init__(self, confined_to: str | None = None) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.confined_to = confined_to

    def work(self, tx: Tx) -> None:
        self.entered.set()
        assert self.opened.wait(10)

    async def close_behind(self, db: Database) -> asyncio.Task[None]:
        task = asyncio.create_task(db.write(self.work, grouped=True, confined_to=self.confined_to))
        await asyncio.to_thread(self.entered.wait, 10)
        return task


async def behind_a_gate(db: Database, works: list[Callable[[Tx], Any]], *, confined_to: str | None = None) -> list[Any]:
    """Runs `works` as grouped writes (confined to `confined_to`, if given) queued while their lane is busy with
    another, so they form one batch; returns each one's result or error, in order."""
    gate = Gate(confined_to)
    held = await gate.close_behind(db)
    queued = [asyncio.create_task(db.write(work, grouped=True, confined_to=confined_to)) for work in works]
    await asyncio.sleep(0.05)  # every write above has been queued
    gate.opened.set()
    await held
    return await asyncio.gather(*queued, return_exceptions=True)


async def note_ids(db: Database) -> list[int]:
    return [note_id for (note_id,) in await db.read(lambda tx: tx.all(IDS))]


class Runs:
    """Counts how often each write's work ran (a member run again after its batch was undone runs twice)."""

    def __init__(self) -> None:
        self.count: Counter[int] = Counter()

    def insert(
        self, note_id: int, then: Callable[[Tx], Any] | None = None, *, generation: str | None = None
    ) -> Callable[[Tx], Any]:
        """A write of one note (with `generation`: a note of that generation, by a confined statement), then
        `then`; it returns what `then` returned, or the note's id."""

        def work(tx: Tx) -> Any:
            self.count[note_id] += 1
            if generation is None:
                tx.run(INSERT, {"id": note_id, "body": f"note {note_id}"})
            else:
                tx.run(CONFINED_INSERT, {"id": note_id, "body": generation})
            result = None if then is None else then(tx)
            return note_id if result is None else result

        return work


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
