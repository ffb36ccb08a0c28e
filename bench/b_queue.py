"""What waking the workers costs a submission, in production mode on PostgreSQL: the product's own
create_generation, in this process, in three variants interleaved round by round: as the production API runs it
(a NOTIFY sent with the submission's COMMIT), as an earlier version ran it (a procrastinate job per submission,
deferred in its transaction through procrastinate's `procrastinate_defer_jobs_v1`), and with no wake-up at all
(the generation, its hold and its idempotency key only). The differences are what each costs the API and
PostgreSQL per submission."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench import fixtures
from bench.common import fmt, median, new_run_dir, ratio, run_in_process
from bench.report import Section
from reelgate.db.queries.step_wakeups import steps_due_notice
from reelgate.db.sql import BeforeCommit, Query, query
from reelgate.services import generations
from reelgate.services.context import ServiceContext

CONCURRENCY = (1, 16)
ORDER = generations.GenerationOrder(model="sandbox-t2v", prompt="a red fox running through snow", duration=5)
# The earlier version's per-submission job, as it deferred it: one job per generation, locked by its id.
_DEFER_JOBS = query(
    """
    SELECT procrastinate_defer_jobs_v1(array_agg(ROW('default'::varchar, 'reelgate.drive'::varchar, 0,
        d.id, d.id, jsonb_build_object('generation_id', d.id), NULL)::procrastinate_job_to_defer_v1 ORDER BY d.n))
    FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS d(id, n)
    """
)


def _procrastinate_job(generation_ids: list[Any]) -> tuple[Query, dict[str, Any]]:
    return _DEFER_JOBS, {"ids": generation_ids}


# Each variant's action with the submission's COMMIT; the last one, none, is the reference.
VARIANTS: dict[str, BeforeCommit | None] = {
    "notification (this version)": steps_due_notice,
    "procrastinate job (earlier)": _procrastinate_job,
    "no wake-up": None,
}
REFERENCE = "no wake-up"


async def _submits(ctx: ServiceContext, user_id: str, n: int, concurrency: int) -> dict[str, float]:
    """n submissions by `concurrency` tasks: rate, latency, this process's CPU and PostgreSQL's, per submission."""

    async def submit(_: int) -> None:
        await generations.create_generation(ctx, user_id, ORDER)

    return await run_in_process(submit, n, concurrency)


async def _measure(values: dict[str, Any], rounds: int, n: int) -> dict[tuple[str, int], list[dict[str, float]]]:
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    async with fixtures.context(values) as ctx:
        user_id, _ = await fixtures.user_with_key(ctx)
        for action in VARIANTS.values():  # warm-up: prepared statements, caches
            ctx.steps_due_notice = action
            await _submits(ctx, user_id, 50, 1)
        for r in range(rounds):
            for c in CONCURRENCY:
                order = list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]
                for variant in order:
                    ctx.steps_due_notice = VARIANTS[variant]
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
        "What waking the workers costs a submission (production mode, PostgreSQL, in-process create_generation)",
        [
            "c",
            "wake-up",
            "submits/s",
            "p50 / p99 ms",
            "process CPU ms/submit",
            "PostgreSQL CPU ms/submit",
            "rate / without a wake-up",
        ],
    )
    if "postgresql" not in databases:
        section.notes.append(
            "Measured on PostgreSQL only (SQLite's embedded mode wakes its worker in-process): not asked for."
        )
        return section
    for _db, url in fixtures.database_urls(["postgresql"], section.notes):
        run_dir: Path = new_run_dir("queue")
        results = asyncio.run(_measure(fixtures.settings_values(run_dir / "data", url), rounds, n))
        for c in CONCURRENCY:
            without = median([x["rate"] for x in results[(REFERENCE, c)]])
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
                        f"{ratio(m('rate'), without):.2f}" if variant != REFERENCE else "1",
                    ]
                )
    section.notes.append(
        f"{n} submissions per run by c tasks in this process (not pinned), {rounds} rounds with the variants "
        "interleaved (order reversed every other round), medians. Process CPU is this process's (the service, the "
        "data layer, psycopg); PostgreSQL CPU is every local postgres process's over the same run. No HTTP: the API "
        "route adds the same cost to every variant."
    )
    return section
