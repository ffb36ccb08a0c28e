"""Named queries: the SQL text of one statement, its form for each database, and the record its rows become.

Queries are written once, in PostgreSQL's dialect with `:name` parameters, and the SQLite form is derived at
import time by a few fixed rewrites, so a query reads as plain SQL and dialect differences stay here:

- `column = ANY(:ids)` (a list parameter) becomes `column IN (SELECT value FROM json_each(:ids))` on SQLite,
  whose driver has no arrays (db/codec.py sends the list as JSON there);
- a trailing `FOR UPDATE` is dropped on SQLite, where BEGIN IMMEDIATE already holds the only write lock.

Where the two really differ (date arithmetic, locks), a query gives its SQLite text explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from typing import Any, Protocol

from reelgate.db.codec import JsonValue

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")
_ANY_LIST = re.compile(r"=\s*ANY\(:([A-Za-z_][A-Za-z0-9_]*)\)")
_FOR_UPDATE = re.compile(r"\s+FOR UPDATE\s*$", re.IGNORECASE)
_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES|PRAGMA)\b|\bRETURNING\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Query:
    """One statement. `row`, when set, is the record class (db/records.py) each result row is decoded into.
    `confined_by`: the parameter holding a generation's id when the statement reads, locks and writes only that
    generation's rows (its own row, its events, its webhook deliveries), so that it may run in the group-commit
    lane of that generation (db/postgres.py)."""

    sqlite: str
    postgresql: str
    row: type | None = None
    returns_rows: bool = False  # a SELECT, or a statement with RETURNING: its rows are read, not its rowcount
    confined_by: str | None = None

    def confined_to(self, params: Mapping[str, Any] | None) -> str | None:
        """The generation whose rows alone this statement, with these parameters, touches; None if it is not
        confined to one."""
        return None if self.confined_by is None or params is None else params.get(self.confined_by)

    def text(self, dialect: str) -> str:
        return self.sqlite if dialect == "sqlite" else self.postgresql


def query(sql: str, *, row: type | None = None, sqlite: str | None = None, confined_by: str | None = None) -> Query:
    """Builds a Query from PostgreSQL-flavoured SQL with `:name` parameters (see the module docstring)."""
    sql = sql.strip()
    for_sqlite = (sqlite or sql).strip()
    if sqlite is None:
        for_sqlite = _FOR_UPDATE.sub("", _ANY_LIST.sub(r"IN (SELECT value FROM json_each(:\1))", for_sqlite))
    # psycopg's named style: %(name)s, with literal percent signs doubled.
    for_postgresql = _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
    returns_rows = bool(_RETURNS_ROWS.search(sql))
    return Query(
        sqlite=for_sqlite, postgresql=for_postgresql, row=row, returns_rows=returns_rows, confined_by=confined_by
    )


def columns(record: type, alias: str | None = None) -> str:
    """The select list of a record's columns, in its field order (the order db/codec.py decodes)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{field.name}" for field in fields(record))


def in_states(states: Iterable[str]) -> str:
    """`('a', 'b')`: a fixed list of the code's own status names written into the SQL (never input), so the
    statement has no list to bind and stays one prepared statement."""
    names = sorted(states)
    if any(not name.replace("_", "").isalnum() for name in names):
        raise ValueError(f"not plain names: {names}")
    return "(" + ", ".join(f"'{name}'" for name in names) + ")"


def insert_query(record: type, *, skip: tuple[str, ...] = (), if_absent: bool = False) -> Query:
    """INSERT of every column of a record (but `skip`, e.g. a serial id). `if_absent`: a unique conflict inserts
    nothing, and `run()` then returns 0 (RETURNING, as psycopg reports no rowcount for ON CONFLICT)."""
    from reelgate.db.records import TABLE_OF

    names = [field.name for field in fields(record) if field.name not in skip]
    sql = f"INSERT INTO {TABLE_OF[record]} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
    if if_absent:
        sql += " ON CONFLICT DO NOTHING RETURNING 1"
    return query(sql)


def update_query(record: type, *, key: tuple[str, ...] = ("id",)) -> Query:
    """UPDATE of every column of a record but its key, for a row read, changed in Python and saved back."""
    from reelgate.db.records import TABLE_OF

    names = [field.name for field in fields(record) if field.name not in key]
    assignments = ", ".join(f"{name} = :{name}" for name in names)
    condition = " AND ".join(f"{name} = :{name}" for name in key)
    return query(f"UPDATE {TABLE_OF[record]} SET {assignments} WHERE {condition}")


def values_of(record: Any) -> dict[str, Any]:
    """A record's fields as parameters; list fields are JSON columns, so they go as JSON on both databases."""
    values = {}
    for field in fields(record):
        value = getattr(record, field.name)
        values[field.name] = JsonValue(value) if isinstance(value, list) else value
    return values


# Given the items that the writes of a transaction added, the one statement that does what they need.
BeforeCommit = Callable[[list[Any]], tuple[Query, Mapping[str, Any]]]


class CommitActions:
    """What the writes of one transaction asked to have done once, just before its COMMIT (Tx.before_commit):
    one statement per action, for every item added to it, so work that many writes need costs one statement per
    COMMIT. The database sends these statements with the COMMIT (on PostgreSQL in the same round trip)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[BeforeCommit, list[Any]] = {}

    def add(self, action: BeforeCommit, item: Any) -> None:
        self._items.setdefault(action, []).append(item)

    def mark(self) -> dict[BeforeCommit, int]:
        """Where things stand, for `undo_to` when the work that follows is undone."""
        return {action: len(items) for action, items in self._items.items()}

    def undo_to(self, mark: dict[BeforeCommit, int]) -> None:
        for action in list(self._items):
            del self._items[action][mark.get(action, 0) :]
            if not self._items[action]:
                del self._items[action]

    def statements(self) -> list[tuple[Query, Mapping[str, Any]]]:
        """Each action's statement for its items (then they are forgotten)."""
        actions, self._items = self._items, {}
        return [action(items) for action, items in actions.items()]


class Tx(Protocol):
    """A transaction (or a read) in progress, as query functions see it. Methods run one statement each."""

    dialect: str

    def run(self, query: Query, params: Mapping[str, Any] | None = None) -> int:
        """Runs a statement; the number of rows it changed."""
        ...

    def one(self, query: Query, params: Mapping[str, Any] | None = None) -> Any:
        """The first row (a record when the query names one, else a tuple), or None."""
        ...

    def all(self, query: Query, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row (records or tuples)."""
        ...

    def scalar(self, query: Query, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: an exception inside undoes only its statements (and propagates)."""
        ...

    def before_commit(self, action: BeforeCommit, item: Any) -> None:
        """In a write: has the statement `action(items)` run once, in this transaction with its COMMIT, with this
        `item` among its items (every write of a group commit adds to the same statement). Undone with the write;
        if the statement fails, nothing of the transaction commits."""
        ...
