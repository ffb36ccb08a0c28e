"""PostgreSQL's group commit: grouped writes queued behind one another share one transaction and one COMMIT, and
what a member's failure, a broken connection or a lost COMMIT does to the batch is what it would do to each
member alone: the failing member's caller gets its error and nothing of its work stays, every other member is
committed exactly once, and no caller hears "done" before the COMMIT."""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg
import pytest

from reelgate.db.database import open_database
from reelgate.db.errors import DatabaseUnavailable, UniqueViolation
from reelgate.db.postgres import PostgresDatabase
from reelgate.db.sql import Query, Tx
from tests.db.notes import (
    INSERT,
    MY_PID,
    Gate,
    Refused,
    Runs,
    asking,
    behind_a_gate,
    cut,
    note_ids,
    terminate_backend,
)
from tests.reliability.fault_proxy import FaultProxy


async def test_queued_grouped_writes_share_one_commit(db: PostgresDatabase) -> None:
    runs = Runs()
    before = db.commits
    results = await behind_a_gate(db, [runs.insert(n) for n in range(1, 11)])
    assert results == list(range(1, 11))
    assert db.commits - before == 2  # the gate's own transaction, then all ten in one
    assert await note_ids(db) == list(range(1, 11))
    assert set(runs.count.values()) == {1}


async def test_a_member_that_raises_gets_its_error_and_the_others_commit_once(db: PostgresDatabase) -> None:
    runs = Runs()

    def refuse(tx: Tx) -> None:
        raise Refused("after writing note 2")

    results = await behind_a_gate(db, [runs.insert(1), runs.insert(2, then=refuse), runs.insert(3)])
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], Refused)
    assert await note_ids(db) == [1, 3]  # nothing of the failed member's work stayed
    assert runs.count == Counter({1: 2, 2: 1, 3: 1})  # note 1 ran again after the batch was undone


async def test_many_failing_members_cost_one_rerun_of_the_batch(db: PostgresDatabase) -> None:
    runs = Runs()

    def refuse(tx: Tx) -> None:
        raise Refused("refused")

    before = db.commits
    works = [runs.insert(n, then=refuse if n % 2 == 0 else None) for n in range(1, 9)]
    results = await behind_a_gate(db, works)
    assert [isinstance(result, Refused) for result in results] == [n % 2 == 0 for n in range(1, 9)]
    assert await note_ids(db) == [1, 3, 5, 7]
    # The first failure undid the batch; the rest ran once more, each under a savepoint, in one transaction.
    assert db.commits - before == 2
    assert max(runs.count.values()) == 2


async def test_a_member_that_swallows_a_failed_statement_is_refused_alone(db: PostgresDatabase) -> None:
    await db.write(lambda tx: tx.run(INSERT, {"id": 100, "body": "already there"}))
    runs = Runs()

    def swallow(tx: Tx) -> str:
        tx.run(INSERT, {"id": 50, "body": "undone with the rest of its work"})
        try:
            tx.run(INSERT, {"id": 100, "body": "a duplicate"})
        except UniqueViolation:
            pass  # wrong, without a savepoint: the transaction is now failed
        return "believes it succeeded"

    results = await behind_a_gate(db, [runs.insert(1), swallow, runs.insert(2)])
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], psycopg.errors.InFailedSqlTransaction)
    assert await note_ids(db) == [1, 2, 100]


async def test_a_connection_killed_mid_batch_runs_the_whole_batch_again(
    db: PostgresDatabase, pg_database_url: str
) -> None:
    runs = Runs()

    def kill_my_connection_once(tx: Tx) -> None:
        if runs.count[2] == 1:
            terminate_backend(pg_database_url.replace("+psycopg", ""), int(tx.scalar(MY_PID)))

    results = await behind_a_gate(db, [runs.insert(1), runs.insert(2, then=kill_my_connection_once), runs.insert(3)])
    assert results == [1, 2, 3]
    assert await note_ids(db) == [1, 2, 3]  # each exactly once, though the batch ran twice
    # The kill lands while note 2 or note 3 runs (the server ends the backend on its own time).
    assert runs.count[1] == runs.count[2] == 2 and runs.count[3] in (1, 2)


async def test_a_batch_whose_commit_answer_was_lost_is_answered_as_committed(
    proxied_db: tuple[PostgresDatabase, FaultProxy],
) -> None:
    db, proxy = proxied_db
    runs = Runs()

    def lose_the_answer(tx: Tx) -> None:
        proxy.lose_next_commit_answer = True

    results = await behind_a_gate(db, [runs.insert(1), runs.insert(2), runs.insert(3, then=lose_the_answer)])
    assert results == [1, 2, 3]
    assert not proxy.lose_next_commit_answer  # the answer was indeed lost
    assert set(runs.count.values()) == {1}  # a committed batch is never run again
    assert await note_ids(db) == [1, 2, 3]


async def test_a_batch_cut_before_its_commit_runs_again(proxied_db: tuple[PostgresDatabase, FaultProxy]) -> None:
    db, proxy = proxied_db
    loop = asyncio.get_running_loop()
    runs = Runs()

    def cut_once(tx: Tx) -> None:
        if runs.count[2] == 1:
            asyncio.run_coroutine_threadsafe(cut(proxy), loop).result(5)

    results = await behind_a_gate(db, [runs.insert(1), runs.insert(2, then=cut_once)])
    assert results == [1, 2]
    assert await note_ids(db) == [1, 2]
    assert runs.count == Counter({1: 2, 2: 2})


async def test_a_caller_that_gave_up_while_queued_is_never_run(db: PostgresDatabase) -> None:
    runs = Runs()
    gate = Gate()
    held = await gate.close_behind(db)
    abandoned = asyncio.create_task(db.write(runs.insert(1), grouped=True))
    kept = asyncio.create_task(db.write(runs.insert(2), grouped=True))
    await asyncio.sleep(0.05)
    abandoned.cancel()
    # The lane hears of the cancellation on the loop's next turn: only then may it take the batch.
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    gate.opened.set()
    await held
    assert await kept == 2
    assert await note_ids(db) == [2] and runs.count[1] == 0


async def test_before_commit_actions_run_once_per_batch_with_the_committed_members_items(
    db: PostgresDatabase,
) -> None:
    calls: list[list[int]] = []

    def record(items: list[int]) -> tuple[Query, dict[str, object]]:
        calls.append(list(items))
        return INSERT, {"id": 1000 + len(calls), "body": "written with the COMMIT, in the same transaction"}

    works = [asking(1, record), asking(2, record, refuse=True), asking(3, record), asking(4, record, refuse=True)]
    results = await behind_a_gate(db, [*works, asking(5, record)])
    assert [isinstance(result, Refused) for result in results] == [False, True, False, True, False]
    # The first pass ended at note 2 before any action ran; the rerun undid note 4's item with its work.
    assert calls == [[1, 3, 5]]
    assert await note_ids(db) == [1, 3, 5, 1001]


async def test_a_failing_before_commit_action_fails_the_whole_batch(db: PostgresDatabase) -> None:
    def broken(items: list[int]) -> tuple[Query, dict[str, object]]:
        return INSERT, {"id": items[0], "body": "a duplicate: this statement fails, so the COMMIT never runs"}

    results = await behind_a_gate(db, [asking(1, broken), asking(2, broken)])
    assert all(isinstance(result, UniqueViolation) for result in results)
    assert await note_ids(db) == []  # no member's work committed without its action


async def test_a_grouped_write_after_closing_is_refused_not_left_waiting(pg_database_url: str) -> None:
    database = await open_database(pg_database_url, migrate=False)
    await database.close()
    with pytest.raises(DatabaseUnavailable):
        await asyncio.wait_for(database.write(lambda tx: 1, grouped=True), 5)
