"""Whole rows for Core inserts on hot paths, so the ORM object can be built without a Session's flush."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.orm import configure_mappers

from reelgate.db.tables import Base

ModelT = TypeVar("ModelT", bound=Base)
_CONFIGURED: set[type[Base]] = set()


def with_defaults(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Every column of `table`: the given value, else the column's Python-side default, else None.

    That is what a flush would have put on the ORM object; inserting all of it and building the object from
    the same dict keeps the two identical.
    """
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.key in values:
            row[column.key] = values[column.key]
        elif column.default is None or column.default.is_sequence:
            row[column.key] = None
        elif column.default.is_callable:
            row[column.key] = column.default.arg(None)  # type: ignore[attr-defined]
        else:
            row[column.key] = column.default.arg  # type: ignore[attr-defined]
    return row


def instance_from_row(model: type[ModelT], row: dict[str, Any]) -> ModelT:
    """A detached ORM object holding `row` (every column), built the way the ORM's own loader builds one:
    values go straight into the instance dict, without the per-attribute change events a constructor fires
    (which cost more than the statement that wrote the row). It is in no Session; nothing tracks it."""
    if model not in _CONFIGURED:
        # A constructor's first call sets up every mapper's attributes; this path skips the constructor, so in a
        # process whose first object is built here (a worker) it must do so itself.
        configure_mappers()
        _CONFIGURED.add(model)
    instance: ModelT = model._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    instance.__dict__.update(row)
    return instance
