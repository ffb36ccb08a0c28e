"""Workers tracking 10,000 in-flight provider jobs by polling Replicate's loopback simulator: the embedded
worker loop (one process, SQLite or PostgreSQL) and production mode's two `reelgate worker` processes
(PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import fixtures
from bench.common import CLIENT_CPU, PYTHON, SERVER_CPU, fmt, new_run_dir, pct, spawn
from bench.report import Section

JOBS = 10_000
POLL_MAX = 60.0  # the default REELGATE_POLL_MAX_SECONDS
# When the first polls fall due, counted from writing the rows. The workers start after that: two processes importing
# the application on one pinned core take about 7 s, and polls due before a worker exists measure its start-up, not
# whether it keeps up (the recovery benchmark measures a worker's absence). 12 s puts the first due polls ~5 s into
# the workers' run.
FIRST_DUE_AFTER = 12.0
# How the generations are tracked: the embedded worker loop in one process, or (PostgreSQL only) production
# mode's workers, as many processes as QUEUE_WORKERS, all pinned to the same core.
EMBEDDED = "embedded loop, 1 process"
QUEUE_WORKERS = 2
PRODUCTION = f"production, {QUEUE_WORKERS} × `reelgate worker`"


def run(quick: bool, databases: list[str], jobs: int = JOBS) -> Section:
    seconds = 45.0 if quick else 120.0
    section = Section(
        "inflight",
        f"Workers tracking {jobs:,} in-flight provider jobs (Replicate simulator, loopback)",
        [
            "database",
            "workers",
            "polls/s (needed)",
            "CPU ms/poll",
            "worker CPU share",
            "lag p50 / p99 / max s",
            "lag 2nd half p50 / p99 s",
            "RSS start → end MB",
        ],
    )
    for db, url in fixtures.database_urls(databases, section.notes):
        _one(section, db, url, seconds, jobs)
    section.notes.append(
        f"Steady state of long jobs: each generation has been polled 30 times, so its next poll comes after the "
        f"default maximum interval ({POLL_MAX:.0f} s, jittered ±20 %); the first polls are spread evenly over "
        f"{POLL_MAX:.0f} s, so keeping up needs {jobs / POLL_MAX:.0f} polls/s. Run for {seconds:.0f} s. Embedded: "
        f"reelgate's own loop (`Worker`, default concurrency: 4 steps, 32 polls) in one process; production: "
        f"{QUEUE_WORKERS} workers as `reelgate worker` runs them (default concurrency: 4 steps, 32 "
        "polls each; polls found in the generations table, claimed in batches through the row's lease), their figures "
        f"summed (polls, CPU) or merged (lags). Workers pinned to CPU {SERVER_CPU}, the simulator to CPU "
        f"{CLIENT_CPU}, PostgreSQL unpinned. Lag = time the poll step read the row − its next_poll_at. "
        "CPU per poll = worker process CPU (all threads) / polls, and includes the worker's scans and queue work. "
        f"The first polls fall due {FIRST_DUE_AFTER:.0f} s after the rows are written, about 5 s into the workers' "
        "run once they have started, so over the run a little less than the needed rate is due; "
        "keeping up shows as a lag that stays flat (second half no worse than the whole run)."
    )
    return section


def _one(section: Section, db: str, url: str | None, seconds: float, jobs: int) -> None:
    run_dir = new_run_dir(f"inflight-{db}")
    sim = spawn(
        "simulator",
        CLIENT_CPU,
        [PYTHON, "-m", "bench.inflight_sim", "--count", str(jobs), "--seconds", str(seconds + 600)],
        run_dir=run_dir,
    )
    try:
        deadline = time.monotonic() + 60
        sim_url = ""
        while not sim_url and time.monotonic() < deadline:
            for line in sim.log.read_text().splitlines():
                if line.startswith("URL "):
                    sim_url = line.split()[1]
            time.sleep(0.1)
        if not sim_url:
            raise RuntimeError(f"simulator did not start: {sim.log.read_text()[-2000:]}")
        results = {}
        for variant in (EMBEDDED, PRODUCTION) if url is not None else (EMBEDDED,):
            results[variant] = _variant(run_dir, variant, url, sim_url, seconds, jobs)
    finally:
        sim.stop()
    (run_dir / "result.json").write_text(json.dumps(results, indent=1))
    for variant, r in results.items():
        print(
            f"  [{db} {variant}] {r['polls']} polls in {r['seconds']:.0f}s: {r['polls_per_s']:.1f}/s, "
            f"cpu {r['cpu_ms_per_poll']:.2f} ms/poll, lag p50 {r['lag_p50_s']:.2f}s p99 {r['lag_p99_s']:.2f}s",
            flush=True,
        )
        section.rows.append(
            [
                db,
                variant,
                f"{fmt(r['polls_per_s'])} ({jobs / POLL_MAX:.0f})",
                fmt(r["cpu_ms_per_poll"]),
                f"{r['cpu_share']:.0%}",
                f"{fmt(r['lag_p50_s'])} / {fmt(r['lag_p99_s'])} / {fmt(r['lag_max_s'])}",
                f"{fmt(r['lag_second_half_p50_s'])} / {fmt(r['lag_second_half_p99_s'])}",
                f"{r['rss_start_mb']:.0f} → {r['rss_end_mb']:.0f}",
            ]
        )


def _variant(run_dir: Any, variant: str, url: str | None, sim_url: str, seconds: float, jobs: int) -> dict[str, Any]:
    if url is not None:  # a fresh PostgreSQL database per variant
        with fixtures.pg_database() as fresh:
            return _variant_on(run_dir, variant, fresh, sim_url, seconds, jobs)
    return _variant_on(run_dir, variant, None, sim_url, seconds, jobs)


def _variant_on(run_dir: Any, variant: str, url: str | None, sim_url: str, seconds: float, jobs: int) -> dict[str, Any]:
    production = variant == PRODUCTION
    values = fixtures.settings_values(
        run_dir / f"data-{'production' if production else 'embedded'}",
        url,
        replicate_base_url=sim_url,
        poll_max_seconds=POLL_MAX,
    )

    async def setup() -> None:
        async with fixtures.context(values) as ctx:
            user_id, _ = await fixtures.user_with_key(ctx)
            start = datetime.now(UTC) + timedelta(seconds=FIRST_DUE_AFTER)
            rng = random.Random(7)
            due = [start + timedelta(seconds=rng.uniform(0, POLL_MAX)) for _ in range(jobs)]
            # Steady state in both modes: the rows alone (production mode's poll budget, like the embedded loop, finds
            # due polls in the generations table; no queue job stands for a waiting poll).
            await fixtures.insert_generations(ctx, user_id, jobs, next_poll_at=due, poll_count=30)

    asyncio.run(setup())
    workers = [
        spawn(
            f"worker-{'production' if production else 'embedded'}-{n}",
            SERVER_CPU,
            [
                PYTHON,
                "-m",
                "bench.inflight_worker",
                "--seconds",
                str(seconds),
                "--mode",
                "queue" if production else "embedded",
            ],
            env=fixtures.settings_env(values),
            run_dir=run_dir,
        )
        for n in range(QUEUE_WORKERS if production else 1)
    ]
    results = []
    for worker in workers:
        worker.popen.wait(seconds + 300)
        for line in worker.log.read_text().splitlines():
            if line.startswith("RESULT "):
                results.append(dict(json.loads(line[7:])))
                break
        else:
            raise RuntimeError(f"worker failed: {worker.log.read_text()[-3000:]}")
    return results[0] if len(results) == 1 else _merged(results, seconds)


def _merged(results: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Several workers' runs as one: polls and CPU summed, lags merged."""
    lags = [(t, lag) for r in results for t, lag in r["lags"]]
    values = sorted(lag for _, lag in lags)
    late = sorted(lag for t, lag in lags if t >= seconds / 2)
    elapsed = max(r["seconds"] for r in results)
    polls = sum(r["polls"] for r in results)
    cpu = sum(r["cpu_s"] for r in results)
    return {
        "polls": polls,
        "seconds": elapsed,
        "polls_per_s": polls / elapsed,
        "cpu_s": cpu,
        "cpu_ms_per_poll": cpu * 1000 / polls if polls else float("nan"),
        "cpu_share": cpu / elapsed,
        "lag_p50_s": pct(values, 50),
        "lag_p99_s": pct(values, 99),
        "lag_max_s": values[-1] if values else float("nan"),
        "lag_second_half_p50_s": pct(late, 50),
        "lag_second_half_p99_s": pct(late, 99),
        "rss_start_mb": sum(r["rss_start_mb"] for r in results),
        "rss_end_mb": sum(r["rss_end_mb"] for r in results),
    }
