"""Events emitted when a generation ends, written in the same transaction as the state change (an outbox)."""

from __future__ import annotations

from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.services import client_webhooks, mail


def record_terminal_event(tx: Tx, generation: Generation) -> None:
    """Called by transition() when a generation reaches a terminal state: queues the client webhooks and the
    account's email (video ready, or failed with its credits refunded)."""
    client_webhooks.record_terminal_event(tx, generation)
    mail.queue_generation_ended(tx, generation)
