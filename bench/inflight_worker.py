"""One reelgate worker tracking the in-flight generations already in the database, for a bounded time: the
embedded worker loop (`--mode embedded`) or production mode's worker as `reelgate worker` runs it
(`--mode queue`), default concurrency. Measures process CPU per poll, lag of each poll behind its
`next_poll_at`, and RSS; prints a JSON summary (with every lag in queue mode, so that several workers' runs
can be merged)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import UTC
from typing import Any

from reelgate.bootstrap import build_context, close_context
from reelgate.queue import Queue
from reelgate.services import pipeline
from reelgate.settings import Settings
from reelgate.worker import Worker, register_default_housekeeping


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


async def main(seconds: float, mode: str) -> dict[str, Any]:
    settings = Settings(**json.loads(os.environ["BENCH_SETTINGS"]))
    ctx = await build_context(settings, migrate=False)
    lags: list[tuple[float, float]] = []  # (seconds since start, lag seconds)
    original_load = pipeline._load
    started = time.monotonic()

    async def timed_load(c: Any, generation_id: str) -> Any:
        generation = await original_load(c, generation_id)
        if generation is not None and generation.status == "processing" and generation.next_poll_at is not None:
            due = generation.next_poll_at
            due = due if due.tzinfo else due.replace(tzinfo=UTC)
            lags.append((time.monotonic() - started, (ctx.clock() - due).total_seconds()))
        return generation

    pipeline._load = timed_load  # the poll step's first read: where "actual poll time" is observed
    rss0 = _rss_mb()
    cpu0 = time.process_time()
    if mode == "queue":
        register_default_housekeeping()
        concurrency = settings.worker_concurrency
        polls = settings.poll_concurrency_for(concurrency)
        queue = Queue(settings, pool_size=4)  # as `reelgate worker` sizes it
        await queue.open(ctx)
        running = asyncio.create_task(queue.run_worker(concurrency=concurrency, poll_concurrency=polls))
    else:
        worker = Worker(ctx, concurrency=settings.worker_concurrency)
        await worker.start()
    samples = []
    while time.monotonic() - started < seconds:
        await asyncio.sleep(1.0)
        samples.append({"t": round(time.monotonic() - started, 1), "polls": len(lags), "rss_mb": round(_rss_mb(), 1)})
    cpu = time.process_time() - cpu0
    elapsed = time.monotonic() - started
    if mode == "queue":
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await queue.close()
    else:
        await worker.stop()
    await close_context(ctx)
    values = sorted(lag for _, lag in lags)
    half = seconds / 2
    late = sorted(lag for t, lag in lags if t >= half)
    return {
        "polls": len(lags),
        "seconds": elapsed,
        "polls_per_s": len(lags) / elapsed,
        "cpu_s": cpu,
        "cpu_ms_per_poll": cpu * 1000 / len(lags) if lags else float("nan"),
        "cpu_share": cpu / elapsed,
        "lag_p50_s": _pct(values, 50),
        "lag_p99_s": _pct(values, 99),
        "lag_max_s": values[-1] if values else float("nan"),
        "lag_second_half_p50_s": _pct(late, 50),
        "lag_second_half_p99_s": _pct(late, 99),
        "rss_start_mb": rss0,
        "rss_end_mb": _rss_mb(),
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "samples": samples,
        "lags": [[round(t, 3), round(lag, 4)] for t, lag in lags] if mode == "queue" else [],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--mode", choices=["embedded", "queue"], default="embedded")
    a = parser.parse_args()
    import uvloop

    print("RESULT " + json.dumps(uvloop.run(main(a.seconds, a.mode))), flush=True)
