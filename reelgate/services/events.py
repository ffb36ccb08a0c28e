"""Events emitted when a generation ends, written in the same transaction as the state change (an outbox)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.tables import Generation
from reelgate.services import client_webhooks


async def record_terminal_event(session: AsyncSession, generation: Generation) -> None:
    """Called by transition() when a generation reaches a terminal state: queues the client webhooks."""
    await client_webhooks.record_terminal_event(session, generation)
