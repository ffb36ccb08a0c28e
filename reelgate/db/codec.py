"""Values between Python and each database: parameters in, result rows out (as records of db/records.py).

The drivers already agree on strings and integers. What differs:
- moments: always timezone-aware UTC in Python. SQLite stores them as text 'YYYY-MM-DD HH:MM:SS.ffffff'
  (fixed width, so text comparison is time order; the format earlier releases wrote); PostgreSQL as
  timestamptz, read back in the session's UTC.
- JSON: SQLite stores text; psycopg is told that dicts are JSON (lists stay arrays, for `= ANY(:ids)`; a JSON
  list column takes its value wrapped in `JsonValue`).
- booleans: SQLite returns 0/1.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from functools import cache
from typing import Any

from psycopg.types.json import Json

_SQLITE_MOMENT = "%Y-%m-%d %H:%M:%S.%f"
Decoder = Callable[[Any], Any]


class JsonValue:
    """A value for a JSON column that is not a dict (a list), so neither driver mistakes it for something else."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def utc_now() -> datetime:
    return datetime.now(UTC)


def sqlite_moment(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; use timezone-aware UTC")
    return value.astimezone(UTC).strftime(_SQLITE_MOMENT)


def moment_from_sqlite(value: Any) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def sqlite_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if not params:
        return {}
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, datetime):
            value = sqlite_moment(value)
        elif isinstance(value, dict | list):
            value = _json_text(value)
        elif isinstance(value, JsonValue):
            value = _json_text(value.value)
        out[name] = value
    return out


def postgresql_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if not params:
        return {}
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            value = Json(value)
        elif isinstance(value, JsonValue):
            value = Json(value.value)
        elif isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        out[name] = value
    return out


def _loads_if_text(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _base_type(hint: Any) -> Any:
    """`datetime | None` -> datetime; `dict[str, Any]` -> dict."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) or hint


def _sqlite_decoder(hint: Any) -> Decoder | None:
    base = _base_type(hint)
    if base is datetime:
        return moment_from_sqlite
    if base in (dict, list):
        return _loads_if_text
    if base is bool:
        return bool
    return None


@cache
def _decoders(record: type, dialect: str) -> tuple[tuple[int, Decoder], ...]:
    if dialect != "sqlite":
        return ()  # psycopg returns aware UTC moments, parsed JSON and real booleans
    hints = typing.get_type_hints(record)
    found = []
    for index, field in enumerate(fields(record)):
        decoder = _sqlite_decoder(hints[field.name])
        if decoder is not None:
            found.append((index, decoder))
    return tuple(found)


def decode_row(record: type | None, dialect: str, row: Sequence[Any] | None) -> Any:
    """The row as `record` (its fields in select order), or as it came when the query names no record."""
    if row is None or record is None:
        return row
    decoders = _decoders(record, dialect)
    if not decoders:
        return record(*row)
    values = list(row)
    for index, decode in decoders:
        value = values[index]
        if value is not None:
            values[index] = decode(value)
    return record(*values)


def moment(dialect: str, value: Any) -> datetime | None:
    """A moment read outside a record (an aggregate, a single column)."""
    if value is None:
        return None
    return moment_from_sqlite(value) if dialect == "sqlite" else value.astimezone(UTC)
