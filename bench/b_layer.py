"""The data layer without the HTTP stack, on each database: the product's submit (create_generation, with an
Idempotency-Key) and a provider's webhook (ingest_provider_webhook: Replicate's signed `succeeded` delivery for a
distinct processing generation each) called in this process, pinned to the CPU the api benchmark gives its server.

The api benchmark compares the databases behind the whole HTTP stack, which costs both the same and more than
the database paths do; here the only difference between two rows is the database. On PostgreSQL the process's
CPU is the service, psycopg and the lanes' threads; on SQLite it also holds SQLite's own work, which runs inside
the process. PostgreSQL's CPU is every local postgres process's over the same run."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from bench import fixtures
from bench.b_api import webhook_requests
from bench.common import SERVER_CPU, fmt, median, new_run_dir, ratio, run_in_process
from bench.report import Section
from reelgate.services import generations
from reelgate.services.context import ServiceContext
from reelgate.services.webhook_links import webhook_url
from reelgate.services.webhooks import ingest_provider_webhook

CONCURRENCY = (1, 16)
OPERATIONS = ("submit", "webhook")
ORDER = generations.GenerationOrder(model="sandbox-t2v", prompt="a red fox running through snow", duration=5)
WebhookCall = tuple[dict[str, str], bytes, dict[str, str]]  # headers, body, query string


@dataclass
class _Target:
    """One database's service context, its user, the webhook deliveries not yet sent and what was measured."""

    db: str
    ctx: ServiceContext
    user_id: str
    deliveries: Iterator[WebhookCall]
    results: dict[tuple[str, int], list[dict[str, float]]] = field(default_factory=dict)


async def _deliveries(ctx: ServiceContext, user_id: str, count: int) -> list[WebhookCall]:
    """A signed `succeeded` delivery for each of `count` new processing generations, with its address's query."""
    gens = await fixtures.insert_generations(ctx, user_id, count, next_poll_at=None)
    queries = {g.id: dict(parse_qsl(urlsplit(webhook_url(ctx, g)).query)) for g in gens}
    requests = webhook_requests(gens, {g.id: "" for g in gens})
    return [(r["headers"], r["body"].encode(), queries[g.id]) for g, r in zip(gens, requests, strict=True)]


def _operation(target: _Target, name: str, tag: str) -> Callable[[int], Awaitable[None]]:
    async def submit(i: int) -> None:
        await generations.create_generation(target.ctx, target.user_id, ORDER, idempotency_key=f"{tag}-{i}")

    async def webhook(_: int) -> None:
        headers, body, query = next(target.deliveries)
        outcome = await ingest_provider_webhook(target.ctx, "replicate", headers, body, query)
        if outcome != "applied":
            raise RuntimeError(f"webhook not applied: {outcome}")

    return submit if name == "submit" else webhook


async def _measure(opened: list[tuple[str, str | None]], rounds: int, n: int, warm: int) -> list[_Target]:
    per_db = rounds * len(CONCURRENCY) * (n + warm)
    async with contextlib.AsyncExitStack() as stack:
        targets = []
        for db, url in opened:
            values = fixtures.settings_values(new_run_dir(f"layer-{db}") / "data", url)
            ctx = await stack.enter_async_context(fixtures.context(values))
            user_id, _ = await fixtures.user_with_key(ctx)
            targets.append(_Target(db, ctx, user_id, iter(await _deliveries(ctx, user_id, per_db))))
        for r in range(rounds):
            for c in CONCURRENCY:
                # Databases and operations in turn, the order rotated each round: ratios compare moments seconds apart.
                for target in targets[r % len(targets) :] + targets[: r % len(targets)]:
                    for name in OPERATIONS[r % 2 :] + OPERATIONS[: r % 2]:
                        await run_in_process(_operation(target, name, f"warm-{r}-{c}"), warm, c)
                        res = await run_in_process(_operation(target, name, f"run-{r}-{c}"), n, c)
                        target.results.setdefault((name, c), []).append(res)
                        print(
                            f"  [{target.db}] round {r + 1} c={c} {name}: {res['rate']:.0f}/s p50 "
                            f"{res['p50_ms']:.2f} ms cpu {res['cpu_ms']:.3f} ms postgresql {res['pg_ms']:.3f} ms",
                            flush=True,
                        )
        return targets


@contextlib.contextmanager
def _pinned_to(cpu: int) -> Iterator[None]:
    """This process (and the threads it starts meanwhile) on one CPU, as the api benchmark's server is."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run(quick: bool, databases: list[str]) -> Section:
    rounds, n, warm = (2, 400, 50) if quick else (4, 2000, 100)
    section = Section(
        "layer",
        "The data layer without HTTP: submit and webhook ingest in-process, on each database",
        [
            "c",
            "operation",
            "database",
            "ops/s",
            "p50 ms",
            "process CPU ms/op",
            "PostgreSQL CPU ms/op",
            "rate / SQLite's",
            "process CPU / SQLite's",
        ],
    )
    with contextlib.ExitStack() as stack:
        opened = fixtures.open_databases(stack, databases, section.notes)
        with _pinned_to(int(SERVER_CPU)):
            targets = asyncio.run(_measure(opened, rounds, n, warm))
    by_db = {target.db: target for target in targets}
    for c in CONCURRENCY:
        for name in OPERATIONS:
            medians = {
                db: {
                    key: median([x[key] for x in target.results[(name, c)]])
                    for key in ("rate", "p50_ms", "cpu_ms", "pg_ms")
                }
                for db, target in by_db.items()
            }
            sqlite = medians.get("sqlite")
            for db, m in medians.items():
                versus = ("-", "-")
                if sqlite is not None and db != "sqlite":
                    versus = (f"{ratio(m['rate'], sqlite['rate']):.2f}", f"{ratio(m['cpu_ms'], sqlite['cpu_ms']):.2f}")
                section.rows.append(
                    [
                        str(c),
                        name,
                        db,
                        fmt(m["rate"]),
                        fmt(m["p50_ms"]),
                        fmt(m["cpu_ms"], 3),
                        fmt(m["pg_ms"], 3) if db == "postgresql" else "-",
                        *versus,
                    ]
                )
    section.notes.append(
        f"{rounds} rounds; in each, for c=1 then c=16, every database in turn and on each both operations (orders "
        f"rotated each round); {warm} warm-up + {n} measured operations per run by c tasks; medians over rounds. "
        f"This process pinned to CPU {SERVER_CPU} (the api benchmark's server CPU); PostgreSQL unpinned, as there. "
        "SQLite with synchronous=FULL (an fsync per commit)."
    )
    return section
