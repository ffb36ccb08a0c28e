"""Production mode's wake-up of the step workers: a notification sent with the COMMIT that made a step due.

Workers find due steps in the generations table, as they find due polls (reelgate/queue.py); the row is the
truth and a worker scans it on a timer anyway, so a notification only shortens the wait. PostgreSQL delivers a
NOTIFY sent inside a transaction at its COMMIT, and only if it commits, and folds the identical notifications of
one transaction into one: a submission asks for it with `Tx.before_commit`, and a group commit of many
submissions wakes the listening workers once (https://www.postgresql.org/docs/current/sql-notify.html).
"""

from __future__ import annotations

from typing import Any

from reelgate.db.sql import Query, Tx, query

CHANNEL = "reelgate_steps_due"
# What a worker's listening connection sends once (the channel is a fixed identifier, not a parameter).
LISTEN = f"LISTEN {CHANNEL}"
_NOTIFY = query("SELECT pg_notify(CAST(:channel AS text), '')")


def steps_due_notice(_generation_ids: list[Any]) -> tuple[Query, dict[str, Any]]:
    """A Tx.before_commit action: one notification, sent with the COMMIT, for every generation of the transaction
    whose step it made due (a worker's scan finds which)."""
    return _NOTIFY, {"channel": CHANNEL}


def notify_steps_due(tx: Tx) -> None:
    """The notification on its own, for a transaction that wakes workers after other work committed."""
    tx.run(*steps_due_notice([]))
