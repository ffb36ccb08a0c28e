"""What a submission's queue job costs, in production mode on PostgreSQL: the product's own create_generation,
in this process, once as the production API runs it (the step job deferred in the submission's transaction,
through procrastinate's `procrastinate_defer_jobs_v1`) and once with no job at all (the generation, its hold and
its idempotency key only), the two interleaved round by round. The difference is what the job costs the API and
PostgreSQL per submission."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench import fixtures
from bench.common import fmt, median, new_run_dir, pct, postgres_cpu_seconds, ratio
from bench.report import Section
from reelgate.queue import STEP_JOBS
from reelgate.services import generations
from reelgate.services.context import ServiceContext

CONCURRENCY = (1, 16)
ORDER = generations.GenerationOrder(model="sandbox-t2v", prompt="a red fox running through snow", duration=5)
VARIANTS = ("with its job", "without a job")


async def _submits(ctx: ServiceContext, user_id: str, n: int, concurrency: int) -> dict[str, float]:
    """n submissions by `concurrency` tasks: rate, latency, this process's CPU and PostgreSQL's, per submission."""
    latencies: list[float] = []
    per_task = n // concurrency

    async def one_task() -> None:
        for _ in range(per_task):
            started = time.perf_counter()
            await generations.create_generation(ctx, user_id, ORDER)
            latencies.append(time.perf_counter() - started)

    cpu0, pg0, wall0 = time.process_time(), postgres_cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(one_task() for _ in range(concurrency)))
    cpu1, pg1, wall1 = time.process_time(), postgres_cpu_seconds(), time.perf_counter()
    done = len(latencies)
    return {
        "rate": done / (wall1 - wall0),
        "p50_ms": 1000 * pct(latencies, 50),
        "p99_ms": 1000 * pct(latencies, 99),
        "cpu_ms": 1000 * (cpu1 - cpu0) / done,
        "pg_ms": 1000 * (pg1 - pg0) / done,
    }


async def _measure(values: dict[str, Any], rounds: int, n: int) -> dict[tuple[str, int], list[dict[str, float]]]:
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    async with fixtures.context(values) as ctx:
        user_id, _ = await fixtures.user_with_key(ctx)
        for variant in VARIANTS:  # warm-up: prepared statements, caches
            ctx.step_jobs = STEP_JOBS if variant == VARIANTS[0] else None
            await _submits(ctx, user_id, 50, 1)
        for r in range(rounds):
            for c in CONCURRENCY:
                order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
                for variant in order:
                    ctx.step_jobs = STEP_JOBS if variant == VARIANTS[0] else None
                    res = await _submits(ctx, user_id, n, c)
                    results.setdefault((variant, c), []).append(res)
                    print(
                        f"  round {r + 1} c={c} {variant}: {res['rate']:.0f}/s p50 {res['p50_ms']:.2f} ms "
                        f"cpu {res['cpu_ms']:.2f} ms postgresql {res['pg_ms']:.2f} ms",
                        flush=True,
                    )
    return results


def run(quick: bool, databases: list[str]) -> Section:
    rounds, n = (4, 500) if quick else (8, 1500)
    section = Section(
        "queue",
        "What a submission's queue job costs (production mode, PostgreSQL, in-process create_generation)",
        [
            "c",
            "submission",
            "submits/s",
            "p50 / p99 ms",
            "process CPU ms/submit",
            "PostgreSQL CPU ms/submit",
            "rate with job / without",
        ],
    )
    if "postgresql" not in databases:
        section.notes.append("Measured on PostgreSQL only (SQLite's embedded mode has no queue jobs): not asked for.")
        return section
    for _db, url in fixtures.database_urls(["postgresql"], section.notes):
        run_dir: Path = new_run_dir("queue")
        results = asyncio.run(_measure(fixtures.settings_values(run_dir / "data", url), rounds, n))
        for c in CONCURRENCY:
            without = median([x["rate"] for x in results[(VARIANTS[1], c)]])
            for variant in VARIANTS:
                rs = results[(variant, c)]

                def m(key: str, rs: list[dict[str, float]] = rs) -> float:
                    return median([x[key] for x in rs])

                section.rows.append(
                    [
                        str(c),
                        variant,
                        fmt(m("rate")),
                        f"{fmt(m('p50_ms'))} / {fmt(m('p99_ms'))}",
                        fmt(m("cpu_ms")),
                        fmt(m("pg_ms")),
                        f"{ratio(m('rate'), without):.2f}" if variant == VARIANTS[0] else "1",
                    ]
                )
    section.notes.append(
        f"{n} submissions per run by c tasks in this process (not pinned), {rounds} rounds with the two variants "
        "interleaved (order alternated), medians. Process CPU is this process's (the service, the data layer, "
        "psycopg); PostgreSQL CPU is every local postgres process's over the same run. No HTTP: the API route adds "
        "the same cost to both variants."
    )
    return section
