"""One ledger run in its own pinned process: `ops` hold+capture pairs, each step its own transaction, through
reelgate's ledger (`ours`) or through raw SQL on the same driver doing the same updates (`raw`).
Prints a JSON summary (ops/s, per-pair latency, process CPU per pair)."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

HOLD_SQL = (
    "UPDATE balances SET available = available - {p}, held = held + {p}, updated_at = {p} "
    "WHERE user_id = {p} AND available >= {p}"
)
ENTRY_SQL = (
    "INSERT INTO ledger_entries (user_id, kind, amount, reference, generation_id, note, created_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, '', {p}) ON CONFLICT DO NOTHING"
)
CAPTURE_SQL = "UPDATE balances SET held = held - {p}, captured = captured + {p}, updated_at = {p} WHERE user_id = {p}"
AMOUNT = 5


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


async def ours(url: str, users: list[str], ops: int, concurrency: int) -> list[float]:
    from reelgate.db.database import open_database
    from reelgate.db.queries.ledger import hold_credits, settle_hold

    db = await open_database(url, pool_size=concurrency + 2, migrate=False)
    latencies: list[float] = []
    counter = iter(range(ops))

    async def task() -> None:
        for i in counter:
            user, gid = users[i % len(users)], f"gen_bench_{secrets.token_hex(8)}"
            started = time.perf_counter()
            await db.write(lambda tx, user=user, gid=gid: hold_credits(tx, user, AMOUNT, generation_id=gid))
            await db.write(
                lambda tx, user=user, gid=gid: settle_hold(tx, user, AMOUNT, generation_id=gid, capture=True)
            )
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(task() for _ in range(concurrency)))
    await db.close()
    return latencies


def _ts() -> Any:
    return datetime.now(UTC).replace(tzinfo=None)


async def raw_sqlite(path: str, users: list[str], ops: int, concurrency: int) -> list[float]:
    """The same statements on the stdlib driver, one thread hop per transaction, one connection per task (writers
    then meet in SQLite's busy handler, as separate clients would)."""
    import sqlite3

    hold, entry, capture = (s.format(p="?") for s in (HOLD_SQL, ENTRY_SQL, CAPTURE_SQL))
    latencies: list[float] = []
    counter = iter(range(ops))

    def hold_tx(conn: sqlite3.Connection, user: str, gid: str, now: str) -> None:
        conn.execute("BEGIN IMMEDIATE")
        assert conn.execute(hold, (AMOUNT, AMOUNT, now, user, AMOUNT)).rowcount == 1
        conn.execute(entry, (user, "hold", AMOUNT, gid, gid, now))
        conn.execute("COMMIT")

    def capture_tx(conn: sqlite3.Connection, user: str, gid: str, now: str) -> None:
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute(entry, (user, "capture", AMOUNT, gid, gid, now)).rowcount:
            conn.execute(capture, (AMOUNT, AMOUNT, now, user))
        conn.execute("COMMIT")

    async def task() -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=FULL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        try:
            for i in counter:
                user, gid = users[i % len(users)], f"gen_bench_{secrets.token_hex(8)}"
                started = time.perf_counter()
                now = _ts().isoformat(sep=" ")
                await asyncio.to_thread(hold_tx, conn, user, gid, now)
                await asyncio.to_thread(capture_tx, conn, user, gid, now)
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            conn.close()

    await asyncio.gather(*(task() for _ in range(concurrency)))
    return latencies


async def raw_pg(url: str, users: list[str], ops: int, concurrency: int) -> list[float]:
    import psycopg

    hold, entry, capture = (s.format(p="%s") for s in (HOLD_SQL, ENTRY_SQL, CAPTURE_SQL))
    conninfo = url
    latencies: list[float] = []
    counter = iter(range(ops))

    async def task() -> None:
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            for i in counter:
                user, gid = users[i % len(users)], f"gen_bench_{secrets.token_hex(8)}"
                started = time.perf_counter()
                now = datetime.now(UTC)
                async with conn.transaction():
                    cur = await conn.execute(hold, (AMOUNT, AMOUNT, now, user, AMOUNT))
                    assert cur.rowcount == 1
                    await conn.execute(entry, (user, "hold", AMOUNT, gid, gid, now))
                async with conn.transaction():
                    cur = await conn.execute(entry, (user, "capture", AMOUNT, gid, gid, now))
                    if cur.rowcount:
                        await conn.execute(capture, (AMOUNT, AMOUNT, now, user))
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(task() for _ in range(concurrency)))
    return latencies


async def _one_run(args: argparse.Namespace, users: list[str], ops: int) -> list[float]:
    if args.mode == "ours":
        return await ours(args.url, users, ops, args.concurrency)
    if args.url.startswith("sqlite"):
        return await raw_sqlite(args.url.split(":///", 1)[1], users, ops, args.concurrency)
    return await raw_pg(args.url, users, ops, args.concurrency)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    users = json.loads(args.users)
    # Warm-up (imports, statement caches, connections) outside the measurement.
    await _one_run(args, users, max(args.concurrency * 4, 40))
    cpu0, started = time.process_time(), time.perf_counter()
    latencies = await _one_run(args, users, args.ops)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
    latencies.sort()
    return {
        "ops": len(latencies),
        "seconds": seconds,
        "ops_per_s": len(latencies) / seconds,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "cpu_ms_per_op": cpu * 1000 / len(latencies),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["ours", "raw"], required=True)
    parser.add_argument("--users", required=True, help="JSON list of account ids")
    parser.add_argument("--ops", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    a = parser.parse_args()
    import uvloop

    print(json.dumps(uvloop.run(main(a))))
