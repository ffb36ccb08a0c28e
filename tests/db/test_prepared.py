"""`Prepared` statements against SQLAlchemy's own execution: a generation row inserted through the SQLite fast
path reads back through the ORM exactly like one inserted by `connection.execute`, on SQLite and PostgreSQL;
rowcounts, ON CONFLICT ... RETURNING, IntegrityError, and the statements that must take the normal path."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, Text, bindparam, event, func, insert, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from reelgate.bootstrap import build_context, close_context
from reelgate.db.prepared import Prepared, sql_constant
from reelgate.db.tables import Generation, LedgerEntry
from reelgate.domain.ledger import EntryKind
from reelgate.services import accounts, projects
from reelgate.services.context import ServiceContext
from reelgate.services.generations import (
    _INSERT_GENERATION,
    GenerationOrder,
    _input_of,
    _new_generation_row,
    estimate,
)
from reelgate.services.ledger import _INSERT_ENTRY_ONCE
from tests.conftest import make_settings

GENERATIONS = cast(Table, Generation.__table__)
ENTRIES = cast(Table, LedgerEntry.__table__)
ORDER = GenerationOrder(
    model="sandbox-t2v",
    prompt="a fox in the snow — «ünïcødé» 🦊",
    duration=5,
    resolution="720p",
    seed=7,
    callback_url="https://example.com/hook",
    options={},
)

_SET_STATUS = Prepared(
    update(GENERATIONS)
    .where(GENERATIONS.c.id == bindparam("g_id"), GENERATIONS.c.status == bindparam("g_from"))
    .values(status=bindparam("g_to"), updated_at=bindparam("g_now"), progress=GENERATIONS.c.progress + 10)
)
_IDS_IN = Prepared(
    select(GENERATIONS.c.id).where(GENERATIONS.c.id.in_(bindparam("ids", expanding=True))).order_by(GENERATIONS.c.id)
)
_COUNT_OF_USER = Prepared(select(func.count()).where(GENERATIONS.c.user_id == bindparam("user_id")))


async def _context(tmp_path: Path, url: str) -> AsyncIterator[ServiceContext]:
    context = await build_context(make_settings(tmp_path / "data", url))
    try:
        yield context
    finally:
        await close_context(context)


@pytest.fixture
async def ctx(tmp_path: Path, database_url: str) -> AsyncIterator[ServiceContext]:
    async for context in _context(tmp_path, database_url):
        yield context


@pytest.fixture
async def sqlite_ctx(tmp_path: Path, sqlite_url: str) -> AsyncIterator[ServiceContext]:
    async for context in _context(tmp_path, sqlite_url):
        yield context


async def owner(ctx: ServiceContext) -> tuple[str, str]:
    """A signed-up user (with balance and default project) for the foreign keys: (user id, project id)."""
    user = await accounts.create_user(ctx, f"prepared-{secrets.token_hex(4)}@example.com", None, credits=100)
    return user.id, await projects.default_project_id(ctx, user.id)


def generation_row(ctx: ServiceContext, user_id: str, project_id: str) -> dict[str, Any]:
    """The submit's own row, with the optional columns filled in too so that every type is exercised."""
    quoted = estimate(ctx, _input_of(ORDER), ORDER.model, require_prompt=True)
    row = _new_generation_row(ctx, user_id, project_id, ORDER, quoted)
    plus_two = timezone(timedelta(hours=2))
    row.update(
        provider_job_id="job-123",
        needs_review=True,
        error_message="line one\nline two 'quoted'",
        output_size=2**40 + 3,
        provider_cost_micros=9_007_199_254_740_993,  # beyond a double's exact integers
        output_meta={"frames": [1, 2, 3], "nested": {"ok": True, "none": None}, "ratio": 1.5},
        raw_provider={"status": "queued", "list": ["a", {"b": None}]},
        provider_account={"fingerprint": "abc", "base_url": "https://api.example.com"},
        next_poll_at=datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=plus_two),  # stored and read back as UTC
        submitted_at=datetime(2031, 5, 6, 5, 0, 0, 1, tzinfo=UTC),
    )
    return row


def assert_read_back(found: Generation, row: dict[str, Any]) -> None:
    for column in GENERATIONS.columns:
        value, expected = getattr(found, column.key), row[column.key]
        assert value == expected, (column.key, value, expected)
        if isinstance(expected, datetime):
            assert isinstance(value, datetime) and value.tzinfo == UTC, (column.key, value)
        if isinstance(expected, bool):
            assert value is expected, (column.key, value)


@contextmanager
def counting_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements that go through SQLAlchemy's execution path (the fast path fires no cursor events)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_full_generation_row_reads_back_like_a_core_insert(ctx: ServiceContext) -> None:
    user_id, project_id = await owner(ctx)
    via_prepared = generation_row(ctx, user_id, project_id)
    via_core = {**via_prepared, "id": via_prepared["id"] + "b", "webhook_token": secrets.token_urlsafe(24)}

    with counting_statements(ctx.db.engine) as statements:
        async with ctx.db.write_connection() as connection:
            outcome = await _INSERT_GENERATION.run(connection, via_prepared)
            through_prepared = len(statements)
            core = await connection.execute(insert(GENERATIONS), via_core)
    # On SQLite the prepared insert runs on the driver's cursor; elsewhere it is an ordinary execution.
    assert through_prepared == (0 if ctx.db.dialect == "sqlite" else 1)
    assert outcome.first() is None
    # The rowcount the driver reports for a Core insert (psycopg says -1 for a single-row INSERT).
    assert outcome.rowcount == core.rowcount
    if ctx.db.dialect == "sqlite":
        assert outcome.rowcount == 1

    async with ctx.db.reader() as session:
        first = await session.get(Generation, via_prepared["id"])
        second = await session.get(Generation, via_core["id"])
    assert first is not None and second is not None
    assert_read_back(first, via_prepared)
    assert_read_back(second, via_core)
    for column in GENERATIONS.columns:
        if column.key not in ("id", "webhook_token"):
            assert getattr(first, column.key) == getattr(second, column.key), column.key

    # The stored form is the same too (not just what the ORM makes of it).
    async with ctx.db.read_connection() as connection:
        raw = select(*(sql_cast(c, Text()) for c in GENERATIONS.columns if c.key != "id"))
        stored = (await connection.execute(raw.where(GENERATIONS.c.id.in_([via_prepared["id"], via_core["id"]])))).all()
    assert len(stored) == 2
    differing = [
        column.key
        for column, a, b in zip([c for c in GENERATIONS.columns if c.key != "id"], *stored, strict=True)
        if a != b and column.key != "webhook_token"
    ]
    assert differing == []


async def test_an_insert_with_a_duplicate_key_raises_integrity_error(ctx: ServiceContext) -> None:
    user_id, project_id = await owner(ctx)
    row = generation_row(ctx, user_id, project_id)
    async with ctx.db.write_connection() as connection:
        await _INSERT_GENERATION.run(connection, row)
    with pytest.raises(IntegrityError):
        async with ctx.db.write_connection() as connection:
            other = generation_row(ctx, user_id, project_id)
            await _INSERT_GENERATION.run(connection, other)  # would go in...
            await _INSERT_GENERATION.run(connection, row)  # ...but this one's id is taken: all rolled back
    async with ctx.db.read_connection() as connection:
        assert (await _COUNT_OF_USER.run(connection, {"user_id": user_id})).scalar() == 1


async def test_update_rowcount(ctx: ServiceContext) -> None:
    user_id, project_id = await owner(ctx)
    row = generation_row(ctx, user_id, project_id)
    later = row["updated_at"] + timedelta(seconds=5)
    async with ctx.db.write_connection() as connection:
        await _INSERT_GENERATION.run(connection, row)
    async with ctx.db.write_connection() as connection:
        moved = await _SET_STATUS.run(
            connection, {"g_id": row["id"], "g_from": "queued", "g_to": "running", "g_now": later}
        )
        assert moved.rowcount == 1
        assert moved.first() is None and moved.scalar() is None
        again = await _SET_STATUS.run(
            connection, {"g_id": row["id"], "g_from": "queued", "g_to": "running", "g_now": later}
        )
        assert again.rowcount == 0  # no longer queued
        missing = await _SET_STATUS.run(
            connection, {"g_id": "gen_missing", "g_from": "running", "g_to": "x", "g_now": later}
        )
        assert missing.rowcount == 0
    async with ctx.db.reader() as session:
        found = await session.get(Generation, row["id"])
    assert found is not None
    assert (found.status, found.progress, found.updated_at) == ("running", 10, later)
    assert found.updated_at.tzinfo == UTC


async def test_update_rowcount_through_a_session(ctx: ServiceContext) -> None:
    user_id, project_id = await owner(ctx)
    row = generation_row(ctx, user_id, project_id)
    now = row["updated_at"]
    async with ctx.db.transaction() as session:
        await _INSERT_GENERATION.run(session, row)
        moved = await _SET_STATUS.run(session, {"g_id": row["id"], "g_from": "queued", "g_to": "running", "g_now": now})
        assert moved.rowcount == 1
        again = await _SET_STATUS.run(session, {"g_id": row["id"], "g_from": "queued", "g_to": "running", "g_now": now})
        assert again.rowcount == 0


async def test_insert_on_conflict_do_nothing_returning(ctx: ServiceContext) -> None:
    user_id, _ = await owner(ctx)
    statement = _INSERT_ENTRY_ONCE[ctx.db.dialect]
    entry = {
        "user_id": user_id,
        "kind": EntryKind.GRANT.value,
        "amount": 25,
        "reference": f"test:{secrets.token_hex(4)}",
        "generation_id": None,
        "note": "once",
        "created_at": datetime.now(UTC),
    }
    with counting_statements(ctx.db.engine) as statements:
        async with ctx.db.write_connection() as connection:
            inserted = await statement.run(connection, entry)
            row = inserted.first()
            assert row is not None
            assert isinstance(inserted.scalar(), int)
            assert inserted.scalar() == row[0]
            repeated = await statement.run(connection, {**entry, "amount": 99})
            assert repeated.first() is None
            assert repeated.scalar() is None
    assert len(statements) == (0 if ctx.db.dialect == "sqlite" else 2)
    async with ctx.db.write_connection() as connection:  # in a later transaction too
        assert (await statement.run(connection, entry)).first() is None
    async with ctx.db.reader() as session:
        stored = (
            (await session.execute(select(LedgerEntry).where(LedgerEntry.reference == entry["reference"])))
            .scalars()
            .all()
        )
    assert [(e.id, e.amount, e.note, e.created_at) for e in stored] == [(row[0], 25, "once", entry["created_at"])]


async def test_expanding_in_parameters_take_the_normal_path(ctx: ServiceContext) -> None:
    user_id, project_id = await owner(ctx)
    rows = sorted((generation_row(ctx, user_id, project_id) for _ in range(3)), key=lambda row: row["id"])
    async with ctx.db.write_connection() as connection:
        for row in rows:
            await _INSERT_GENERATION.run(connection, row)
    with counting_statements(ctx.db.engine) as statements:
        async with ctx.db.read_connection() as connection:
            both = await _IDS_IN.run(connection, {"ids": [rows[2]["id"], "gen_missing", rows[1]["id"]]})
            assert both.first() == (rows[1]["id"],)
            assert both.scalar() == rows[1]["id"]
            one = await _IDS_IN.run(connection, {"ids": [rows[2]["id"]]})  # another length: expanded anew
            assert one.scalar() == rows[2]["id"]
            assert (await _IDS_IN.run(connection, {"ids": ["gen_missing"]})).first() is None
            assert (await _IDS_IN.run(connection, {"ids": []})).first() is None
    assert len(statements) == 4  # every call went through SQLAlchemy's execution, which expands the list


async def test_only_sqlite_core_connections_take_the_fast_path(sqlite_ctx: ServiceContext) -> None:
    user_id, _ = await owner(sqlite_ctx)
    with counting_statements(sqlite_ctx.db.engine) as statements:
        async with sqlite_ctx.db.read_connection() as connection:
            assert (await _COUNT_OF_USER.run(connection, {"user_id": user_id})).scalar() == 0
        assert statements == []
        async with sqlite_ctx.db.reader() as session:  # an AsyncSession: the ordinary execution
            assert (await _COUNT_OF_USER.run(session, {"user_id": user_id})).scalar() == 0
        assert len(statements) == 1


async def test_rows_read_through_the_fast_path_are_typed_like_sqlalchemys(sqlite_ctx: ServiceContext) -> None:
    user_id, project_id = await owner(sqlite_ctx)
    row = generation_row(sqlite_ctx, user_id, project_id)
    row["created_at"] = datetime(2031, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    async with sqlite_ctx.db.write_connection() as connection:
        await _INSERT_GENERATION.run(connection, row)
    query = select(GENERATIONS.c.created_at, GENERATIONS.c.needs_review, GENERATIONS.c.params).where(
        GENERATIONS.c.id == bindparam("g_id")
    )
    async with sqlite_ctx.db.read_connection() as connection:
        fast = (await Prepared(query).run(connection, {"g_id": row["id"]})).first()
        ordinary = (await connection.execute(query, {"g_id": row["id"]})).first()
    assert ordinary is not None
    assert tuple(ordinary) == (row["created_at"], True, row["params"])
    assert fast == tuple(ordinary)


async def test_a_fast_path_write_on_an_unbegun_connection_is_rolled_back(sqlite_ctx: ServiceContext) -> None:
    user_id, project_id = await owner(sqlite_ctx)
    row = generation_row(sqlite_ctx, user_id, project_id)
    async with sqlite_ctx.db.write_connection() as connection:
        await _INSERT_GENERATION.run(connection, row)
    params = {"g_id": row["id"], "g_from": "queued", "g_to": "running", "g_now": row["updated_at"]}
    async with sqlite_ctx.db.engine.connect() as connection:
        assert (await _SET_STATUS.run(connection, params)).rowcount == 1
        await connection.rollback()
    async with sqlite_ctx.db.reader() as session:
        found = await session.get(Generation, row["id"])
    assert found is not None
    assert found.status == "queued"


def test_sql_constant_is_written_into_the_sql_and_refuses_anything_but_a_plain_value() -> None:
    assert str(sql_constant("queued")) == "'queued'"
    with pytest.raises(ValueError):
        sql_constant("x' OR '1'='1")
