"""Group commit on SQLite (db/write_batch.py), driven through `Database.write_connection` as services drive it:
queued writers share one COMMIT, yet each block returns only once its own work is durable, a writer that
fails undoes only its own statements, a COMMIT that fails fails every member, and other kinds of writers
(ORM sessions) join the same batch under a SAVEPOINT of their own."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import exc, text

from reelgate.db import write_batch
from reelgate.db.engine import Database
from reelgate.db.write_batch import WriteBatch
from tests.db.conftest import scratch_database


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    async with scratch_database(
        db_path,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL)",
        "CREATE TABLE parents (id INTEGER PRIMARY KEY)",
        # Checked at COMMIT, not per statement: the way to make a COMMIT itself fail.
        "CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL "
        "REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)",
    ) as database:
        yield database


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The member count of every batch committed (the real COMMIT still runs)."""
    seen: list[int] = []
    real = WriteBatch.commit

    async def counting(self: WriteBatch) -> None:
        if not self.closed:
            seen.append(self.members)
        await real(self)

    monkeypatch.setattr(WriteBatch, "commit", counting)
    return seen


def committed_labels(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT label FROM items ORDER BY id")]
    finally:
        conn.close()


async def insert(db: Database, label: str, *, fail: bool = False, pause: float = 0.0) -> str:
    async with db.write_connection() as connection:
        await connection.execute(text("INSERT INTO items (label) VALUES (:label)"), {"label": label})
        if pause:
            await asyncio.sleep(pause)
        if fail:
            raise RuntimeError(f"{label} failed")
    return label


async def test_a_lone_writer_commits_at_once(db: Database, db_path: Path, commits: list[int]) -> None:
    await insert(db, "alone")
    assert committed_labels(db_path) == ["alone"]
    assert commits == [1]
    assert db._batch is None


async def test_queued_writers_share_one_commit_and_return_only_after_it(
    db: Database, db_path: Path, commits: list[int]
) -> None:
    seen_on_return: dict[str, list[str]] = {}

    async def writer(label: str) -> None:
        await insert(db, label, pause=0.01 if label == "w0" else 0.0)
        seen_on_return[label] = committed_labels(db_path)

    await asyncio.gather(*(writer(f"w{i}") for i in range(10)))
    assert sorted(committed_labels(db_path)) == sorted(f"w{i}" for i in range(10))
    assert sum(commits) == 10
    assert len(commits) < 10, commits  # the nine queued behind the first shared COMMITs
    for label, visible in seen_on_return.items():
        assert label in visible  # durable, for a connection of its own, by the time the block returned


async def test_a_failing_member_undoes_only_its_own_work(db: Database, db_path: Path, commits: list[int]) -> None:
    results = await asyncio.gather(
        insert(db, "first", pause=0.01),
        insert(db, "second"),
        insert(db, "broken", fail=True),
        insert(db, "fourth"),
        return_exceptions=True,
    )
    assert results[:2] == ["first", "second"] and results[3] == "fourth"
    assert isinstance(results[2], RuntimeError)
    assert committed_labels(db_path) == ["first", "second", "fourth"]
    assert len(commits) < 3


async def test_a_failing_first_writer_leaves_the_queue_to_a_new_batch(db: Database, db_path: Path) -> None:
    results = await asyncio.gather(
        insert(db, "broken", fail=True, pause=0.01),
        insert(db, "after-1"),
        insert(db, "after-2"),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError)
    assert results[1:] == ["after-1", "after-2"]
    assert committed_labels(db_path) == ["after-1", "after-2"]


async def test_a_failed_commit_fails_every_member_and_keeps_nothing(db: Database, db_path: Path) -> None:
    async def orphan() -> None:
        async with db.write_connection() as connection:
            await asyncio.sleep(0.01)  # let the others queue behind it
            await connection.execute(text("INSERT INTO children (id, parent_id) VALUES (1, 999)"))

    results = await asyncio.gather(orphan(), insert(db, "a"), insert(db, "b"), return_exceptions=True)
    assert all(isinstance(r, exc.IntegrityError) for r in results), results
    assert committed_labels(db_path) == []
    await insert(db, "later")  # the database is usable again
    assert committed_labels(db_path) == ["later"]


async def test_orm_transactions_join_the_batch_and_share_its_commit(
    db: Database, db_path: Path, commits: list[int]
) -> None:
    async def orm_writer(label: str) -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO items (label) VALUES (:label)"), {"label": label})

    async with asyncio.timeout(10):  # a deadlock between the batch and a session would hang here
        await asyncio.gather(
            insert(db, "core-1", pause=0.01), orm_writer("orm-1"), insert(db, "core-2"), orm_writer("orm-2")
        )
    assert sorted(committed_labels(db_path)) == ["core-1", "core-2", "orm-1", "orm-2"]
    assert sum(commits) == 4 and len(commits) < 4


async def test_a_failing_orm_transaction_undoes_only_its_own_work(db: Database, db_path: Path) -> None:
    async def failing_orm_writer() -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO items (label) VALUES ('orm-broken')"))
            await session.execute(text("INSERT INTO items (id, label) VALUES (1, 'duplicate id')"))

    results = await asyncio.gather(
        insert(db, "first", pause=0.01), failing_orm_writer(), insert(db, "last"), return_exceptions=True
    )
    assert results[0] == "first" and results[2] == "last"
    assert isinstance(results[1], exc.IntegrityError)
    assert committed_labels(db_path) == ["first", "last"]


async def test_a_member_cancelled_while_waiting_for_the_commit_still_has_its_work_committed(
    db: Database, db_path: Path
) -> None:
    entered = asyncio.Event()

    async def cancelled_member() -> None:
        async with db.write_connection() as connection:
            await connection.execute(text("INSERT INTO items (label) VALUES ('cancelled-late')"))
            entered.set()

    first = asyncio.create_task(insert(db, "first", pause=0.05))
    await asyncio.sleep(0.01)
    late = asyncio.create_task(cancelled_member())
    await entered.wait()
    late.cancel()  # its block is done; it now waits for the shared COMMIT
    assert await first == "first"
    with pytest.raises(asyncio.CancelledError):
        await late
    assert committed_labels(db_path) == ["first", "cancelled-late"]


async def test_a_long_queue_commits_in_steps(
    db: Database, db_path: Path, commits: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_batch, "MAX_MEMBERS", 4)
    await asyncio.gather(insert(db, "head", pause=0.01), *(insert(db, f"q{i}") for i in range(10)))
    assert len(committed_labels(db_path)) == 11
    assert max(commits) <= 4
