"""The SQLite writer thread: group commit, each member's failure its own, a lost transaction failing every member
that was in it, and nothing of the database running on (or blocking) the event loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reelgate.db.database import open_database
from reelgate.db.errors import DatabaseUnavailable, IntegrityViolation, TransactionLost, UniqueViolation
from reelgate.db.sql import Query, Tx, query
from reelgate.db.sqlite import LOWEST_PRIORITY, READER_NICENESS, SqliteDatabase
from tests.db.notes import Gate, Refused, asking

_TABLE = query("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
_INSERT = query("INSERT INTO notes (id, body) VALUES (:id, :body)")
_IDS = query("SELECT id FROM notes ORDER BY id")
_END_TRANSACTION = query("ROLLBACK")  # what SQLite itself does on SQLITE_FULL, IOERR or NOMEM


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = await open_database(f"sqlite:///{tmp_path / 'writer.db'}", migrate=False)
    assert isinstance(database, SqliteDatabase)
    await database.write(lambda tx: tx.run(_TABLE))
    try:
        yield database
    finally:
        await database.close()


def _stored(path: str) -> list[int]:
    """What a fresh connection reads: what is really on disk, not what the writer's connection believes."""
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM notes ORDER BY id")]


def _insert(note_id: int) -> object:
    return lambda tx: tx.run(_INSERT, {"id": note_id, "body": f"note {note_id}"})


async def test_queued_writers_share_one_commit(db: SqliteDatabase) -> None:
    gate = Gate()
    held = await gate.close_behind(db)
    before = db.commits
    writers = [asyncio.create_task(db.write(_insert(n))) for n in range(1, 11)]  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    gate.opened.set()
    await held
    assert await asyncio.gather(*writers) == [1] * 10
    assert db.commits - before == 2  # the gate's own transaction, then all ten in one
    assert _stored(db.path) == list(range(1, 11))


async def test_a_member_that_fails_undoes_only_its_own_work(db: SqliteDatabase) -> None:
    gate = Gate()
    held = await gate.close_behind(db)

    def half_then_fail(tx: Tx) -> None:
        tx.run(_INSERT, {"id": 2, "body": "kept only if its transaction is"})
        raise ValueError("the use case changed its mind")

    first = asyncio.create_task(db.write(_insert(1)))  # type: ignore[arg-type]
    failing = asyncio.create_task(db.write(half_then_fail))
    duplicate = asyncio.create_task(db.write(_insert(1)))  # type: ignore[arg-type]
    last = asyncio.create_task(db.write(_insert(3)))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    gate.opened.set()
    await held
    assert await first == 1 and await last == 1
    with pytest.raises(ValueError, match="changed its mind"):
        await failing
    with pytest.raises(UniqueViolation):
        await duplicate
    assert _stored(db.path) == [1, 3]


async def test_a_transaction_that_sqlite_ends_fails_every_member_that_was_in_it(db: SqliteDatabase) -> None:
    """Before this shape, the members before the one whose statement ended the transaction were told their work
    was durable while it was gone."""
    gate = Gate()
    held = await gate.close_behind(db)

    def ends_the_transaction(tx: Tx) -> None:
        tx.run(_INSERT, {"id": 2, "body": "lost"})
        tx.run(_END_TRANSACTION)
        tx.run(_INSERT, {"id": 20, "body": "would commit on its own"})

    first = asyncio.create_task(db.write(_insert(1)))  # type: ignore[arg-type]
    ending = asyncio.create_task(db.write(ends_the_transaction))
    after = asyncio.create_task(db.write(_insert(3)))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    gate.opened.set()
    await held
    with pytest.raises(TransactionLost):
        await first
    with pytest.raises(TransactionLost):
        await ending
    assert await after == 1  # not run in the lost transaction: it goes into the next one
    assert _stored(db.path) == [3]
    assert await db.write(_insert(4)) == 1  # type: ignore[arg-type]
    assert _stored(db.path) == [3, 4]


async def test_a_refused_commit_fails_the_batch_and_frees_the_writer(db: SqliteDatabase) -> None:
    await db.write(lambda tx: tx.run(query("CREATE TABLE child (parent INTEGER REFERENCES notes(id))")))
    gate = Gate()
    held = await gate.close_behind(db)

    def orphan_checked_at_commit(tx: Tx) -> None:
        tx.run(query("PRAGMA defer_foreign_keys = ON"))
        tx.run(query("INSERT INTO child (parent) VALUES (999)"))

    first = asyncio.create_task(db.write(_insert(1)))  # type: ignore[arg-type]
    orphan = asyncio.create_task(db.write(orphan_checked_at_commit))
    await asyncio.sleep(0.05)
    gate.opened.set()
    await held
    for member in (first, orphan):
        with pytest.raises(IntegrityViolation):
            await member
    assert _stored(db.path) == []
    assert await db.write(_insert(5)) == 1  # type: ignore[arg-type]
    assert _stored(db.path) == [5]


async def test_a_full_database_never_reports_lost_work_as_durable(db: SqliteDatabase) -> None:
    """A database capped by max_page_count: three writers in one batch, the second too big to fit. Whether SQLite
    rolls back only the statement or the whole transaction, a writer told "done" has its row on disk, and a
    refusal is DatabaseUnavailable (the API's 503)."""
    await db.write(_insert(100))  # type: ignore[arg-type]
    pages = await db.write(lambda tx: tx.scalar(query("PRAGMA page_count")))
    await db.write(lambda tx: tx.scalar(query(f"PRAGMA max_page_count = {int(pages) + 2}")))
    gate = Gate()
    held = await gate.close_behind(db)
    small = asyncio.create_task(db.write(_insert(1)))  # type: ignore[arg-type]
    huge = asyncio.create_task(db.write(lambda tx: tx.run(_INSERT, {"id": 2, "body": "x" * 2_000_000})))
    small_after = asyncio.create_task(db.write(_insert(3)))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    gate.opened.set()
    await held
    outcomes = await asyncio.gather(small, huge, small_after, return_exceptions=True)
    assert isinstance(outcomes[1], DatabaseUnavailable)
    stored = set(_stored(db.path))
    for note_id, outcome in zip((1, 2, 3), outcomes, strict=True):
        if outcome == 1:
            assert note_id in stored
        else:
            assert isinstance(outcome, DatabaseUnavailable), outcome
            assert note_id not in stored
    await db.write(lambda tx: tx.scalar(query("PRAGMA max_page_count = 1073741823")))
    assert await db.write(_insert(4)) == 1  # type: ignore[arg-type]


async def test_before_commit_actions_run_once_per_batch_with_the_committed_members_items(
    db: SqliteDatabase,
) -> None:
    calls: list[list[int]] = []

    def record(items: list[int]) -> tuple[Query, dict[str, object]]:
        calls.append(list(items))
        return _INSERT, {"id": 1000 + len(calls), "body": "written with the COMMIT, in the same transaction"}

    gate = Gate()
    held = await gate.close_behind(db)
    writers = [asyncio.create_task(db.write(asking(n, record, refuse=n % 2 == 0))) for n in range(1, 6)]
    await asyncio.sleep(0.05)
    gate.opened.set()
    await held
    results = await asyncio.gather(*writers, return_exceptions=True)
    assert [isinstance(result, Refused) for result in results] == [False, True, False, True, False]
    assert calls == [[1, 3, 5]]  # once, with the items of the members that committed
    assert _stored(db.path) == [1, 3, 5, 1001]


async def test_a_failing_before_commit_action_fails_the_whole_batch(db: SqliteDatabase) -> None:
    def broken(items: list[int]) -> tuple[Query, dict[str, object]]:
        return _INSERT, {"id": items[0], "body": "a duplicate: this statement fails, so the COMMIT never runs"}

    gate = Gate()
    held = await gate.close_behind(db)
    writers = [asyncio.create_task(db.write(asking(n, broken))) for n in (1, 2)]
    await asyncio.sleep(0.05)
    gate.opened.set()
    await held
    results = await asyncio.gather(*writers, return_exceptions=True)
    assert all(isinstance(result, UniqueViolation) for result in results)
    assert _stored(db.path) == []
    assert await db.write(lambda tx: tx.run(_INSERT, {"id": 3, "body": "the writer goes on"})) == 1


async def test_a_writer_cancelled_while_queued_never_runs(db: SqliteDatabase) -> None:
    gate = Gate()
    held = await gate.close_behind(db)
    ran = threading.Event()

    def never(tx: Tx) -> None:
        ran.set()

    doomed = asyncio.create_task(db.write(never))
    await asyncio.sleep(0.05)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    gate.opened.set()
    await held
    assert await db.write(_insert(1)) == 1  # type: ignore[arg-type]
    assert not ran.is_set()


async def test_another_process_holding_the_write_lock_blocks_neither_reads_nor_the_loop(
    db: SqliteDatabase,
) -> None:
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the CLI in another process, mid-transaction
    try:
        waiting = asyncio.create_task(db.write(_insert(1)))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        assert not waiting.done()
        assert await db.read(lambda tx: tx.all(_IDS)) == []  # WAL: reads go on
        other.execute("COMMIT")
        assert await waiting == 1
    finally:
        other.close()


async def test_a_long_read_runs_off_the_event_loop(db: SqliteDatabase) -> None:
    slow = query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000000) SELECT count(*) FROM n"
    )
    long_read = asyncio.create_task(db.read(lambda tx: tx.scalar(slow)))
    await asyncio.sleep(0.05)
    ticks = 0
    while not long_read.done() and ticks < 20:
        await asyncio.sleep(0.01)  # the loop keeps turning while the read runs on its thread
        ticks += 1
    assert ticks == 20 and not long_read.done()
    assert await db.write(_insert(1)) == 1  # type: ignore[arg-type]  # and writes go on beside it
    assert await long_read == 30000000


def _nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
async def test_reads_run_at_a_lower_cpu_priority_than_the_loop(db: SqliteDatabase) -> None:
    loop_nice = _nice_of_this_thread()
    readers = await asyncio.gather(*(db.read(lambda tx: _nice_of_this_thread()) for _ in range(8)))
    assert set(readers) == {min(loop_nice + READER_NICENESS, LOWEST_PRIORITY)}
    assert _nice_of_this_thread() == loop_nice  # the loop's own priority is untouched
    assert await db.write(lambda tx: _nice_of_this_thread()) == loop_nice  # and so is the writer's: COMMITs stay prompt
