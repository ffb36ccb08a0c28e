"""Prompt enhancement: a Poe text bot rewrites the user's prompt once, before the job is submitted."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from reelgate.db.queries.generations import save_enhanced_prompt
from reelgate.db.records import Generation
from reelgate.domain.errors import ValidationFailed
from reelgate.providers.base import ProviderRejected, RetryLater, SubmitOutcomeUnknown
from reelgate.services.context import ServiceContext

ENHANCER = "poe"
# The stored prompt column takes any length, but providers cap prompts; the Poe instruction asks for 900.
MAX_ENHANCED_CHARS = 2000
ENHANCEMENT_FAILED = "prompt_enhancement_failed"


@runtime_checkable
class PromptEnhancer(Protocol):
    async def enhance_prompt(self, prompt: str) -> str: ...


def _enhancer(ctx: ServiceContext) -> PromptEnhancer | None:
    if ENHANCER not in ctx.providers.names():
        return None
    provider = ctx.providers.get(ENHANCER)
    if not provider.configured() or not isinstance(provider, PromptEnhancer):
        return None
    return provider


def check_enhancer(ctx: ServiceContext) -> None:
    """At create time: a request for enhancement without a Poe account fails now, not after the hold."""
    if _enhancer(ctx) is None:
        raise ValidationFailed(
            "enhance_prompt", "Prompt enhancement is not available: the operator has not configured Poe.", allowed=False
        )


async def enhance_once(ctx: ServiceContext, generation: Generation) -> Generation:
    """Stores the enhanced prompt on the generation (once; a resubmit reuses it).

    Raises RetryLater for a transient failure, ProviderRejected(code=prompt_enhancement_failed) otherwise:
    the user paid for the add-on, so the job fails and is refunded rather than running unenhanced."""
    if not (generation.params or {}).get("enhance_prompt") or generation.enhanced_prompt:
        return generation
    enhancer = _enhancer(ctx)
    if enhancer is None:
        raise ProviderRejected("Prompt enhancement is no longer configured.", code=ENHANCEMENT_FAILED)
    try:
        text = await enhancer.enhance_prompt(generation.prompt)
    except SubmitOutcomeUnknown as exc:  # a chat call starts no job: safe to ask again
        raise RetryLater(f"prompt enhancement: {exc}") from exc
    except ProviderRejected as exc:
        raise ProviderRejected(f"Prompt enhancement failed: {exc}", code=ENHANCEMENT_FAILED) from exc
    text = text.strip()[:MAX_ENHANCED_CHARS] or generation.prompt
    refreshed = await ctx.db.write(lambda tx: save_enhanced_prompt(tx, generation.id, text, ctx.clock()))
    return refreshed if refreshed is not None else generation
