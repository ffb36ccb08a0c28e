"""Production mode's database: PostgreSQL through psycopg 3, one thread hop per transaction.

A transaction is a function of a Tx (the same functions SQLite runs) executed on a thread of a pool sized like
the connection pool, on a connection in autocommit mode: writes run between an explicit BEGIN and COMMIT,
single reads need no transaction at all, snapshots run in REPEATABLE READ READ ONLY. psycopg prepares a
statement on a connection after it has run a few times (its `prepare_threshold`), so the hot paths run as
server-side prepared statements with no code of ours.

Retries: a transaction that failed before its COMMIT was sent, because its connection broke (a database
restart, a dropped connection) or PostgreSQL chose it as a deadlock or serialization victim, is rolled back by
the server and run again on another connection. A connection lost during COMMIT may or may not have committed:
that one is not retried and the caller gets DatabaseUnavailable (an idempotency key makes a client retry safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import IsolationLevel, errors
from psycopg_pool import ConnectionPool, PoolTimeout

from reelgate.db.codec import decode_row, postgresql_params
from reelgate.db.errors import DatabaseUnavailable, IntegrityViolation, UniqueViolation
from reelgate.db.sql import Query, Tx

log = logging.getLogger("reelgate.db")
T = TypeVar("T")

ATTEMPTS = 3  # one run and two retries of a transaction that never reached COMMIT
_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)


class PgTx:
    """Tx over one psycopg connection (one cursor for the whole transaction)."""

    dialect = "postgresql"
    __slots__ = ("_conn", "_cursor")

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._cursor = conn.cursor()

    def _execute(self, query: Query, params: Mapping[str, Any] | None) -> psycopg.Cursor[Any]:
        try:
            return self._cursor.execute(query.postgresql, postgresql_params(params))
        except errors.UniqueViolation as error:
            raise UniqueViolation(str(error)) from error
        except psycopg.IntegrityError as error:
            raise IntegrityViolation(str(error)) from error

    def run(self, query: Query, params: Mapping[str, Any] | None = None) -> int:
        cursor = self._execute(query, params)
        # psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING: with RETURNING, the rows are the count.
        return len(cursor.fetchall()) if query.returns_rows else cursor.rowcount

    def one(self, query: Query, params: Mapping[str, Any] | None = None) -> Any:
        return decode_row(query.row, "postgresql", self._execute(query, params).fetchone())

    def all(self, query: Query, params: Mapping[str, Any] | None = None) -> list[Any]:
        rows = self._execute(query, params).fetchall()
        if query.row is None:
            return rows
        return [decode_row(query.row, "postgresql", row) for row in rows]

    def scalar(self, query: Query, params: Mapping[str, Any] | None = None) -> Any:
        row = self._execute(query, params).fetchone()
        return None if row is None else row[0]

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        with self._conn.transaction():
            yield


class _Retry(Exception):
    """The transaction never reached COMMIT and the server rolled it back: run it again."""

    def __init__(self, *, connection_lost: bool) -> None:
        super().__init__()
        self.connection_lost = connection_lost


class PostgresDatabase:
    """Database over a psycopg connection pool."""

    dialect = "postgresql"

    def __init__(self, conninfo: str, *, pool_size: int = 10, statement_timeout_ms: int = 30_000) -> None:
        self._pool = ConnectionPool(
            conninfo,
            min_size=min(2, pool_size),
            max_size=pool_size,
            open=False,
            timeout=10,  # waiting for a free connection: past this, 503 rather than a hung request
            name="reelgate",
            configure=self._configure,
            kwargs={
                "autocommit": True,
                "connect_timeout": 5,
                # Moments come back in UTC; a statement stuck on the server ends; a dead peer is noticed.
                "options": f"-c timezone=UTC -c statement_timeout={statement_timeout_ms}",
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
        )
        self._threads = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="reelgate-pg")

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        conn.prepared_max = 512  # every named query stays prepared (psycopg's default keeps 100)

    async def open(self) -> None:
        await asyncio.to_thread(self._pool.open, False)

    async def write(self, work: Callable[[Tx], T]) -> T:
        """Runs `work` in a transaction (BEGIN ... COMMIT) on a pool thread; returns its result once committed."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._retrying, work, "write")

    async def read(self, work: Callable[[Tx], T], *, snapshot: bool = False) -> T:
        """Runs `work` with no transaction (each statement sees the latest commits), or in one snapshot."""
        mode = "snapshot" if snapshot else "read"
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._retrying, work, mode)

    def _retrying(self, work: Callable[[Tx], T], mode: str) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._pool.connection() as conn:
                    return self._run(conn, work, mode)
            except _Retry as retry:
                if attempt == ATTEMPTS:
                    raise DatabaseUnavailable() from None
                if retry.connection_lost:
                    # One broken connection usually means all of them (the server restarted, a failover): test the
                    # idle ones now, so the retry does not meet another dead one.
                    self._pool.check()
                log.info("postgresql: running a transaction again after a lost connection or a conflict")
            except PoolTimeout as error:
                log.warning("postgresql: no connection within the pool timeout: %s", error)
                raise DatabaseUnavailable() from error
            except psycopg.OperationalError as error:
                log.warning("postgresql: %s", error)
                raise DatabaseUnavailable() from error
        raise AssertionError("unreachable")

    def _run(self, conn: psycopg.Connection[Any], work: Callable[[Tx], T], mode: str) -> T:
        committing = False
        try:
            if mode == "read":
                return work(PgTx(conn))
            if mode == "snapshot":
                conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
            try:
                transaction = conn.transaction()
                with transaction:
                    result = work(PgTx(conn))
                    committing = True
                return result
            finally:
                if mode == "snapshot" and not conn.broken:
                    conn.isolation_level, conn.read_only = None, None
        except _RETRYABLE as error:
            raise _Retry(connection_lost=False) from error
        except psycopg.OperationalError as error:
            if conn.broken and not committing:
                raise _Retry(connection_lost=True) from error
            raise

    async def close(self) -> None:
        await asyncio.to_thread(self._threads.shutdown, True)
        await asyncio.to_thread(self._pool.close)
