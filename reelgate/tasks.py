"""Thin task functions: one per pipeline step, each delegating to the services (the queue calls these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from reelgate.services import outputs, pipeline
from reelgate.services.context import ServiceContext
from reelgate.services.pipeline import Step

STEP_HANDLERS: dict[Step, Callable[[ServiceContext, str], Awaitable[None]]] = {
    Step.SUBMIT: pipeline.submit,
    Step.RECONCILE: pipeline.reconcile,
    Step.POLL: pipeline.poll,
    Step.STORE: outputs.store_output,
    Step.EXPIRE: pipeline.expire,
}


async def run_step(ctx: ServiceContext, step: Step, generation_id: str, owner: str) -> bool:
    """Claims the generation's lease, runs the step, and lets go. False if another worker holds it."""
    if not await pipeline.claim(ctx, generation_id, owner):
        return False
    try:
        await STEP_HANDLERS[step](ctx, generation_id)
    finally:
        await pipeline.release_claim(ctx, generation_id, owner)
    return True
