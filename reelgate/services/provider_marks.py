"""Shares degraded-provider marks between processes: a worker that finds a provider out of credit tells
the API's /readyz and the other workers' routing through one small table."""

from __future__ import annotations

from reelgate.db.queries import provider_marks as mark_queries
from reelgate.db.sql import Tx
from reelgate.services.context import ServiceContext


async def sync(ctx: ServiceContext) -> dict[str, str]:
    """Writes this process's changes, then adopts the shared view; returns it."""
    marks = ctx.degraded_providers
    changed, marks.changed = dict(marks.changed), {}
    if changed:
        now = ctx.clock()

        def write(tx: Tx) -> None:
            for provider, reason in changed.items():
                if reason is None:
                    mark_queries.clear_mark(tx, provider)
                else:
                    mark_queries.set_mark(tx, provider, reason, now)

        await ctx.db.write(write)
    shared = await ctx.db.read(mark_queries.all_marks)
    marks.replace_all(shared)
    return shared
