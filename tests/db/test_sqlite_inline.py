"""The inline SQLite driver, driven through `Database` as the services drive it: commits and rollbacks as a
plain sqlite3 connection sees them, waiting for another connection's write lock without stalling the event
loop, integrity errors, snapshot reads, and which steps leave the loop for the executor."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc, text

from reelgate.db.engine import Database
from tests.db.conftest import scratch_database

HOLD_SECONDS = 0.5


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    async with scratch_database(
        db_path,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL)",
        "INSERT INTO items (id, label) VALUES (1, 'seed')",
    ) as database:
        yield database


def committed_rows(path: Path) -> list[tuple[int, str]]:
    """What a fresh connection of its own sees: only committed rows."""
    conn = sqlite3.connect(path)
    try:
        return [tuple(row) for row in conn.execute("SELECT id, label FROM items ORDER BY id")]
    finally:
        conn.close()


def write_lock_is_free(path: Path) -> bool:
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    else:
        conn.execute("ROLLBACK")
        return True
    finally:
        conn.close()


async def insert(connection: Any, item_id: int, label: str) -> None:
    await connection.execute(
        text("INSERT INTO items (id, label) VALUES (:id, :label)"), {"id": item_id, "label": label}
    )


class Boom(Exception):
    pass


# --- (a) commit and rollback, as another connection sees them -------------------------------------------------


async def test_write_connection_commits_at_the_end_of_the_block(db: Database, db_path: Path) -> None:
    async with db.write_connection() as connection:
        assert not write_lock_is_free(db_path)  # taken up front (BEGIN IMMEDIATE), before any write
        await insert(connection, 2, "two")
        await insert(connection, 3, "three")
        assert committed_rows(db_path) == [(1, "seed")]  # not committed yet: invisible to others
    assert committed_rows(db_path) == [(1, "seed"), (2, "two"), (3, "three")]
    assert write_lock_is_free(db_path)


async def test_write_connection_rolls_back_when_the_block_raises(db: Database, db_path: Path) -> None:
    with pytest.raises(Boom):
        async with db.write_connection() as connection:
            await insert(connection, 2, "two")
            raise Boom
    assert committed_rows(db_path) == [(1, "seed")]
    assert write_lock_is_free(db_path)
    async with db.write_connection() as connection:  # the pooled connection is usable again
        await insert(connection, 2, "after")
    assert committed_rows(db_path) == [(1, "seed"), (2, "after")]


async def test_transaction_commits_at_the_end_of_the_block(db: Database, db_path: Path) -> None:
    async with db.transaction() as session:
        await insert(session, 2, "two")
        assert committed_rows(db_path) == [(1, "seed")]
        assert not write_lock_is_free(db_path)
    assert committed_rows(db_path) == [(1, "seed"), (2, "two")]
    assert write_lock_is_free(db_path)


async def test_transaction_rolls_back_when_the_block_raises(db: Database, db_path: Path) -> None:
    with pytest.raises(Boom):
        async with db.transaction() as session:
            await insert(session, 2, "two")
            await session.execute(text("UPDATE items SET label = 'changed' WHERE id = 1"))
            raise Boom
    assert committed_rows(db_path) == [(1, "seed")]
    assert write_lock_is_free(db_path)


async def test_reads_see_their_own_transaction_and_then_everyone_sees_it(db: Database, db_path: Path) -> None:
    async with db.write_connection() as connection:
        await insert(connection, 2, "two")
        seen = (await connection.execute(text("SELECT label FROM items WHERE id = 2"))).scalar_one()
        assert seen == "two"
    async with db.read_connection() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM items"))).scalar_one() == 2


# --- (b) another connection holds the write lock --------------------------------------------------------------


@contextmanager
def lock_held_elsewhere(path: Path, seconds: float) -> Iterator[threading.Thread]:
    """A plain sqlite3 connection in another thread holds BEGIN IMMEDIATE (with a row written) for `seconds`."""
    held = threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO items (id, label) VALUES (100, 'other thread')")
                held.set()
                time.sleep(seconds)
                conn.execute("COMMIT")
            finally:
                conn.close()
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)
            held.set()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(5)
    assert not failures, failures
    try:
        yield thread
    finally:
        thread.join(10)
        assert not thread.is_alive()
        assert not failures, failures


async def test_write_waits_for_another_connections_lock_without_blocking_the_loop(db: Database, db_path: Path) -> None:
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    with lock_held_elsewhere(db_path, HOLD_SECONDS):
        assert not write_lock_is_free(db_path)
        tick_task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        started = time.monotonic()
        async with db.write_connection() as connection:
            locked_at = time.monotonic()
            await insert(connection, 2, "mine")
        finished = time.monotonic()
        tick_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tick_task

    # It really waited for the other connection (this is the contended case)...
    assert locked_at - started >= HOLD_SECONDS * 0.6
    assert finished - started < HOLD_SECONDS + 5
    # ...and the loop kept running meanwhile: ~50 ticks of 10 ms, with no long stall between two of them.
    during = [moment for moment in ticks if started <= moment <= locked_at]
    assert len(during) >= 15, len(during)
    gaps = [later - earlier for earlier, later in zip(during, during[1:], strict=False)]
    assert max(gaps) < 0.2, max(gaps)
    # Both writers' rows are committed.
    assert committed_rows(db_path) == [(1, "seed"), (2, "mine"), (100, "other thread")]
    assert write_lock_is_free(db_path)


async def test_readers_are_served_while_a_writer_waits_for_the_lock(db: Database, db_path: Path) -> None:
    with lock_held_elsewhere(db_path, HOLD_SECONDS):
        write_started = time.monotonic()

        async def write() -> float:
            async with db.write_connection() as connection:
                await insert(connection, 2, "mine")
            return time.monotonic()

        writer = asyncio.create_task(write())
        await asyncio.sleep(0.05)
        assert not writer.done()
        # A read on another pooled connection answers right away (WAL), while the writer is still waiting.
        async with db.read_connection() as connection:
            count = (await connection.execute(text("SELECT count(*) FROM items"))).scalar_one()
        read_done = time.monotonic()
        assert count == 1  # the other thread's row is not committed yet
        assert not writer.done()
        write_done = await writer
    assert read_done - write_started < HOLD_SECONDS * 0.6
    assert write_done > read_done
    assert committed_rows(db_path) == [(1, "seed"), (2, "mine"), (100, "other thread")]


async def test_a_write_cancelled_while_waiting_for_the_lock_leaves_no_lock_behind(db: Database, db_path: Path) -> None:
    async def write(item_id: int) -> None:
        async with db.write_connection() as connection:
            await insert(connection, item_id, "mine")

    with lock_held_elsewhere(db_path, HOLD_SECONDS):
        waiting = asyncio.create_task(write(2))
        await asyncio.sleep(HOLD_SECONDS / 3)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    await asyncio.sleep(0.3)  # the other connection has committed and let go of the lock

    assert write_lock_is_free(db_path)
    await asyncio.wait_for(write(3), 10)
    assert committed_rows(db_path) == [(1, "seed"), (3, "mine"), (100, "other thread")]


# --- which steps leave the loop --------------------------------------------------------------------------------


class RecordingExecutor(ThreadPoolExecutor):
    """The loop's default executor, recording what is sent to it (name of the callable and its arguments)."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls.append((getattr(fn, "__name__", repr(fn)), args))
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
async def executor() -> RecordingExecutor:
    recording = RecordingExecutor()
    asyncio.get_running_loop().set_default_executor(recording)  # the loop shuts it down when the test ends
    return recording


async def test_only_a_commit_that_wrote_rows_leaves_the_loop(
    executor: RecordingExecutor, db: Database, db_path: Path
) -> None:
    executor.calls.clear()
    async with db.write_connection() as connection:
        await insert(connection, 2, "two")
    assert executor.calls == [("commit", ())]  # an uncontended BEGIN IMMEDIATE stays on the loop
    assert committed_rows(db_path) == [(1, "seed"), (2, "two")]

    executor.calls.clear()
    async with db.write_connection() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM items"))).scalar_one() == 2
    async with db.transaction() as session:
        await session.execute(text("UPDATE items SET label = 'x' WHERE id = 999"))  # matches no row
    async with db.snapshot() as session:
        assert (await session.execute(text("SELECT count(*) FROM items"))).scalar_one() == 2
    assert executor.calls == []
    assert write_lock_is_free(db_path)


async def test_a_contended_begin_waits_in_the_executor(
    executor: RecordingExecutor, db: Database, db_path: Path
) -> None:
    executor.calls.clear()
    with lock_held_elsewhere(db_path, HOLD_SECONDS):
        async with db.write_connection() as connection:
            await insert(connection, 2, "two")
    assert executor.calls == [("execute", ("BEGIN IMMEDIATE",)), ("commit", ())]


# --- (c) integrity errors ----------------------------------------------------------------------------------------


async def test_duplicate_key_raises_integrity_error_and_rolls_back(db: Database, db_path: Path) -> None:
    with pytest.raises(exc.IntegrityError) as raised:
        async with db.write_connection() as connection:
            await insert(connection, 2, "two")
            await insert(connection, 1, "duplicate of the seed")
    assert isinstance(raised.value.orig, sqlite3.IntegrityError)
    assert committed_rows(db_path) == [(1, "seed")]  # the row written before the error is gone too
    assert write_lock_is_free(db_path)
    async with db.write_connection() as connection:
        await insert(connection, 2, "retried")
    assert committed_rows(db_path) == [(1, "seed"), (2, "retried")]


async def test_duplicate_key_in_a_session_transaction_rolls_back(db: Database, db_path: Path) -> None:
    with pytest.raises(exc.IntegrityError):
        async with db.transaction() as session:
            await insert(session, 2, "two")
            await session.execute(text("UPDATE items SET label = 'changed' WHERE id = 1"))
            await insert(session, 2, "again")
    assert committed_rows(db_path) == [(1, "seed")]
    assert write_lock_is_free(db_path)


async def test_a_caught_integrity_error_leaves_the_transaction_usable(db: Database, db_path: Path) -> None:
    # SQLite undoes only the failed statement; the block may go on and commit the rest.
    async with db.write_connection() as connection:
        await insert(connection, 2, "two")
        with pytest.raises(exc.IntegrityError):
            await insert(connection, 2, "again")
        await insert(connection, 3, "three")
    assert committed_rows(db_path) == [(1, "seed"), (2, "two"), (3, "three")]


# --- (d) snapshots -------------------------------------------------------------------------------------------------


async def test_snapshot_sees_one_state_while_others_commit(db: Database, db_path: Path) -> None:
    query = text("SELECT id, label FROM items ORDER BY id")
    async with db.snapshot() as session:
        before = (await session.execute(query)).all()
        # Another process's connection and a writer of this Database both commit between the two reads.
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("INSERT INTO items (id, label) VALUES (2, 'other connection')")
            other.execute("UPDATE items SET label = 'changed' WHERE id = 1")
        finally:
            other.close()
        async with db.write_connection() as connection:
            await insert(connection, 3, "same process")
        assert committed_rows(db_path) == [(1, "changed"), (2, "other connection"), (3, "same process")]
        after = (await session.execute(query)).all()
        count = (await session.execute(text("SELECT count(*) FROM items"))).scalar_one()
    assert [tuple(row) for row in before] == [(1, "seed")]
    assert [tuple(row) for row in after] == [(1, "seed")]
    assert count == 1
    async with db.snapshot() as session:  # a new snapshot starts from the new state
        assert (await session.execute(text("SELECT count(*) FROM items"))).scalar_one() == 3


async def test_a_plain_reader_is_not_a_snapshot(db: Database, db_path: Path) -> None:
    """The contrast that gives the snapshot test its meaning: autocommit reads see each commit."""
    async with db.reader() as session:
        assert (await session.execute(text("SELECT count(*) FROM items"))).scalar_one() == 1
        async with db.write_connection() as connection:
            await insert(connection, 2, "two")
        assert (await session.execute(text("SELECT count(*) FROM items"))).scalar_one() == 2


async def test_snapshot_takes_no_write_lock(db: Database, db_path: Path) -> None:
    async with db.snapshot() as session:
        assert (await session.execute(text("SELECT count(*) FROM items"))).scalar_one() == 1
        assert write_lock_is_free(db_path)
