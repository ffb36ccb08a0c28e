"""Statements of the hottest paths, compiled once and, on SQLite, run straight on the driver's cursor.

SQLAlchemy's execution path (execution context, parameter processing, result set-up) costs tens of
microseconds per statement; an indexed SQLite statement costs a few. The submit runs five of them per
request. A `Prepared` keeps SQLAlchemy's own compiled SQL and its own bind processors (so types such as
UTCDateTime and JSON are stored exactly as the ORM stores them) and only skips the per-call machinery.
PostgreSQL, and any statement that needs more than that (defaults fetched before an insert, expanding
parameters), goes through the connection as usual.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import String, exc, literal_column
from sqlalchemy.engine import Compiled, CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ClauseElement, ColumnElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from reelgate.db.sqlite_inline import InlineConnection


class Outcome:
    """What callers read from a statement: `first()`, `scalar()`, `rowcount`, on either path."""

    __slots__ = ("_first", "rowcount")

    def __init__(self, first: Sequence[Any] | None, rowcount: int) -> None:
        self._first = first
        self.rowcount = rowcount

    def first(self) -> Sequence[Any] | None:
        return self._first

    def scalar(self) -> Any:
        return None if self._first is None else self._first[0]


def sql_constant(value: str) -> ColumnElement[str]:
    """A fixed string (a status name) written into the SQL instead of bound: a statement built once then has no
    list to expand per call and compiles once. Only for the code's own constants, never for input."""
    if "'" in value:
        raise ValueError(f"not a plain constant: {value!r}")
    return literal_column(f"'{value}'", String())


class Prepared:
    """One statement; `column_keys` names an INSERT's columns (the same keys every call passes)."""

    def __init__(self, statement: Executable, *, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._sqlite: SQLCompiler | None = None
        self._sqlite_usable = True

    async def run(self, executor: AsyncConnection | AsyncSession, params: Mapping[str, Any]) -> Outcome:
        driver = _inline_driver(executor) if self._sqlite_usable else None
        if driver is not None:
            assert isinstance(executor, AsyncConnection)
            compiled = self._compiled_for_sqlite(executor.dialect)
            # A write outside a begun transaction needs SQLAlchemy's autobegin, or it would commit on its own.
            writes = compiled is not None and (compiled.isinsert or compiled.isupdate or compiled.isdelete)
            if compiled is not None and (executor.in_transaction() or not writes):
                return _run_on_sqlite(driver, compiled, params)
        result = await executor.execute(self.statement, dict(params))
        cursor = cast(CursorResult[Any], result)
        first = cursor.first() if cursor.returns_rows else None
        return Outcome(tuple(first) if first is not None else None, cursor.rowcount)

    def _compiled_for_sqlite(self, dialect: Dialect) -> SQLCompiler | None:
        if self._sqlite is None:
            clause = cast(ClauseElement, self.statement)
            compiled = clause.compile(dialect=dialect, column_keys=self._column_keys)
            assert isinstance(compiled, SQLCompiler)
            if not _runs_as_is(compiled):
                self._sqlite_usable = False
                return None
            self._sqlite = compiled
        return self._sqlite


def _runs_as_is(compiled: Compiled) -> bool:
    """No defaults to fetch first, no parameters to expand, positional, and result values the driver already
    returns as SQLAlchemy would (ids, counts: no result processor), so the SQL can be sent as is."""
    assert isinstance(compiled, SQLCompiler)
    dialect = compiled.dialect
    plain_results = all(
        entry.type._cached_result_processor(dialect, None) is None for entry in compiled._result_columns
    )
    return (
        compiled.positional
        and plain_results
        and not compiled.insert_prefetch
        and not compiled.update_prefetch
        and not compiled.literal_execute_params
        and not compiled.post_compile_params
    )


def _inline_driver(executor: AsyncConnection | AsyncSession) -> sqlite3.Connection | None:
    if not isinstance(executor, AsyncConnection) or executor.dialect.name != "sqlite":
        return None
    driver = executor.sync_connection.connection.driver_connection if executor.sync_connection else None
    return driver.sqlite3_connection if isinstance(driver, InlineConnection) else None


def _run_on_sqlite(conn: sqlite3.Connection, compiled: SQLCompiler, params: Mapping[str, Any]) -> Outcome:
    values = compiled.construct_params(dict(params), escape_names=False)
    processors: Mapping[str, Any] = compiled._bind_processors
    arguments = [
        processors[key](values[key]) if key in processors else values[key] for key in compiled.positiontup or ()
    ]
    try:
        cursor = conn.execute(compiled.string, arguments)
        first = cursor.fetchone() if cursor.description else None
        rowcount = cursor.rowcount
        cursor.close()
    except sqlite3.Error as error:
        # The same exception classes SQLAlchemy raises (IntegrityError, OperationalError, ...).
        raise exc.DBAPIError.instance(compiled.string, arguments, error, sqlite3.Error) from error
    return Outcome(first, rowcount)
