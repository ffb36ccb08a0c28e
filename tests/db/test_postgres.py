"""PostgreSQL's transactions under faults: a connection lost before COMMIT is run again on another connection
(the server rolled it back); one lost during COMMIT is settled by asking the server what became of it (run
again only if it did not commit, answered as committed if it did, reported only if the server cannot say);
deadlock victims are run again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import psycopg
import pytest

from reelgate.db.errors import DatabaseUnavailable
from reelgate.db.postgres import PostgresDatabase
from reelgate.db.sql import Tx, query
from tests.db.notes import IDS, INSERT, MY_PID, cut, postgres_notes, proxied_postgres_notes
from tests.reliability.fault_proxy import FaultProxy


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
async def db(pg_database_url: str) -> AsyncIterator[PostgresDatabase]:
    async with postgres_notes(pg_database_url) as database:
        yield database


async def test_a_connection_killed_mid_transaction_runs_the_transaction_again(
    db: PostgresDatabase, pg_database_url: str
) -> None:
    runs: list[int] = []
    killed = threading.Event()

    def work(tx: Tx) -> int:
        pid = int(tx.scalar(MY_PID))
        runs.append(pid)
        if len(runs) == 1:
            with psycopg.connect(_libpq(pg_database_url), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            killed.set()
        return tx.run(INSERT, {"id": 1, "body": "written once"})

    assert await db.write(work) == 1
    assert killed.is_set() and len(runs) == 2 and runs[0] != runs[1]
    assert await db.read(lambda tx: tx.all(IDS)) == [(1,)]


@pytest.fixture
async def proxied_db(pg_database_url: str) -> AsyncIterator[tuple[PostgresDatabase, FaultProxy]]:
    async with proxied_postgres_notes(pg_database_url) as (database, proxy):
        yield database, proxy


async def test_a_commit_that_never_arrived_is_run_again(proxied_db: tuple[PostgresDatabase, FaultProxy]) -> None:
    db, proxy = proxied_db
    loop = asyncio.get_running_loop()
    runs = 0

    def cut_before_commit(tx: Tx) -> str:
        nonlocal runs
        runs += 1
        tx.run(INSERT, {"id": 7, "body": "its first COMMIT never arrives"})
        if runs == 1:
            # The body has run; the network fails before the COMMIT that would follow it.
            asyncio.run_coroutine_threadsafe(cut(proxy), loop).result(5)
        return "done"

    assert await db.write(cut_before_commit) == "done"
    assert runs == 2  # the server reported the first run aborted, so it ran again
    assert await db.read(lambda tx: tx.all(IDS)) == [(7,)]


async def test_a_commit_whose_answer_was_lost_is_answered_as_committed_and_not_run_again(
    proxied_db: tuple[PostgresDatabase, FaultProxy],
) -> None:
    db, proxy = proxied_db
    runs = 0

    def committed_unheard(tx: Tx) -> str:
        nonlocal runs
        runs += 1
        tx.run(INSERT, {"id": 8, "body": "committed; the answer is lost"})
        proxy.lose_next_commit_answer = True
        return "done"

    assert await db.write(committed_unheard) == "done"
    assert runs == 1 and not proxy.lose_next_commit_answer
    assert await db.read(lambda tx: tx.all(IDS)) == [(8,)]


async def test_a_lost_commit_is_reported_when_the_server_cannot_say(
    proxied_db: tuple[PostgresDatabase, FaultProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, proxy = proxied_db
    monkeypatch.setattr("reelgate.db.postgres.SETTLE_SECONDS", 1.0)
    runs = 0

    def unreachable_after_commit(tx: Tx) -> None:
        nonlocal runs
        runs += 1
        tx.run(INSERT, {"id": 9, "body": "outcome unknown to the caller"})
        proxy.lose_next_commit_answer = True
        proxy.mode = "reset"  # new connections are refused, so the outcome cannot be asked for

    with pytest.raises(DatabaseUnavailable):
        await db.write(unreachable_after_commit)
    assert runs == 1  # an unknown outcome is never run again
    proxy.set_mode("pass")
    assert await db.read(lambda tx: tx.all(IDS)) == [(9,)]  # the server did commit it


async def test_deadlock_victims_are_run_again(db: PostgresDatabase) -> None:
    await db.write(lambda tx: [tx.run(INSERT, {"id": n, "body": "start"}) for n in (1, 2)])
    both_locked = threading.Barrier(2, timeout=10)
    update = query("UPDATE notes SET body = :body WHERE id = :id")
    attempts = {"forward": 0, "backward": 0}

    def crossing(name: str, first: int, second: int) -> object:
        def work(tx: Tx) -> None:
            attempts[name] += 1
            tx.run(update, {"id": first, "body": name})
            if attempts[name] == 1:
                both_locked.wait()  # each holds one row and reaches for the other's: a deadlock
            tx.run(update, {"id": second, "body": name})

        return work

    await asyncio.gather(
        db.write(crossing("forward", 1, 2)),  # type: ignore[arg-type]
        db.write(crossing("backward", 2, 1)),  # type: ignore[arg-type]
    )
    assert sorted(attempts.values()) == [1, 2]  # PostgreSQL chose one victim, which ran again
    bodies = await db.read(lambda tx: tx.all(query("SELECT body FROM notes ORDER BY id")))
    assert len({body for (body,) in bodies}) == 1  # one transaction's writes, whole, came last


async def test_a_snapshot_sees_one_committed_state(db: PostgresDatabase) -> None:
    seen: list[int] = []
    read_once = threading.Event()
    written = threading.Event()

    def reader(tx: Tx) -> None:
        seen.append(len(tx.all(IDS)))
        read_once.set()
        assert written.wait(10)
        seen.append(len(tx.all(IDS)))

    reading = asyncio.create_task(db.read(reader, snapshot=True))
    await asyncio.to_thread(read_once.wait, 10)
    await db.write(lambda tx: tx.run(INSERT, {"id": 1, "body": "committed meanwhile"}))
    written.set()
    await reading
    assert seen == [0, 0]
    assert await db.read(lambda tx: len(tx.all(IDS))) == 1
