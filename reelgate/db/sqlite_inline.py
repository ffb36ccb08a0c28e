"""An asyncio face on sqlite3 that runs statements on the event loop's own thread.

aiosqlite sends every call (open a cursor, execute, fetch, close) to a helper thread and back. A SQLite
statement on an indexed row takes microseconds; the round trip through the thread costs tens of
microseconds of CPU on each side plus a GIL hand-over, and a request makes dozens of them. So here a
statement runs where it is awaited, and only what can wait on something outside this process leaves the
loop (for the default executor, so the loop keeps serving reads meanwhile):

- `BEGIN IMMEDIATE` is first tried without waiting; only when another process (the CLI, say) holds the
  write lock does it wait for it, up to busy_timeout, in the executor;
- `COMMIT` waits for the disk (synchronous=FULL fsyncs the WAL).

Writers inside this process are already queued one at a time by `Database`, so a connection is never used
by two threads at once.

The object model mirrors aiosqlite's (awaitable `commit`/`rollback`/`close`, cursors with awaitable
`execute`/`fetch*`), which is what SQLAlchemy's aiosqlite dialect drives; it is plugged in through
`create_async_engine(async_creator=...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

_TAKES_WRITE_LOCK = ("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE")
_COMMITS = ("COMMIT", "END")


def _starts(sql: str, prefixes: tuple[str, ...]) -> bool:
    return sql.lstrip()[:16].upper().startswith(prefixes)


def _try_write_lock(conn: sqlite3.Connection, sql: str, busy_timeout_ms: int) -> bool:
    """BEGIN IMMEDIATE without waiting; False when another connection holds the write lock."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute(sql)
        return True
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")


async def _begin_writing(conn: sqlite3.Connection, sql: str, busy_timeout_ms: int) -> None:
    if _try_write_lock(conn, sql, busy_timeout_ms):
        return
    waiting = asyncio.get_running_loop().run_in_executor(None, conn.execute, sql)
    try:
        await asyncio.shield(waiting)
    except asyncio.CancelledError:
        # Abandoned while waiting for the lock: stop the BEGIN, and let the connection go back to the pool only
        # once the thread has let go of it and without a transaction (else the lock stays taken for good).
        conn.interrupt()
        await _until_done(waiting)
        if conn.in_transaction:
            conn.rollback()
        raise


async def _in_executor(call: Callable[[], Any]) -> None:
    """Runs a blocking call in the executor; a cancelled caller still waits for it to finish, so the
    connection is never used by the loop and a thread at once."""
    running = asyncio.get_running_loop().run_in_executor(None, call)
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        await _until_done(running)
        raise


async def _until_done(running: asyncio.Future[Any]) -> None:
    while not running.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([running])
    with contextlib.suppress(BaseException):
        running.result()


class InlineCursor:
    __slots__ = ("_cursor", "_owner")

    def __init__(self, cursor: sqlite3.Cursor, owner: InlineConnection) -> None:
        self._cursor = cursor
        self._owner = owner

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> InlineCursor:
        if parameters is None and _starts(sql, _TAKES_WRITE_LOCK):
            await self._owner.begin(sql)
        elif parameters is None and _starts(sql, _COMMITS):
            await self._owner.commit()
        elif parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, seq_of_parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    # `_connection` is what SQLAlchemy's aiosqlite adapter checks (as on aiosqlite) before commit or rollback:
    # the open sqlite3 connection, or None once closed.
    __slots__ = ("_conn", "_connection", "_busy_timeout_ms", "_changes_at_begin")

    def __init__(self, conn: sqlite3.Connection, *, busy_timeout_ms: int) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn
        self._busy_timeout_ms = busy_timeout_ms
        self._changes_at_begin = -1

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def sqlite3_connection(self) -> sqlite3.Connection:
        """The connection itself, for statements run without SQLAlchemy's per-call machinery (db/prepared.py)."""
        return self._conn

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor(), self)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def begin(self, sql: str = "BEGIN IMMEDIATE") -> None:
        """Starts a transaction; one that takes the write lock waits for it off the loop when it must."""
        if _starts(sql, _TAKES_WRITE_LOCK):
            await _begin_writing(self._conn, sql, self._busy_timeout_ms)
        else:
            self._conn.execute(sql)
        self._changes_at_begin = self._conn.total_changes

    async def commit(self) -> None:
        if not self._conn.in_transaction:
            return
        try:
            if self._conn.total_changes == self._changes_at_begin:
                self._conn.commit()  # no row written: nothing to sync to disk, so no reason to leave the loop
            else:
                await _in_executor(self._conn.commit)
        except sqlite3.Error:
            # A COMMIT refused (a deferred constraint, a full disk) leaves the transaction open, holding the write
            # lock; nothing resets a pooled connection on return, so end it here.
            if self._conn.in_transaction:
                self._conn.rollback()
            raise

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._connection = None
        self._conn.close()

    def stop(self) -> None:
        """SQLAlchemy's forced close (a connection abandoned by a cancelled task)."""
        self._connection = None
        self._conn.close()

    async def create_function(self, name: str, num_params: int, func: Callable[..., Any], **kw: Any) -> None:
        self._conn.create_function(name, num_params, func, **kw)


def creator(path: str, *, timeout: float) -> Callable[[], Any]:
    """`async_creator` for create_async_engine: a fresh connection in autocommit mode (we issue BEGIN)."""

    async def connect() -> InlineConnection:
        # check_same_thread=False: BEGIN IMMEDIATE and COMMIT run in the executor (one at a time).
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        return InlineConnection(conn, busy_timeout_ms=int(timeout * 1000))

    return connect
