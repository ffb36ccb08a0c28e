"""Shares degraded-provider marks between processes: a worker that finds a provider out of credit tells
the API's /readyz and the other workers' routing through one small table."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from reelgate.db.tables import ProviderMark
from reelgate.services.context import ServiceContext


async def sync(ctx: ServiceContext) -> dict[str, str]:
    """Writes this process's changes, then adopts the shared view; returns it."""
    marks = ctx.degraded_providers
    changed, marks.changed = dict(marks.changed), {}
    if changed:
        insert = pg_insert if ctx.db.dialect == "postgresql" else sqlite_insert
        async with ctx.db.transaction() as session:
            for provider, reason in changed.items():
                if reason is None:
                    await session.execute(delete(ProviderMark).where(ProviderMark.provider == provider))
                    continue
                statement = insert(ProviderMark).values(provider=provider, reason=reason, updated_at=ctx.clock())
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=[ProviderMark.provider],
                        set_={"reason": reason, "updated_at": ctx.clock()},
                    )
                )
    async with ctx.db.reader() as session:
        shared = {row.provider: row.reason for row in (await session.execute(select(ProviderMark))).scalars()}
    marks.replace_all(shared)
    return shared
