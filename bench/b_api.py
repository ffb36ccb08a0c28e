"""Submit path and webhook ingest against a trivial FastAPI endpoint on the same server, interleaved.

Submit: POST /api/v1/generations (auth → idempotency → quote → hold → insert → enqueue → 202), a fresh
Idempotency-Key each. Webhook: POST /webhooks/replicate?g=&t= with a Standard-Webhooks-signed `succeeded`
prediction for a distinct processing generation each (verify → dedupe → transition → commit)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import standardwebhooks

from bench import fixtures
from bench.common import Load, Proc, fmt, median, new_run_dir, ratio, run_load
from bench.report import Section
from reelgate.services.webhook_links import webhook_url

CONCURRENCY = (1, 16)
SUBMIT_BODY = json.dumps({"model": "sandbox-t2v", "prompt": "a red fox running through snow", "duration": 5})


def webhook_requests(gens: list[Any], paths: dict[str, str]) -> list[dict[str, Any]]:
    """Replicate's `succeeded` delivery for each generation, posted to the address its submit would have given."""
    signer = standardwebhooks.Webhook(fixtures.REPLICATE_SECRET)
    now = datetime.now(UTC)
    out = []
    for g in gens:
        body = json.dumps(
            {
                "id": g.provider_job_id,
                "model": "wan-video/wan-2.1-t2v-14b",
                "version": "a" * 64,
                "input": {},
                "output": "http://127.0.0.1:9/files/out.mp4",
                "logs": "",
                "error": None,
                "status": "succeeded",
                "created_at": now.isoformat(),
                "metrics": {"predict_time": 1.5},
            }
        )
        msg_id = f"msg_{g.id}"
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(msg_id, now, body),
        }
        out.append(
            {
                "method": "POST",
                "path": paths[g.id],
                "headers": headers,
                "body": body,
            }
        )
    return out


def run(quick: bool, databases: list[str]) -> Section:
    rounds, n, warm = (2, 400, 50) if quick else (3, 2000, 100)
    section = Section(
        "api",
        "Submit path and webhook ingest vs a trivial endpoint (same server)",
        [
            "database",
            "c",
            "route",
            "rps (ratio to trivial)",
            "p50 ms (added)",
            "p99 ms (added)",
            "server CPU ms/req",
            "PostgreSQL CPU ms/req",
            "errors",
        ],
    )
    with contextlib.ExitStack() as stack:
        opened = fixtures.open_databases(stack, databases, section.notes)
        targets = [_Target.start(stack, db, url, rounds, n, warm) for db, url in opened]
        _measure(targets, rounds, n, warm)
        rss = {target.db: target.server.rss() for target in targets}
    for target in targets:
        target.tabulate(section)
        section.notes.append(f"{target.db}: server RSS after the run {rss[target.db]:.0f} MB.")
    section.notes.append(
        f"{rounds} rounds; in each, every database's server in turn (the order rotated each round, both servers up "
        "for the whole run, so a ratio between databases compares moments seconds apart), and on each the trivial, "
        f"submit and webhook runs (their order rotated too); {warm} warm-up + {n} measured requests per run, closed "
        "loop with keep-alive; figures are medians over rounds. Server CPU per request from /proc over the measured "
        "part; PostgreSQL CPU per request is every local postgres process's over the same part (SQLite's work is "
        "inside the server's figure). SQLite runs with synchronous=FULL (an fsync per commit) on this machine's "
        "virtual disk."
    )
    return section


@dataclass
class _Target:
    """One database's server, its seeded generations and what was measured on it."""

    db: str
    server: Proc
    run_dir: Path
    auth: dict[str, str]
    gens: list[Any]
    hook_paths: dict[str, str]
    results: dict[tuple[str, int], list[Load]] = field(default_factory=dict)
    used: int = 0

    @classmethod
    def start(cls, stack: contextlib.ExitStack, db: str, url: str | None, rounds: int, n: int, warm: int) -> _Target:
        run_dir = new_run_dir(f"api-{db}")
        values = fixtures.settings_values(run_dir / "data", url)
        count = rounds * len(CONCURRENCY) * (n + warm)

        async def setup() -> tuple[str, list[Any], dict[str, str]]:
            async with fixtures.context(values) as ctx:
                user_id, key = await fixtures.user_with_key(ctx)
                gens = await fixtures.insert_generations(ctx, user_id, count, next_poll_at=None)
                hook_paths = {}
                for g in gens:
                    address = urlsplit(webhook_url(ctx, g))
                    hook_paths[g.id] = f"{address.path}?{address.query}"
                return key, gens, hook_paths

        key, gens, hook_paths = asyncio.run(setup())
        server = fixtures.spawn_bench_server(db, values, run_dir)
        stack.callback(server.stop)
        return cls(db, server, run_dir, {"authorization": f"Bearer {key}"}, gens, hook_paths)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def plans(self, r: int, c: int, per_run: int) -> dict[str, list[dict[str, Any]]]:
        hooks = webhook_requests(self.gens[self.used : self.used + per_run], self.hook_paths)
        self.used += per_run
        submit = {
            "method": "POST",
            "path": "/api/v1/generations",
            "body": SUBMIT_BODY,
            "headers": {**self.auth, "content-type": "application/json", "idempotency-key": f"bench-{r}-{c}-{{i}}"},
        }
        return {"trivial": [{"method": "GET", "path": "/bench/trivial"}], "submit": [submit], "webhook": hooks}

    def tabulate(self, section: Section) -> None:
        for c in CONCURRENCY:
            ref = self.results[("trivial", c)]
            ref_rps, ref50, ref99 = (median([getattr(x, a) for x in ref]) for a in ("rps", "p50_ms", "p99_ms"))
            for route in ("trivial", "submit", "webhook"):
                runs = self.results[(route, c)]
                rps, p50, p99, cpu, db_cpu = (
                    median([getattr(x, a) for x in runs])
                    for a in ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_req", "database_cpu_ms_per_req")
                )
                db_cpu_cell = fmt(db_cpu) if self.db == "postgresql" else "-"
                errors = str(sum(x.errors for x in runs))
                if route == "trivial":
                    row = [self.db, str(c), route, f"{fmt(rps)} (1)", fmt(p50), fmt(p99), fmt(cpu), db_cpu_cell, errors]
                else:
                    row = [
                        self.db,
                        str(c),
                        route,
                        f"{fmt(rps)} ({ratio(rps, ref_rps):.3f})",
                        f"{fmt(p50)} (+{fmt(p50 - ref50)})",
                        f"{fmt(p99)} (+{fmt(p99 - ref99)})",
                        fmt(cpu),
                        db_cpu_cell,
                        errors,
                    ]
                section.rows.append(row)


def _measure(targets: list[_Target], rounds: int, n: int, warm: int) -> None:
    for r in range(rounds):
        for c in CONCURRENCY:
            for target in targets[r % len(targets) :] + targets[: r % len(targets)]:
                plans = target.plans(r, c, n + warm)
                order = ["trivial", "submit", "webhook"]
                for route in order[r % 3 :] + order[: r % 3]:
                    load = run_load(
                        target.base,
                        plans[route],
                        n=n,
                        concurrency=c,
                        warmup=warm,
                        run_dir=target.run_dir,
                        server=target.server,
                        label=route,
                    )
                    target.results.setdefault((route, c), []).append(load)
                    print(
                        f"  [{target.db}] round {r + 1} c={c} {route}: {load.rps:.0f} rps p50 {load.p50_ms:.2f} ms "
                        f"p99 {load.p99_ms:.2f} ms errors {load.errors} {load.statuses}",
                        flush=True,
                    )
