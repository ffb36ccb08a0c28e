"""Thin task functions: one per pipeline step, each delegating to the services (the queue calls these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from reelgate.domain.jobs import ACTIVE_STATES, GenerationStatus
from reelgate.services import outputs, pipeline
from reelgate.services.context import ServiceContext
from reelgate.services.pipeline import Step

STEP_HANDLERS: dict[Step, Callable[[ServiceContext, str], Awaitable[object]]] = {
    Step.SUBMIT: pipeline.submit,
    Step.RECONCILE: pipeline.reconcile,
    Step.POLL: pipeline.poll,
    Step.STORE: outputs.store_output,
    Step.EXPIRE: pipeline.expire,
}

# The step an active generation needs next, by status (the same mapping pipeline.due_work uses).
STEP_OF_STATUS: dict[str, Step] = {
    GenerationStatus.QUEUED.value: Step.SUBMIT,
    GenerationStatus.SUBMITTING.value: Step.RECONCILE,
    GenerationStatus.PROCESSING.value: Step.POLL,
    GenerationStatus.STORING.value: Step.STORE,
}
_ACTIVE = frozenset(s.value for s in ACTIVE_STATES)
# The steps the poll budget runs: one small request each (expiry is a status write and a cancel).
POLL_BUDGET_STEPS = frozenset({Step.POLL, Step.EXPIRE})
# One turn runs at most this many steps back to back before handing the generation back to the scans.
MAX_STEPS_PER_TURN = 8


async def run_step(ctx: ServiceContext, step: Step, generation_id: str, owner: str) -> bool:
    """Claims the generation's lease, runs the step, and lets go. False if another worker holds it."""
    if not await pipeline.claim(ctx, generation_id, owner):
        return False
    try:
        await STEP_HANDLERS[step](ctx, generation_id)
    finally:
        await pipeline.release_claim(ctx, generation_id, owner)
    return True


async def next_step(ctx: ServiceContext, generation_id: str, owner: str) -> tuple[Step, datetime] | None:
    """What the generation needs next and from when, read from its row; None once it has ended."""
    generation = await pipeline.read_generation(ctx, generation_id)
    if generation is None or generation.status not in _ACTIVE:
        return None
    now = ctx.clock()
    if generation.deadline_at < now:
        return Step.EXPIRE, now
    at = min(generation.next_poll_at or now, generation.deadline_at)
    if generation.lease_until is not None and generation.lease_until > now and generation.lease_owner != owner:
        # Held by another worker, perhaps a dead one: look again when its lease lapses.
        at = max(at, generation.lease_until)
    return STEP_OF_STATUS[generation.status], at


async def drive(
    ctx: ServiceContext, generation_id: str, owner: str, *, steps_only: bool = False
) -> tuple[Step, datetime] | None:
    """Runs every step of one generation that is due now; returns the next step and when it falls due (None:
    the generation ended). The caller holds the generation's lease for the whole turn (the step budget claims
    its items in one write before it starts them), so the steps run under it without claiming it again; should
    the lease pass to another worker meanwhile (a missed heartbeat), `next_step` sees it and the turn ends.
    With `steps_only` (production mode's step budget) it leaves polls and expiry to the poll budget and returns
    them as the next step, so that a poll never takes a download's slot."""
    for _ in range(MAX_STEPS_PER_TURN):
        plan = await next_step(ctx, generation_id, owner)
        if plan is None:
            return None
        step, at = plan
        if at > ctx.clock() or (steps_only and step in POLL_BUDGET_STEPS):
            return plan
        await STEP_HANDLERS[step](ctx, generation_id)
    return await next_step(ctx, generation_id, owner)  # handed back: the next scan takes it up again
