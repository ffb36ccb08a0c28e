"""Proposed changes measured by the benchmarks without editing the product: applied by monkeypatching in a
benchmark's own process only (`--variant proposed`), so RESULTS.md can show before and after."""

from __future__ import annotations

from sqlalchemy import or_, select, text, union_all

from reelgate.db.tables import Generation
from reelgate.domain.jobs import ACTIVE_STATES, GenerationStatus
from reelgate.services import pipeline
from reelgate.services.context import ServiceContext
from reelgate.services.pipeline import DueWork, Step

_STEP_OF = {
    GenerationStatus.QUEUED.value: Step.SUBMIT,
    GenerationStatus.SUBMITTING.value: Step.RECONCILE,
    GenerationStatus.PROCESSING.value: Step.POLL,
    GenerationStatus.STORING.value: Step.STORE,
}
DEADLINE_INDEX = "CREATE INDEX IF NOT EXISTS ix_generations_status_deadline ON generations (status, deadline_at)"


async def due_work(ctx: ServiceContext, *, limit: int = 50) -> list[DueWork]:
    """pipeline.due_work with index-range queries: one status per branch, `next_poll_at <= now` without the
    IS NULL disjunct (NULLs fetched in their own branch), ordered by the index, merged in Python; expiry looks
    up (status, deadline_at). Same answer, without reading every active row on each scan."""
    now = ctx.clock()
    free = or_(Generation.lease_until.is_(None), Generation.lease_until < now)
    expired_parts = [
        select(Generation.id)
        .where(Generation.status == s.value, Generation.deadline_at < now, free)
        .limit(limit)
        .subquery()
        for s in ACTIVE_STATES
    ]
    due_parts = []
    for status in _STEP_OF:
        due_parts.append(
            select(Generation.id, Generation.status, Generation.next_poll_at, Generation.created_at)
            .where(Generation.status == status, Generation.next_poll_at <= now, free)
            .order_by(Generation.next_poll_at)
            .limit(limit)
            .subquery()
        )
        due_parts.append(
            select(Generation.id, Generation.status, Generation.next_poll_at, Generation.created_at)
            .where(Generation.status == status, Generation.next_poll_at.is_(None), free)
            .order_by(Generation.created_at)
            .limit(limit)
            .subquery()
        )
    async with ctx.db.reader() as session:
        expired = await session.execute(union_all(*(select(p) for p in expired_parts)))
        work = [DueWork(gid, Step.EXPIRE) for gid in list(expired.scalars())[:limit]]
        rows = list(await session.execute(union_all(*(select(p) for p in due_parts))))
    rows.sort(key=lambda r: (r[2] is not None, r[2] or r[3], r[3]))
    seen = {w.generation_id for w in work}
    work.extend(DueWork(gid, _STEP_OF[status]) for gid, status, _, _ in rows[:limit] if gid not in seen)
    return work


async def install(ctx: ServiceContext) -> None:
    async with ctx.db.transaction() as session:
        await session.execute(text(DEADLINE_INDEX))
    pipeline.due_work = due_work  # the worker calls pipeline.due_work through the module
