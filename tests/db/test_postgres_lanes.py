"""PostgreSQL's side lanes: a grouped write confined to one generation's rows commits in that generation's lane,
beside the main lane and the other side lanes, and one that reaches beyond its generation is taken out of its
batch and runs, once and whole, in the main lane."""

from __future__ import annotations

import asyncio

import pytest

from reelgate.db.postgres import SIDE_LANES, PostgresDatabase, side_lane_of
from reelgate.db.sql import Tx
from tests.db.notes import (
    CONFINED_INSERT,
    CONFINED_PID,
    INSERT,
    Gate,
    Runs,
    behind_a_gate,
    cut,
    note_ids,
    terminate_backend,
)
from tests.reliability.fault_proxy import FaultProxy


def _keys_in_two_side_lanes() -> tuple[str, str]:
    first = "gen-a"
    other = next(f"gen-{n}" for n in range(1000) if side_lane_of(f"gen-{n}") != side_lane_of(first))
    return first, other


def test_every_generation_has_one_side_lane_and_both_lanes_are_used() -> None:
    lanes = {side_lane_of(f"gen-{n}") for n in range(100)}
    assert lanes == set(range(1, SIDE_LANES + 1))
    assert side_lane_of("gen-7") == side_lane_of("gen-7")


async def test_a_confined_write_commits_while_the_main_lane_is_held(db: PostgresDatabase) -> None:
    gate = Gate()
    held = await gate.close_behind(db)
    try:
        shared = asyncio.create_task(db.write(Runs().insert(1, generation="gen-a"), grouped=True))
        confined = await asyncio.wait_for(
            db.write(Runs().insert(2, generation="gen-a"), grouped=True, confined_to="gen-a"), 5
        )
        assert confined == 2
        await asyncio.sleep(0.05)
        assert not shared.done()  # the main lane's own writes wait behind the gate
    finally:
        gate.opened.set()
    await held
    assert await shared == 1
    assert await note_ids(db) == [1, 2]


async def test_writes_of_one_generation_queue_in_its_lane_while_another_lane_commits(db: PostgresDatabase) -> None:
    first, other = _keys_in_two_side_lanes()
    gate = Gate(first)
    held = await gate.close_behind(db)
    try:
        same = asyncio.create_task(db.write(Runs().insert(1, generation=first), grouped=True, confined_to=first))
        elsewhere = await asyncio.wait_for(
            db.write(Runs().insert(2, generation=other), grouped=True, confined_to=other), 5
        )
        assert elsewhere == 2
        await asyncio.sleep(0.05)
        assert not same.done()
    finally:
        gate.opened.set()
    await held
    assert await same == 1
    assert await note_ids(db) == [1, 2]


async def test_a_member_reaching_beyond_its_generation_runs_again_whole_in_the_main_lane(
    db: PostgresDatabase,
) -> None:
    runs = Runs()

    def unconfined(tx: Tx) -> str:
        tx.run(INSERT, {"id": 3, "body": "a row of no generation: a ledger's, say"})
        return "moved"

    works = [
        runs.insert(1, generation="gen-a"),
        runs.insert(2, unconfined, generation="gen-a"),
        runs.insert(4, generation="gen-a"),
    ]
    assert await behind_a_gate(db, works, confined_to="gen-a") == [1, "moved", 4]
    # Its first run was undone with its batch: note 2 is written once, by the run in the main lane.
    assert await note_ids(db) == [1, 2, 3, 4]
    assert runs.count[2] == 2


async def test_a_statement_about_another_generation_also_leaves_the_lane(db: PostgresDatabase) -> None:
    runs = Runs()
    result = await db.write(
        runs.insert(1, lambda tx: tx.run(CONFINED_INSERT, {"id": 2, "body": "gen-b"}), generation="gen-a"),
        grouped=True,
        confined_to="gen-a",
    )
    assert result == 1
    assert runs.count[1] == 2  # once in the side lane, undone; once in the main lane
    assert await note_ids(db) == [1, 2]


async def test_the_work_cannot_catch_its_leaving_and_carry_on(db: PostgresDatabase) -> None:
    def swallows(tx: Tx) -> str:
        tx.run(CONFINED_INSERT, {"id": 1, "body": "gen-a"})
        try:
            tx.run(INSERT, {"id": 2, "body": "outside the generation"})
        except Exception:  # noqa: BLE001 - the point of the test: a broad handler in a member's work
            return "swallowed"
        return "written"

    assert await db.write(swallows, grouped=True, confined_to="gen-a") == "written"
    assert await note_ids(db) == [1, 2]


async def test_an_ungrouped_write_is_not_confined(db: PostgresDatabase) -> None:
    runs = Runs()
    result = await db.write(
        runs.insert(1, lambda tx: tx.run(INSERT, {"id": 2, "body": "x"}), generation="gen-a"), confined_to="gen-a"
    )
    assert result == 1 and runs.count[1] == 1
    assert await note_ids(db) == [1, 2]


async def test_a_connection_killed_mid_batch_in_a_side_lane_runs_the_batch_again(
    db: PostgresDatabase, pg_database_url: str
) -> None:
    runs = Runs()

    def kill_my_connection_once(tx: Tx) -> int:
        if runs.count[2] == 1:
            terminate_backend(pg_database_url, int(tx.scalar(CONFINED_PID, {"body": "gen-a"})))
        return 2

    works = [
        runs.insert(1, generation="gen-a"),
        runs.insert(2, kill_my_connection_once, generation="gen-a"),
        runs.insert(3, generation="gen-a"),
    ]
    assert await behind_a_gate(db, works, confined_to="gen-a") == [1, 2, 3]
    assert await note_ids(db) == [1, 2, 3]  # each exactly once, though the batch ran twice
    assert runs.count[1] == runs.count[2] == 2 and runs.count[3] in (1, 2)


async def test_a_side_lane_batch_whose_commit_answer_was_lost_is_answered_as_committed(
    proxied_db: tuple[PostgresDatabase, FaultProxy],
) -> None:
    db, proxy = proxied_db
    runs = Runs()

    def lose_the_answer(tx: Tx) -> int:
        proxy.lose_next_commit_answer = True
        return 2

    works = [runs.insert(1, generation="gen-a"), runs.insert(2, lose_the_answer, generation="gen-a")]
    assert await behind_a_gate(db, works, confined_to="gen-a") == [1, 2]
    assert not proxy.lose_next_commit_answer  # the answer was indeed lost
    assert set(runs.count.values()) == {1}
    assert await note_ids(db) == [1, 2]


async def test_a_side_lane_batch_cut_with_a_member_leaving_runs_each_write_once(
    proxied_db: tuple[PostgresDatabase, FaultProxy],
) -> None:
    db, proxy = proxied_db
    loop = asyncio.get_running_loop()
    runs = Runs()

    def cut_once_then_leave(tx: Tx) -> str:
        if runs.count[2] == 1:
            asyncio.run_coroutine_threadsafe(cut(proxy), loop).result(5)
        tx.run(INSERT, {"id": 3, "body": "outside the generation"})
        return "moved"

    works = [runs.insert(1, generation="gen-a"), runs.insert(2, cut_once_then_leave, generation="gen-a")]
    assert await behind_a_gate(db, works, confined_to="gen-a") == [1, "moved"]
    assert await note_ids(db) == [1, 2, 3]


async def test_a_caller_that_gave_up_while_queued_in_a_side_lane_is_never_run(db: PostgresDatabase) -> None:
    runs = Runs()
    gate = Gate("gen-a")
    held = await gate.close_behind(db)
    abandoned = asyncio.create_task(db.write(runs.insert(1, generation="gen-a"), grouped=True, confined_to="gen-a"))
    kept = asyncio.create_task(db.write(runs.insert(2, generation="gen-a"), grouped=True, confined_to="gen-a"))
    await asyncio.sleep(0.05)
    abandoned.cancel()
    # The lane hears of the cancellation on the loop's next turn: only then may it take the batch.
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    gate.opened.set()
    await held
    assert await kept == 2
    assert await note_ids(db) == [2] and runs.count[1] == 0
