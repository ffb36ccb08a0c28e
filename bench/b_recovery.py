"""Production mode after a fault: how long until every in-flight generation moves again once a worker is
SIGKILLed, or once PostgreSQL "restarts" (a proxy in front of it drops every connection and refuses new ones
for 2 s). Two `reelgate worker` processes, sandbox jobs long enough to stay in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from typing import Any

import psycopg

from bench import fixtures
from bench.common import PYTHON, ROOT, SERVER_CPU, new_run_dir, spawn
from bench.report import Section
from reelgate.services import generations
from reelgate.services.generations import GenerationOrder
from tests.production.fleet import DroppingProxy

ORDER = GenerationOrder(model="sandbox-t2v", prompt="a paper boat on a pond", duration=1, resolution="480p")
_ACTIVE = (
    "SELECT id, status, poll_count FROM generations WHERE status IN ('queued', 'submitting', 'processing', 'storing')"
)
OUTAGE_SECONDS = 2.0


def run(quick: bool, databases: list[str]) -> Section:
    section = Section(
        "recovery",
        "Production mode: time until every in-flight generation moves again after a fault (two workers, PostgreSQL)",
        ["event", "generations in flight", "every one moved again after (s)", "reference: same, no fault (s)"],
    )
    if "postgresql" not in databases or not fixtures.pg_available():
        section.notes.append("Needs PostgreSQL (production mode): not run.")
        return section
    jobs = 200 if quick else 1000
    with fixtures.pg_database() as url:
        _measure(section, url, jobs)
    section.notes.append(
        f"{jobs} sandbox generations (each in flight for minutes, polled at most every second) driven by two "
        "`reelgate worker --concurrency 16` processes with the default heartbeat (2 s), "
        'through a TCP proxy to PostgreSQL. "Moved again" = the generation\'s status or poll count changed after '
        "the event; the figure is the slowest generation's wait. Reference: the same wait measured over a quiet "
        f"window just before. The database outage refuses connections for {OUTAGE_SECONDS:g} s; its figure counts "
        "from the start of the outage."
    )
    return section


def _measure(section: Section, url: str, jobs: int) -> None:
    run_dir = new_run_dir("recovery")
    port = int(url.split("@127.0.0.1:", 1)[1].split("/", 1)[0]) if "@127.0.0.1:" in url else 5432
    proxy = DroppingProxy(port)
    proxied = url.replace(f":{port}/", f":{proxy.port}/")
    data = run_dir / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "PYTHONPATH": str(ROOT),
        "REELGATE_DATABASE_URL": proxied,
        "REELGATE_DATA_DIR": str(data),  # shared: the sandbox keeps its jobs here
        "REELGATE_SECRET_KEY": "reelgate-bench-secret-key-not-for-production",
        "REELGATE_EMBEDDED_WORKER": "false",
        "REELGATE_SANDBOX_DELAY_SECONDS": "600",
        "REELGATE_POLL_INITIAL_SECONDS": "0.5",
        "REELGATE_POLL_MAX_SECONDS": "1",
        "REELGATE_MAX_IN_FLIGHT": "100000",
        "REELGATE_LOG_LEVEL": "WARNING",
    }
    subprocess.run([PYTHON, "-m", "reelgate", "migrate"], env=env, check=True, capture_output=True, cwd=ROOT)
    values = fixtures.settings_values(data, url, max_in_flight=100_000)
    asyncio.run(_create(values, jobs))
    workers = [
        spawn(
            f"worker{n}",
            SERVER_CPU,
            [PYTHON, "-m", "reelgate", "worker", "--concurrency", "16"],
            env=env,
            run_dir=run_dir,
        )
        for n in range(2)
    ]
    try:
        _wait_until(values, lambda rows: sum(status == "processing" for status, _ in rows.values()) >= jobs, 120)
        reference = _time_until_all_move(values, lambda: None, limit=30)
        kill = _time_until_all_move(values, lambda: os.kill(workers[0].pid, signal.SIGKILL), limit=60)
        outage = _time_until_all_move(values, lambda: proxy.outage(OUTAGE_SECONDS), limit=60)
    finally:
        for worker in workers:
            worker.stop()
        proxy.close()
    section.rows.append(["worker SIGKILLed", str(kill[1]), f"{kill[0]:.1f}", f"{reference[0]:.1f}"])
    section.rows.append(
        [
            f"PostgreSQL down {OUTAGE_SECONDS:g} s (every connection dropped)",
            str(outage[1]),
            f"{outage[0]:.1f}",
            f"{reference[0]:.1f}",
        ]
    )


async def _create(values: dict[str, Any], jobs: int) -> None:
    async with fixtures.context(values) as ctx:
        user_id, _ = await fixtures.user_with_key(ctx)
        for _ in range(jobs):  # no wake-up from here: the workers' timed scans find them
            await generations.create_generation(ctx, user_id, ORDER)


def _snapshot(values: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Read straight from PostgreSQL (not through the proxy), so the observer never sees the outage."""
    with psycopg.connect(values["database_url"]) as conn:
        rows = conn.execute(_ACTIVE).fetchall()
    return {gid: (status, int(polls)) for gid, status, polls in rows}


def _wait_until(values: dict[str, Any], done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done(_snapshot(values)):
        if time.monotonic() > deadline:
            raise RuntimeError("the generations never all reached processing")
        time.sleep(0.5)


def _time_until_all_move(values: dict[str, Any], event: Any, *, limit: float) -> tuple[float, int]:
    """(seconds until every generation in flight at the event had moved, how many there were)."""
    before = _snapshot(values)
    started = time.monotonic()
    event()
    waiting = set(before)
    while waiting and time.monotonic() - started < limit:
        now = _snapshot(values)
        waiting = {gid for gid in waiting if now.get(gid, ("ended", -1)) == before[gid]}
        time.sleep(0.1)
    if waiting:
        _explain(values, waiting)
    return (time.monotonic() - started if not waiting else float("inf")), len(before)


def _explain(values: dict[str, Any], waiting: set[str]) -> None:
    """Prints what holds the generations that never moved (for whoever reads the run's output)."""
    with psycopg.connect(values["database_url"]) as conn:
        for gid in sorted(waiting)[:5]:
            row = conn.execute(
                "SELECT status, poll_count, lease_owner, lease_until, next_poll_at, now()"
                " FROM generations WHERE id = %s",
                (gid,),
            ).fetchone()
            print(f"  stuck {gid}: {row}", flush=True)
        workers = conn.execute("SELECT id, last_heartbeat, now() FROM procrastinate_workers").fetchall()
        print(f"  workers: {workers}", flush=True)
