"""Embedded mode's database: one writer thread with group commit, and reader threads, over the stdlib's sqlite3.

SQLite has one writer at a time, and with synchronous=FULL every COMMIT waits for the disk. So one thread owns
the only writing connection and runs every write transaction of this process, one hop per transaction: the
caller hands over a function that runs its statements, and awaits the result. When writers queue up, the
thread runs each queued function under a SAVEPOINT of its own inside one transaction, and one COMMIT (one
fsync) makes the whole batch durable; each caller learns its outcome only after that COMMIT.

What can go wrong, and what the caller sees:
- its function raises: its SAVEPOINT is rolled back (the others' work stays) and the caller gets the error;
- SQLite ends the whole transaction itself (SQLITE_FULL, IOERR, NOMEM roll everything back): every member
  whose work was in it gets TransactionLost, none is told its work is durable, and members not yet run go
  into the next transaction;
- COMMIT fails: every member gets the error.

BEGIN and COMMIT run on that thread, never behind unrelated work in a shared executor, and reads run on reader
threads of their own (WAL lets them read while the writer writes), so no statement runs on the event loop.

A read's CPU is still spent in this process, on the cores the event loop runs on. On Linux the reader threads run
at a lower CPU priority than the loop, so that a long read (an analytics summary, an admin list over a large
table) takes the time the loop leaves, and requests beside it are answered as quickly as without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from reelgate.db.codec import decode_row, sqlite_params
from reelgate.db.errors import DatabaseUnavailable, IntegrityViolation, TransactionLost, UniqueViolation
from reelgate.db.sql import BeforeCommit, CommitActions, Query, Tx

log = logging.getLogger("reelgate.db")
T = TypeVar("T")

MAX_BATCH = 64  # members of one group commit, so a long queue still commits (and answers) in steps
BUSY_TIMEOUT_MS = 30_000  # another process (the CLI) holding the write lock: wait this long, then 503


def translate(error: sqlite3.Error) -> Exception:
    """The driver's error as one of db/errors.py's (programming errors pass through as they are)."""
    if isinstance(error, sqlite3.IntegrityError):
        if "UNIQUE" in str(error) or "PRIMARY KEY" in str(error):
            return UniqueViolation(str(error))
        return IntegrityViolation(str(error))
    if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.ProgrammingError
    ):
        message = str(error)
        if "syntax error" in message or "no such" in message or "has no column" in message:
            return error  # a bug in our SQL, not an outage
        log.warning("sqlite: %s", message)
        return DatabaseUnavailable()
    return error


class SqliteTx:
    """Tx over one sqlite3 connection. In a write transaction every statement first checks the transaction is
    still open: after SQLite ended it, a statement would otherwise commit on its own."""

    dialect = "sqlite"
    __slots__ = ("_conn", "_writing", "_savepoints", "commit_actions")

    def __init__(self, conn: sqlite3.Connection, *, writing: bool) -> None:
        self._conn = conn
        self._writing = writing
        self._savepoints = 0
        self.commit_actions = CommitActions()

    def before_commit(self, action: BeforeCommit, item: Any) -> None:
        self.commit_actions.add(action, item)

    def _execute(self, query: Query, params: Mapping[str, Any] | None) -> sqlite3.Cursor:
        if self._writing and not self._conn.in_transaction:
            raise TransactionLost()
        try:
            return self._conn.execute(query.sqlite, sqlite_params(params))
        except sqlite3.Error as error:
            raise translate(error) from error

    def run(self, query: Query, params: Mapping[str, Any] | None = None) -> int:
        cursor = self._execute(query, params)
        try:
            # With RETURNING, the rows are the count (the driver's rowcount may not be set before they are read).
            return len(cursor.fetchall()) if cursor.description is not None else cursor.rowcount
        except sqlite3.Error as error:
            raise translate(error) from error
        finally:
            cursor.close()

    def one(self, query: Query, params: Mapping[str, Any] | None = None) -> Any:
        return decode_row(query.row, "sqlite", self._first(query, params))

    def all(self, query: Query, params: Mapping[str, Any] | None = None) -> list[Any]:
        cursor = self._execute(query, params)
        try:
            rows = cursor.fetchall()
        except sqlite3.Error as error:
            raise translate(error) from error
        finally:
            cursor.close()
        if query.row is None:
            return rows
        return [decode_row(query.row, "sqlite", row) for row in rows]

    def scalar(self, query: Query, params: Mapping[str, Any] | None = None) -> Any:
        row = self._first(query, params)
        return None if row is None else row[0]

    def _first(self, query: Query, params: Mapping[str, Any] | None) -> Any:
        # SQLite applies every change of an UPDATE ... RETURNING on its first step, so one fetch is enough.
        cursor = self._execute(query, params)
        try:
            return cursor.fetchone()
        except sqlite3.Error as error:
            raise translate(error) from error
        finally:
            cursor.close()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        self._savepoints += 1
        name = f"inner{self._savepoints}"
        self._plain(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._plain(f"ROLLBACK TO {name}")
                self._plain(f"RELEASE {name}")
            raise
        self._plain(f"RELEASE {name}")

    def _plain(self, sql: str) -> None:
        if self._writing and not self._conn.in_transaction:
            raise TransactionLost()
        try:
            self._conn.execute(sql)
        except sqlite3.Error as error:
            raise translate(error) from error


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (this module issues BEGIN), usable from the thread that runs it."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # FULL: a committed ledger entry survives power loss, not just a process crash.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


def prepare_file(path: str) -> None:
    """Create the database file owner-only (it holds webhook secrets), tighten an old one, and turn on WAL."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    if not file.exists():
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT, 0o600))
    for companion in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
        if companion.exists() and companion.stat().st_mode & 0o077:
            companion.chmod(0o600)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


@dataclass(slots=True)
class _Member:
    work: Callable[[Tx], Any]
    future: Future[Any]


class _Stop:
    pass


class SqliteWriter:
    """The writer thread and its queue (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._jobs: queue.SimpleQueue[_Member | _Stop] = queue.SimpleQueue()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, name="reelgate-sqlite-writer", daemon=True)
        self.commits = 0  # COMMITs issued (one per batch): what group commit saves is visible as members / commits

    def start(self) -> Future[None]:
        self._thread.start()
        return self._ready

    def submit(self, work: Callable[[Tx], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put(_Member(work, future))
        return future

    def stop(self) -> None:
        """Runs what is queued, then ends the thread (blocking: call it off the event loop)."""
        if self._thread.is_alive():
            self._jobs.put(_Stop())
            self._thread.join()

    def _serve(self) -> None:
        try:
            conn = connect(self._path)
        except BaseException as error:  # noqa: BLE001 - reported to whoever awaits start()
            self._ready.set_exception(error)
            return
        self._ready.set_result(None)
        pending: deque[_Member] = deque()
        stopping = False
        try:
            while pending or not stopping:
                if not pending:
                    first = self._jobs.get()
                    if isinstance(first, _Stop):
                        stopping = True
                        continue
                    pending.append(first)
                stopping = self._drain(pending) or stopping
                batch = [pending.popleft() for _ in range(min(MAX_BATCH, len(pending)))]
                try:
                    pending.extendleft(reversed(self._run_batch(conn, batch)))
                except BaseException as error:  # noqa: BLE001 - a bug here must not strand every later caller
                    log.exception("sqlite writer: a batch failed unexpectedly")
                    self._abandon(conn, batch, error)
        finally:
            conn.close()

    def _drain(self, pending: deque[_Member]) -> bool:
        """Takes everything already queued; True when a stop request was among it."""
        stop = False
        while len(pending) < MAX_BATCH:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, _Stop):
                stop = True
            else:
                pending.append(job)
        return stop

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Member]) -> list[_Member]:
        """One transaction for the batch; returns the members that did not run (to go into the next one)."""
        # Members carried over from a lost transaction are running already; the others start now (unless their
        # caller gave up while they waited: those are dropped, never run).
        live = [member for member in batch if member.future.running() or member.future.set_running_or_notify_cancel()]
        if not live:
            return []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            failure = translate(error)
            for member in live:
                member.future.set_exception(failure)
            return []
        tx = SqliteTx(conn, writing=True)
        savepoints = len(live) > 1
        done: list[tuple[_Member, Any]] = []
        for index, member in enumerate(live):
            try:
                result = self._run_member(conn, tx, member, savepoints)
            except _TransactionEnded as ended:
                member.future.set_exception(ended.error)
                self._fail(done, TransactionLost())
                return live[index + 1 :]
            except BaseException as error:  # noqa: BLE001 - the member's own failure, handed to its caller
                member.future.set_exception(error)
                if not savepoints:
                    return []
                continue
            done.append((member, result))
        if done and not self._before_commit(conn, tx, done):
            return []
        self._commit(conn, done)
        return []

    def _before_commit(self, conn: sqlite3.Connection, tx: SqliteTx, done: list[tuple[_Member, Any]]) -> bool:
        """Runs what the members asked for before the COMMIT (Tx.before_commit); if that fails, no member's
        work commits and each gets the error."""
        try:
            for statement, params in tx.commit_actions.statements():
                tx.run(statement, params)
            return True
        except BaseException as error:  # noqa: BLE001 - handed to every member of the batch
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._fail(done, _caller_error(error))
            return False

    def _run_member(self, conn: sqlite3.Connection, tx: SqliteTx, member: _Member, savepoints: bool) -> Any:
        """Runs one member; its failure undoes only its work. Raises _TransactionEnded when SQLite has ended the
        whole transaction (then nothing that ran in it may be reported as done)."""
        actions = tx.commit_actions.mark()
        try:
            if savepoints:
                conn.execute("SAVEPOINT member")
            result = member.work(tx)
            if not conn.in_transaction:
                raise TransactionLost()
            if savepoints:
                conn.execute("RELEASE member")
            return result
        except BaseException as error:
            if not conn.in_transaction:
                raise _TransactionEnded(_caller_error(error)) from error
            tx.commit_actions.undo_to(actions)
            try:
                if savepoints:
                    conn.execute("ROLLBACK TO member")
                    conn.execute("RELEASE member")
                else:
                    conn.execute("ROLLBACK")
            except sqlite3.Error as undo:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise _TransactionEnded(TransactionLost()) from undo
            raise _caller_error(error) from None

    def _commit(self, conn: sqlite3.Connection, done: list[tuple[_Member, Any]]) -> None:
        try:
            conn.execute("COMMIT" if done else "ROLLBACK")
            self.commits += 1 if done else 0
        except sqlite3.Error as error:
            # A refused COMMIT can leave the transaction open, holding the write lock: end it.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._fail(done, translate(error))
            return
        for member, result in done:
            member.future.set_result(result)

    @staticmethod
    def _abandon(conn: sqlite3.Connection, batch: list[_Member], error: BaseException) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        for member in batch:
            if not member.future.done():
                member.future.set_exception(DatabaseUnavailable() if isinstance(error, Exception) else error)

    @staticmethod
    def _fail(done: list[tuple[_Member, Any]], error: BaseException) -> None:
        for member, _ in done:
            member.future.set_exception(error)


class _TransactionEnded(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _caller_error(error: BaseException) -> BaseException:
    return translate(error) if isinstance(error, sqlite3.Error) else error


# Linux keeps a nice value per thread; 10 above the loop's gives a reader about a tenth of the CPU the loop would
# get while the two compete, and all of it when nothing else runs, so reads on idle cores are unaffected.
READER_NICENESS = 10
LOWEST_PRIORITY = 19


def lower_reader_priority() -> None:
    """Runs on each reader thread as it starts: a long read yields its core to the event loop."""
    if sys.platform != "linux":  # elsewhere the nice value belongs to the whole process, the loop included
        return
    try:
        thread = threading.get_native_id()  # it starts with the nice value of the thread that made it
        nice = min(os.getpriority(os.PRIO_PROCESS, thread) + READER_NICENESS, LOWEST_PRIORITY)
        os.setpriority(os.PRIO_PROCESS, thread, nice)
    except OSError as error:  # a container may forbid it; reads still work, at the loop's priority
        log.warning("sqlite reader threads keep the default CPU priority: %s", error)


class SqliteDatabase:
    """Database over a SQLite file: writes through SqliteWriter, reads on a small pool of reader threads."""

    dialect = "sqlite"

    def __init__(self, path: str, *, readers: int = 4) -> None:
        self.path = path
        self._writer = SqliteWriter(path)
        self._readers = ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix="reelgate-sqlite-read", initializer=lower_reader_priority
        )
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._started = False

    async def open(self) -> None:
        await asyncio.to_thread(prepare_file, self.path)
        await asyncio.wrap_future(self._writer.start())
        self._started = True

    @property
    def commits(self) -> int:
        return self._writer.commits

    async def write(self, work: Callable[[Tx], T], *, grouped: bool = False, confined_to: str | None = None) -> T:
        """Runs `work` in a write transaction; returns its result once the transaction is durable. Every write
        here may share its COMMIT with others (`grouped` and `confined_to` change nothing: there is one writer)."""
        return await asyncio.wrap_future(self._writer.submit(work))

    async def read(self, work: Callable[[Tx], T], *, snapshot: bool = False) -> T:
        """Runs `work` on a reader thread. Every read is a snapshot on SQLite (one WAL read transaction)."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, work)

    def _read(self, work: Callable[[Tx], T]) -> T:
        conn = self._reader()
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as error:
            raise translate(error) from error
        try:
            return work(SqliteTx(conn, writing=False))
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("COMMIT")

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connect(self.path, readonly=True)
            except sqlite3.Error as error:
                raise translate(error) from error
            self._local.conn = conn
            with self._lock:
                self._reader_connections.append(conn)
        return conn

    async def close(self) -> None:
        if self._started:
            await asyncio.to_thread(self._writer.stop)
        await asyncio.to_thread(self._readers.shutdown, True)
        with self._lock:
            for conn in self._reader_connections:
                conn.close()
            self._reader_connections.clear()
