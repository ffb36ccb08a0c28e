"""Production mode's database: PostgreSQL through psycopg 3, one thread hop per transaction.

A transaction is a function of a Tx (the same functions SQLite runs) executed on a thread of a pool sized like
the connection pool, on a connection in autocommit mode: writes run between an explicit BEGIN and COMMIT,
single reads need no transaction at all, snapshots run in REPEATABLE READ READ ONLY. psycopg prepares a
statement on a connection after it has run a few times (its `prepare_threshold`), so the hot paths run as
server-side prepared statements with no code of ours.

Retries: a transaction that failed before its COMMIT was sent, because its connection broke (a database
restart, a dropped connection) or PostgreSQL chose it as a deadlock or serialization victim, is rolled back by
the server and run again on another connection.

A connection lost during COMMIT leaves the outcome unknown: the server may have committed and lost only its
answer. Every write transaction therefore learns its transaction id in the same round trip as its BEGIN, and
after such a loss asks the server, on another connection, what became of that id (`pg_xact_status`, which
PostgreSQL provides for exactly this: https://www.postgresql.org/docs/current/functions-info.html). Committed:
the caller gets its result, as if the answer had arrived. Aborted: the transaction is run again like any
other that never committed. Only when the server cannot be asked within a few seconds does the caller get
DatabaseUnavailable with the outcome still unknown (an idempotency key makes a client's retry safe then).

Group commit: writes marked `grouped` (short ones on the hot paths, such as a submit or a webhook's update) queue
for a lane, a single thread at a time, which runs everything queued in one transaction with one BEGIN and one
COMMIT, as SQLite's writer does. Under load that saves each of them two round trips and a commit record; alone, a
grouped write costs what any other does. Members run without savepoints, which would cost two round trips each:
when one raises, the transaction is rolled back, that caller gets its error, and the others run again in a new
transaction, this time each under a savepoint of its own, so one batch is never run more than twice for its
members' errors. Each caller hears its outcome only after the COMMIT, and a lost COMMIT is settled for the whole
batch as for a single transaction. The price: a grouped write that waits for a lock holds up the grouped writes
behind it, so only writes whose locks others hold briefly are grouped.

Lanes: grouped writes share one main lane, not one per connection: two batches of unrelated users' writes, each
holding a row the other needs next (two accounts' balances, say), would deadlock, where one lane's members simply
queue. A write confined to one generation's rows (`confined_to`: a provider's progress or success webhook, which
changes only that generation, its events and its delivery record) cannot hold what another generation's write
needs, so it runs in a side lane chosen by the generation (SIDE_LANES of them), in parallel with the main lane
and the other side lanes; writes about one generation still queue in one lane. The confinement is enforced, not
trusted: in a side lane a member runs only statements confined to its own generation (a query's `confined_by`,
db/sql.py); a member that reaches any other (a ledger settlement, say) is taken out of the batch, which runs
again without it, and goes to the main lane, where it runs from the start. A lock cycle between lanes remains
possible only through a generation with writes in two lanes at once (a confined webhook beside one that ends the
job); PostgreSQL's deadlock detection ends it, and the victim's batch runs again like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import psycopg
from psycopg import IsolationLevel, errors
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from reelgate.db.codec import decode_row, postgresql_params
from reelgate.db.errors import DatabaseUnavailable, IntegrityViolation, UniqueViolation
from reelgate.db.sql import BeforeCommit, CommitActions, Query, Tx

log = logging.getLogger("reelgate.db")
T = TypeVar("T")

ATTEMPTS = 3  # one run and two retries of a transaction that never reached COMMIT
_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)
# One simple-protocol round trip opens the transaction and names it. Taking the id at BEGIN (rather than
# asking just before COMMIT) costs no extra round trip; the price is that a write transaction which ends up
# changing nothing still writes a commit record.
_BEGIN_NAMED = b"BEGIN; SELECT pg_current_xact_id()"
_XACT_STATUS = b"SELECT pg_xact_status(%s::xid8)"
SETTLE_SECONDS = 5.0  # how long a lost COMMIT's outcome is sought before the caller hears "unknown"
MAX_GROUP = 32  # members of one group commit: a long queue still commits, and answers, in steps
SIDE_LANES = 2  # lanes for writes confined to one generation, beside the main lane (module docstring)


def side_lane_of(generation_id: str) -> int:
    """The side lane (1..SIDE_LANES) of writes confined to this generation: always the same one, so they queue."""
    return 1 + zlib.crc32(generation_id.encode()) % SIDE_LANES


def _integrity_error(error: psycopg.IntegrityError) -> Exception:
    """A constraint's refusal as db/errors.py names it."""
    if isinstance(error, errors.UniqueViolation):
        return UniqueViolation(str(error))
    return IntegrityViolation(str(error))


class PgTx:
    """Tx over one psycopg connection (one cursor for the whole transaction)."""

    dialect = "postgresql"
    __slots__ = ("_conn", "_cursor", "commit_actions", "confined_to")

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._cursor = conn.cursor()
        self.commit_actions = CommitActions()
        # In a side lane, the generation the running member is confined to: only its statements may run.
        self.confined_to: str | None = None

    def _execute(self, query: Query, params: Mapping[str, Any] | None) -> psycopg.Cursor[Any]:
        if self.confined_to is not None and query.confined_to(params) != self.confined_to:
            raise _LeavesLane()
        try:
            return self._cursor.execute(query.postgresql, postgresql_params(params))
        except psycopg.IntegrityError as error:
            raise _integrity_error(error) from error

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

    def before_commit(self, action: BeforeCommit, item: Any) -> None:
        self.commit_actions.add(action, item)


@dataclass(slots=True)
class _Member:
    """One write transaction's function, the future its caller awaits, and, for a side lane's member, the
    generation it is confined to."""

    work: Callable[[Tx], Any]
    future: Future[Any]
    confined_to: str | None = None

    @property
    def lane(self) -> int:
        return 0 if self.confined_to is None else side_lane_of(self.confined_to)


class _LeavesLane(BaseException):
    """A side lane's member reached a statement not confined to its generation. A BaseException, so that no
    `except Exception` in the member's own work can catch it and carry on."""


class _MemberMoved(Exception):
    """A side lane's member must run in the main lane: the transaction was rolled back without it."""

    def __init__(self, member: _Member) -> None:
        super().__init__()
        self.member = member


class _Retry(Exception):
    """The transaction never reached COMMIT and the server rolled it back: run it again."""

    def __init__(self, *, connection_lost: bool) -> None:
        super().__init__()
        self.connection_lost = connection_lost


class _CommitUnanswered(Exception):
    """The connection broke after COMMIT was sent: transaction `xid` may or may not have committed."""

    def __init__(self, xid: str, done: list[tuple[_Member, Any]]) -> None:
        super().__init__(xid)
        self.xid = xid
        self.done = done


class _MemberFailed(Exception):
    """A member raised without a savepoint to undo it alone: the transaction was rolled back."""

    def __init__(self, member: _Member, error: BaseException) -> None:
        super().__init__(str(error))
        self.member = member
        self.error = error


_Outcome = tuple[bool, Any]  # (True, the result) or (False, the error), handed to the caller after COMMIT


def _run_member(
    conn: psycopg.Connection[Any], cursor: psycopg.Cursor[Any], tx: PgTx, member: _Member, *, careful: bool
) -> _Outcome:
    """Runs one member's work. Without a savepoint (`careful` False), its failure raises _MemberFailed, as
    only rolling back the whole transaction can undo it; with one, its failure is undone alone and returned."""
    if careful:
        cursor.execute(b"SAVEPOINT member", prepare=False)
    actions = tx.commit_actions.mark()
    tx.confined_to = member.confined_to
    try:
        result = member.work(tx)
        if conn.info.transaction_status == TransactionStatus.INERROR:
            # The work caught a failed statement's error and returned: its transaction cannot commit.
            raise errors.InFailedSqlTransaction("a statement failed and the transaction was rolled back")
    except _RETRYABLE:
        raise  # the whole transaction is the victim: run again
    except _LeavesLane:
        raise _MemberMoved(member) from None  # what it already wrote goes with the rollback of the batch
    except psycopg.OperationalError as error:
        if conn.broken:
            raise
        log.warning("postgresql: %s", error)  # e.g. the statement timeout
        failure: BaseException = DatabaseUnavailable()
    except BaseException as error:  # noqa: BLE001 - the member's own failure, handed to its caller
        failure = error
    else:
        if careful:
            cursor.execute(b"RELEASE SAVEPOINT member", prepare=False)
        return True, result
    if not careful:
        raise _MemberFailed(member, failure)
    cursor.execute(b"ROLLBACK TO SAVEPOINT member; RELEASE SAVEPOINT member", prepare=False)
    tx.commit_actions.undo_to(actions)
    return False, failure


def _commit_text(conn: psycopg.Connection[Any], statements: list[tuple[Query, Mapping[str, Any]]]) -> bytes:
    """COMMIT, after the statements the members asked for: one text for the simple protocol, the only one that
    takes several statements, with their parameters bound by psycopg's client-side binding (`mogrify`)."""
    if not statements:
        return b"COMMIT"
    binder = psycopg.ClientCursor(conn)
    bound = [binder.mogrify(statement.postgresql, postgresql_params(params)) for statement, params in statements]
    return "; ".join([*bound, "COMMIT"]).encode()


def _roll_back(conn: psycopg.Connection[Any], cursor: psycopg.Cursor[Any]) -> None:
    if not conn.broken:
        with contextlib.suppress(psycopg.OperationalError):
            cursor.execute(b"ROLLBACK", prepare=False)


def _unavailable(error: PoolTimeout | psycopg.OperationalError) -> DatabaseUnavailable:
    """An outage no retry answers (no free connection in time, a server that refuses), logged, as callers see it."""
    if isinstance(error, PoolTimeout):
        log.warning("postgresql: no connection within the pool timeout: %s", error)
    else:
        log.warning("postgresql: %s", error)
    return DatabaseUnavailable()


def _still_wanted(member: _Member) -> bool:
    """False for a member whose caller gave up while it waited (it is dropped, never run). A member moved from a
    side lane is already running: its caller can no longer give up."""
    return member.future.running() or member.future.set_running_or_notify_cancel()


def _answer(done: list[tuple[_Member, _Outcome]]) -> None:
    for member, (ok, value) in done:
        if ok:
            member.future.set_result(value)
        else:
            member.future.set_exception(value)


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
        # Grouped writes waiting for each lane (0: the main lane), and whether a thread is running that lane.
        self._waiting: list[deque[_Member]] = [deque() for _ in range(1 + SIDE_LANES)]
        self._running = [False] * (1 + SIDE_LANES)
        self._lane_lock = threading.Lock()
        self.commits = 0  # COMMITs of write transactions: members / commits is what group commit saves

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        conn.prepared_max = 512  # every named query stays prepared (psycopg's default keeps 100)

    async def open(self) -> None:
        await asyncio.to_thread(self._pool.open, False)

    async def write(self, work: Callable[[Tx], T], *, grouped: bool = False, confined_to: str | None = None) -> T:
        """Runs `work` in a transaction (BEGIN ... COMMIT) on a pool thread; returns its result once committed.
        `grouped`: a short transaction that may share its COMMIT with other grouped ones; `confined_to`: the
        generation whose rows alone it changes, which gives it that generation's lane (module docstring)."""
        future: Future[T] = Future()
        member = _Member(work, future, confined_to if grouped else None)
        if grouped:
            self._enqueue(member)
        else:
            self._threads.submit(self._write_batch, [member])
        return await asyncio.wrap_future(future)

    async def read(self, work: Callable[[Tx], T], *, snapshot: bool = False) -> T:
        """Runs `work` with no transaction (each statement sees the latest commits), or in one snapshot."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._reading, work, snapshot)

    def _enqueue(self, member: _Member) -> None:
        lane = member.lane
        with self._lane_lock:
            self._waiting[lane].append(member)
            if self._running[lane]:
                return
            self._running[lane] = True
        try:
            self._threads.submit(self._lane, lane)
        except RuntimeError:  # closing: no thread will run the lane again, so nothing queued may wait for it
            with self._lane_lock:
                self._running[lane] = False
                stranded = list(self._waiting[lane])
                self._waiting[lane].clear()
            for waiting in stranded:
                waiting.future.set_exception(DatabaseUnavailable())

    def _lane(self, lane: int) -> None:
        """Runs batches of what is queued for `lane` until nothing is (one thread at a time per lane)."""
        waiting = self._waiting[lane]
        while True:
            with self._lane_lock:
                if not waiting:
                    self._running[lane] = False
                    return
                batch = [waiting.popleft() for _ in range(min(MAX_GROUP, len(waiting)))]
            self._write_batch(batch)

    def _write_batch(self, batch: list[_Member]) -> None:
        """Commits the batch's members together, running it again as the failures above require, and answers
        every member. Never raises: a caller must never be left waiting."""
        members = [member for member in batch if _still_wanted(member)]
        try:
            self._commit_members(members)
        except BaseException as error:  # noqa: BLE001 - handed to every caller not yet answered
            for member in members:
                if not member.future.done():
                    member.future.set_exception(error)

    def _commit_members(self, members: list[_Member]) -> None:
        careful = False  # each member under a savepoint of its own: once a member's error undid the others
        attempt = 1
        while members:
            try:
                with self._pool.connection() as conn:
                    done = self._transaction(conn, members, careful=careful)
            except _MemberFailed as failed:
                failed.member.future.set_exception(failed.error)
                members = [member for member in members if member is not failed.member]
                careful = True
                continue
            except _MemberMoved as moved:
                members = [member for member in members if member is not moved.member]
                moved.member.confined_to = None
                self._enqueue(moved.member)
                continue
            except _CommitUnanswered as unanswered:
                outcome = self._settle(unanswered.xid)
                if outcome == "committed":
                    log.warning("postgresql: a COMMIT's answer was lost; the server reports it committed")
                    _answer(unanswered.done)
                    return
                if outcome != "aborted" or attempt == ATTEMPTS:
                    log.warning("postgresql: a COMMIT's answer was lost and its outcome is %s", outcome or "unknown")
                    raise DatabaseUnavailable() from None
                log.info("postgresql: a COMMIT was lost before it took effect; running the transaction again")
            except _Retry as retry:
                if attempt == ATTEMPTS:
                    raise DatabaseUnavailable() from None
                self._before_retry(retry)
            except (PoolTimeout, psycopg.OperationalError) as error:
                raise _unavailable(error) from error
            else:
                _answer(done)
                return
            attempt += 1

    def _transaction(
        self, conn: psycopg.Connection[Any], members: list[_Member], *, careful: bool
    ) -> list[tuple[_Member, _Outcome]]:
        """BEGIN (learning the transaction's id), every member's work, then what they asked to run with the
        COMMIT (Tx.before_commit: once for the batch) and the COMMIT, in one round trip. A COMMIT whose answer is
        lost is reported with that id, so its outcome can be asked for."""
        cursor = conn.cursor()
        try:
            cursor.execute(_BEGIN_NAMED, prepare=False)  # two statements: only the simple protocol takes them
            cursor.nextset()
            xid = cast(str, cursor.fetchone()[0])  # type: ignore[index]
            tx = PgTx(conn)
            done = [(member, _run_member(conn, cursor, tx, member, careful=careful)) for member in members]
            commit = _commit_text(conn, tx.commit_actions.statements())
        except _RETRYABLE as error:
            _roll_back(conn, cursor)
            raise _Retry(connection_lost=False) from error
        except psycopg.OperationalError as error:
            if conn.broken:
                raise _Retry(connection_lost=True) from error
            _roll_back(conn, cursor)
            raise
        except BaseException:
            _roll_back(conn, cursor)
            raise
        try:
            cursor.execute(commit, prepare=False)
            while cursor.nextset():  # the COMMIT's answer is the last
                pass
        except _RETRYABLE as error:  # a statement sent before the COMMIT was a deadlock's victim
            _roll_back(conn, cursor)
            raise _Retry(connection_lost=False) from error
        except psycopg.OperationalError as error:
            if conn.broken:
                raise _CommitUnanswered(xid, done) from error
            _roll_back(conn, cursor)
            raise
        except BaseException as error:
            _roll_back(conn, cursor)  # a statement before the COMMIT failed, so the COMMIT never ran
            if isinstance(error, psycopg.IntegrityError):
                raise _integrity_error(error) from error
            raise
        if cursor.statusmessage != "COMMIT":
            # PostgreSQL answers ROLLBACK to the COMMIT of a transaction a failed statement had already ended.
            raise errors.InFailedSqlTransaction("the transaction had failed and was rolled back, not committed")
        self.commits += 1
        return done

    def _reading(self, work: Callable[[Tx], T], snapshot: bool) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._pool.connection() as conn:
                    return self._read_on(conn, work, snapshot)
            except _Retry as retry:
                if attempt == ATTEMPTS:
                    raise DatabaseUnavailable() from None
                self._before_retry(retry)
            except (PoolTimeout, psycopg.OperationalError) as error:
                raise _unavailable(error) from error
        raise AssertionError("unreachable")

    @staticmethod
    def _read_on(conn: psycopg.Connection[Any], work: Callable[[Tx], T], snapshot: bool) -> T:
        try:
            if not snapshot:
                return work(PgTx(conn))
            conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
            try:
                with conn.transaction():
                    return work(PgTx(conn))
            finally:
                if not conn.broken:
                    conn.isolation_level, conn.read_only = None, None
        except _RETRYABLE as error:
            raise _Retry(connection_lost=False) from error
        except psycopg.OperationalError as error:
            if conn.broken:
                raise _Retry(connection_lost=True) from error
            raise

    def _before_retry(self, retry: _Retry) -> None:
        if retry.connection_lost:
            # One broken connection usually means all of them (the server restarted, a failover): test the idle
            # ones now, so the retry does not meet another dead one.
            self._pool.check()
        log.info("postgresql: running a transaction again after a lost connection or a conflict")

    def _settle(self, xid: str) -> str | None:
        """What became of transaction `xid` ('committed' or 'aborted'), asked on other connections until the
        server answers for certain or SETTLE_SECONDS pass (then None: still unknown)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        pause = 0.02
        while True:
            try:
                self._pool.check()  # the connection that broke was probably not alone
                with self._pool.connection(timeout=max(deadline - time.monotonic(), 0.1)) as conn:
                    row = conn.execute(_XACT_STATUS, (xid,)).fetchone()
                status = None if row is None else row[0]
                if status in ("committed", "aborted"):
                    return cast(str, status)
                # 'in progress': the backend that ran it has not yet finished dying and rolling back.
            except (psycopg.OperationalError, PoolTimeout) as error:
                log.info("postgresql: asking for a lost COMMIT's outcome failed: %s", error)
            if time.monotonic() + pause > deadline:
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def close(self) -> None:
        await asyncio.to_thread(self._threads.shutdown, True)
        await asyncio.to_thread(self._pool.close)
