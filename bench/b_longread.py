"""Whether long work in the database holds up the server: /healthz answered at c=1 alone; while a read that keeps
the database busy for about two seconds (`/bench/long-read`, through the product's read path) runs back to back;
and while the operator's analytics summary (GET /api/v1/admin/analytics over ten years, over enough charged jobs
that one summary takes a while) runs back to back. On PostgreSQL, also beside the long read with the database's
processes kept off the server's CPU. The phases alternate, on each database; the figure is /healthz's p99 in each
phase against its p99 alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import fixtures
from bench.common import CLIENT_CPU, SERVER_CPU, Load, Proc, fmt, median, new_run_dir, ratio, run_load
from bench.report import Section
from reelgate.db.queries.ledger import hold_credits, settle_hold
from reelgate.db.sql import Tx
from reelgate.services import accounts

SUMMARY = "/api/v1/admin/analytics?days=3660"
PRICE = 20
READ_SECONDS = 2.0  # what one long read is sized to take
ALONE, READING, SUMMING = "alone", "during a 2 s read", "during the summary"
# PostgreSQL runs the long read in its own process, which the OS may schedule on the server's core; this phase
# keeps the database's processes on the other core, as a database host of its own would.
READING_OFF_CORE = f"during a 2 s read, database on CPU {CLIENT_CPU}"
PHASES = (ALONE, READING, SUMMING)


@dataclass
class _Target:
    db: str
    server: Proc
    run_dir: Path
    headers: dict[str, str]
    database_url: str | None  # set when the database's processes may be moved between CPUs
    read_size: int = 0  # the long read's count, sized to take READ_SECONDS here
    results: dict[str, list[Load]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)  # each long read's or summary's duration

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def phases(self) -> tuple[str, ...]:
        return PHASES if self.database_url is None else (*PHASES, READING_OFF_CORE)


async def _charged_jobs(values: dict[str, Any], jobs: int) -> str:
    """`jobs` succeeded generations, each held and captured in the ledger as a job's end leaves it; an
    administrator's API key."""
    async with fixtures.context(values) as ctx:
        admin = await accounts.create_user(
            ctx, f"admin-{secrets.token_hex(4)}@example.com", None, credits=0, is_admin=True
        )
        key = await accounts.create_api_key(ctx, admin.id, "bench")
        user_id, _ = await fixtures.user_with_key(ctx, credits=PRICE * jobs)
        gens = await fixtures.insert_generations(ctx, user_id, jobs, status="succeeded", credits_charged=PRICE)
        for start in range(0, jobs, 1000):
            chunk = gens[start : start + 1000]

            def settle(tx: Tx, chunk: list[Any] = chunk) -> None:
                for generation in chunk:
                    hold_credits(tx, user_id, PRICE, generation_id=generation.id)
                    settle_hold(tx, user_id, PRICE, generation_id=generation.id, capture=True)

            await ctx.db.write(settle)
        return key.secret


def _busy(target: _Target, phase: str, stop: threading.Event) -> None:
    """The phase's long request, one after another until `stop`, each timed."""
    path = SUMMARY if phase == SUMMING else f"/bench/long-read?n={target.read_size}"
    with httpx.Client(base_url=target.base, headers=target.headers, timeout=120) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get(path).raise_for_status()
            target.seconds.setdefault(phase, []).append(time.perf_counter() - started)


def _size_the_read(target: _Target) -> None:
    """The count that makes one long read take about READ_SECONDS on this machine and database."""
    n = 1_000_000
    with httpx.Client(base_url=target.base, timeout=120) as client:
        while True:
            started = time.perf_counter()
            client.get(f"/bench/long-read?n={n}").raise_for_status()
            took = time.perf_counter() - started
            if took > READ_SECONDS / 4:
                target.read_size = int(n * READ_SECONDS / took)
                return
            n *= 4


def _database_processes(database_url: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark's database (the server's pool)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


@contextlib.contextmanager
def _database_on(database_url: str, cpus: set[int]) -> Iterator[None]:
    """The database's backends kept on `cpus` for the block, then given back the CPUs they had."""
    before = {pid: os.sched_getaffinity(pid) for pid in _database_processes(database_url)}
    for pid in before:
        os.sched_setaffinity(pid, cpus)
    try:
        yield
    finally:
        for pid, allowed in before.items():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(pid, allowed)


def _may_place_database(database_url: str) -> bool:
    """Whether this user may move the database's processes (root, or the user PostgreSQL runs as)."""
    try:
        with _database_on(database_url, os.sched_getaffinity(0)):
            return True
    except PermissionError:
        return False


def _measure(target: _Target, rounds: int, n: int) -> None:
    plan = [{"method": "GET", "path": "/healthz"}]
    phases = target.phases
    for r in range(rounds):
        for phase in phases[r % len(phases) :] + phases[: r % len(phases)]:
            stop = threading.Event()
            busy = None if phase == ALONE else threading.Thread(target=_busy, args=(target, phase, stop))
            with contextlib.ExitStack() as placed:
                if busy is not None:
                    busy.start()
                    time.sleep(0.5)  # the first long request is under way before /healthz is measured
                if phase == READING_OFF_CORE and target.database_url is not None:
                    placed.enter_context(_database_on(target.database_url, {int(CLIENT_CPU)}))
                try:
                    load = run_load(
                        target.base, plan, n=n, concurrency=1, warmup=50, run_dir=target.run_dir, label="healthz"
                    )
                finally:
                    stop.set()
                    if busy is not None:
                        busy.join()
            target.results.setdefault(phase, []).append(load)
            print(
                f"  [{target.db}] round {r + 1} {phase}: {load.rps:.0f} rps p50 {load.p50_ms:.2f} ms "
                f"p99 {load.p99_ms:.2f} ms slowest {load.max_ms:.1f} ms errors {load.errors}",
                flush=True,
            )


def run(quick: bool, databases: list[str]) -> Section:
    rounds, n, jobs = (3, 2000, 20_000) if quick else (6, 4000, 40_000)
    section = Section(
        "longread",
        "/healthz while the database is busy with a long read, and while the analytics summary runs",
        [
            "database",
            "/healthz",
            "rps",
            "p50 ms",
            "p99 ms",
            "p99 / alone",
            "slowest ms",
            "long request's s (median)",
            "errors",
        ],
    )
    with contextlib.ExitStack() as stack:
        for db, url in fixtures.open_databases(stack, databases, section.notes):
            run_dir = new_run_dir(f"longread-{db}")
            values = fixtures.settings_values(run_dir / "data", url)
            secret = asyncio.run(_charged_jobs(values, jobs))
            server = fixtures.spawn_bench_server(db, values, run_dir)
            try:
                movable = url if url is not None and _may_place_database(url) else None
                if url is not None and movable is None:
                    section.notes.append(
                        f'"{READING_OFF_CORE}" not measured: this user may not move PostgreSQL\'s processes.'
                    )
                target = _Target(db, server, run_dir, {"authorization": f"Bearer {secret}"}, movable)
                _size_the_read(target)
                _measure(target, rounds, n)
            finally:
                server.stop()
            alone_p99 = median([x.p99_ms for x in target.results[ALONE]])
            for phase in target.phases:
                loads = target.results[phase]
                p99 = median([x.p99_ms for x in loads])
                section.rows.append(
                    [
                        db,
                        phase,
                        fmt(median([x.rps for x in loads])),
                        fmt(median([x.p50_ms for x in loads])),
                        fmt(p99),
                        "1" if phase == ALONE else f"{ratio(p99, alone_p99):.2f}",
                        fmt(max(x.max_ms for x in loads)),
                        fmt(median(target.seconds.get(phase, []))),
                        str(sum(x.errors for x in loads)),
                    ]
                )
    section.notes.append(
        f"{jobs:,} succeeded jobs, each held and captured in the ledger, all inside the summary's window. The long "
        "read counts to n in a recursive query (n sized once per database to take about 2 s here), run by the "
        f"product's read path (`db.read`); {rounds} rounds of {n} /healthz requests at c=1 per phase (phases "
        "rotated), medians over rounds. In the busy phases a client asks for the long request back to back from "
        "half a second before the "
        f"measured requests until they end, from the harness's process. Server pinned to CPU {SERVER_CPU}, the load "
        f"generator to CPU {CLIENT_CPU}. PostgreSQL's long read runs in the database's own process, which the OS "
        f'schedules on either CPU; in the phase "{READING_OFF_CORE}" the database\'s processes are kept on '
        f"CPU {CLIENT_CPU} (sched_setaffinity), as a database on a host of its own leaves the server's CPU alone."
    )
    return section
