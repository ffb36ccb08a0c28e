"""The benchmarks' fixtures build rows the way the application's records expect.

No benchmark runs in the test suite (they measure, they do not check), so a record that gains a required field
would otherwise break `make bench` unnoticed; this builds their rows on a fresh SQLite database."""

from __future__ import annotations

from pathlib import Path

from bench import fixtures
from reelgate.db.queries import generations as generation_queries


async def test_in_flight_rows_are_the_applications_own(tmp_path: Path) -> None:
    async with fixtures.context(fixtures.settings_values(tmp_path / "data")) as ctx:
        user_id, _ = await fixtures.user_with_key(ctx)
        rows = await fixtures.insert_generations(ctx, user_id, 3)
        ids = [row.id for row in rows]
        stored = await ctx.db.read(lambda tx: [generation_queries.generation_by_id(tx, id_) for id_ in ids])
    assert [g.id if g else None for g in stored] == ids
    assert {g.account_id if g else None for g in stored} == {user_id}
