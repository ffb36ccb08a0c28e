"""Tables of the queue feature: procrastinate owns its own tables, so only a name filter lives here."""

from __future__ import annotations

from typing import Any

# procrastinate's tables, types and functions (created by migration 0004) all carry this prefix.
QUEUE_PREFIX = "procrastinate_"


def include_object(_obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any) -> bool:
    """Alembic filter: procrastinate's tables are not in our metadata, so comparisons leave them out."""
    return not (type_ in {"table", "index"} and name is not None and name.startswith(QUEUE_PREFIX))
