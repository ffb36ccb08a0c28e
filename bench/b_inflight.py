"""One worker tracking 10,000 in-flight provider jobs by polling Replicate's loopback simulator."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import fixtures
from bench.common import CLIENT_CPU, PYTHON, SERVER_CPU, fmt, new_run_dir, spawn
from bench.report import Section

JOBS = 10_000
POLL_MAX = 60.0  # the default REELGATE_POLL_MAX_SECONDS
# The product as it is. (An earlier "proposed" variant, the index-range due-work scan tried here first, is in
# the product now; RESULTS.md keeps its figures.)
VARIANTS = ("current",)


def run(quick: bool, databases: list[str], jobs: int = JOBS) -> Section:
    seconds = 45.0 if quick else 120.0
    section = Section(
        "inflight",
        f"One worker tracking {jobs:,} in-flight provider jobs (Replicate simulator, loopback)",
        [
            "database",
            "variant",
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
        f"{POLL_MAX:.0f} s, so keeping up needs {jobs / POLL_MAX:.0f} polls/s. Run for {seconds:.0f} s. The worker "
        f"is reelgate's own loop (`Worker`, default concurrency: 4 steps, 32 polls) in a process pinned to CPU "
        f"{SERVER_CPU}; the "
        f"simulator is pinned to CPU {CLIENT_CPU}. Lag = time the poll step read the row − its next_poll_at. "
        "CPU per poll = worker process CPU (all threads) / polls, and includes the worker's due-work scans. "
        "The first polls fall due 5 s after the start, so over the run a little less than the needed rate is due; "
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
        for variant in VARIANTS:
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
    values = fixtures.settings_values(
        run_dir / f"data-{variant}", url, replicate_base_url=sim_url, poll_max_seconds=POLL_MAX
    )

    async def setup() -> None:
        async with fixtures.context(values) as ctx:
            user_id, _ = await fixtures.user_with_key(ctx)
            start = datetime.now(UTC) + timedelta(seconds=5)
            rng = random.Random(7)
            due = [start + timedelta(seconds=rng.uniform(0, POLL_MAX)) for _ in range(jobs)]
            await fixtures.insert_generations(ctx, user_id, jobs, next_poll_at=due, poll_count=30)

    asyncio.run(setup())
    worker = spawn(
        f"worker-{variant}",
        SERVER_CPU,
        [PYTHON, "-m", "bench.inflight_worker", "--seconds", str(seconds), "--variant", variant],
        env=fixtures.settings_env(values),
        run_dir=run_dir,
    )
    worker.popen.wait(seconds + 300)
    for line in worker.log.read_text().splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"worker failed: {worker.log.read_text()[-3000:]}")
