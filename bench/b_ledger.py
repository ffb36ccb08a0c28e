"""Ledger hold + capture through reelgate's code vs raw SQL doing the same updates on the same driver:
spread over 100 accounts and one hot account, SQLite (WAL, synchronous=FULL) and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

from bench import fixtures
from bench.common import PYTHON, ROOT, SERVER_CPU, fmt, median, new_run_dir, pinned, ratio
from bench.report import Section
from reelgate.settings import Settings

ACCOUNTS = 100
CONCURRENCY = 8


def _worker(url: str, mode: str, users: list[str], ops: int) -> dict[str, Any]:
    cmd = [
        PYTHON,
        "-m",
        "bench.ledger_worker",
        "--url",
        url,
        "--mode",
        mode,
        "--users",
        json.dumps(users),
        "--ops",
        str(ops),
        "--concurrency",
        str(CONCURRENCY),
    ]
    out = subprocess.run(
        pinned(SERVER_CPU, cmd),
        cwd=ROOT,
        capture_output=True,
        timeout=600,
        check=False,  # noqa: S603
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    if out.returncode:
        raise RuntimeError(out.stderr.decode()[-2000:])
    return json.loads(out.stdout)


def run(quick: bool, databases: list[str]) -> Section:
    rounds, ops = (2, 300) if quick else (3, 1500)
    section = Section(
        "ledger",
        "Ledger hold + capture: reelgate's ledger vs raw SQL doing the same updates",
        [
            "database",
            "accounts",
            "ours pairs/s",
            "raw pairs/s",
            "ratio ours/raw",
            "ours p50 / p99 ms",
            "raw p50 / p99 ms",
            "CPU ms/pair ours / raw",
        ],
    )
    for db, url in fixtures.database_urls(databases, section.notes):
        _one(section, db, url, rounds, ops)
    section.notes.append(
        f"Each pair is two transactions (hold: conditional balance update + hold entry; capture: capture entry "
        f"+ balance update), as the submit and the terminal transition run them. {CONCURRENCY} concurrent tasks, "
        f"{ops} pairs per run, {rounds} interleaved rounds, medians shown. The code under test runs in a process "
        f"pinned to CPU {SERVER_CPU}; PostgreSQL itself is not pinned. Raw = the same SQL statements on the same "
        "driver without reelgate's data layer (stdlib sqlite3 with one thread hop per transaction; psycopg async). "
        "`reelgate ledger check` invariant verified after each "
        "database."
    )
    return section


def _one(section: Section, db: str, url: str | None, rounds: int, ops: int) -> None:
    run_dir = new_run_dir(f"ledger-{db}")
    values = fixtures.settings_values(run_dir / "data", url)

    async def setup() -> tuple[str, list[str]]:
        async with fixtures.context(values) as ctx:
            users = [(await fixtures.user_with_key(ctx))[0] for _ in range(ACCOUNTS)]
            return Settings(**values).resolved_database_url, users

    db_url, users = asyncio.run(setup())
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in range(rounds):
        for pattern, accounts in (("spread", users), ("hot", users[:1])):
            modes = ["ours", "raw"] if r % 2 == 0 else ["raw", "ours"]
            for mode in modes:
                res = _worker(db_url, mode, accounts, ops)
                results.setdefault((pattern, mode), []).append(res)
                print(
                    f"  [{db}] round {r + 1} {pattern} {mode}: {res['ops_per_s']:.0f} pairs/s "
                    f"p50 {res['p50_ms']:.2f} p99 {res['p99_ms']:.2f} cpu {res['cpu_ms_per_op']:.2f} ms",
                    flush=True,
                )

    async def check() -> int:
        from reelgate.services.ledger import check_ledger

        async with fixtures.context(values) as ctx:
            return len(await check_ledger(ctx))

    problems = asyncio.run(check())
    for pattern in ("spread", "hot"):
        o, w = results[(pattern, "ours")], results[(pattern, "raw")]

        def m(rs: list[dict[str, Any]], k: str) -> float:
            return median([x[k] for x in rs])

        section.rows.append(
            [
                db,
                "100 (spread)" if pattern == "spread" else "1 (hot)",
                fmt(m(o, "ops_per_s")),
                fmt(m(w, "ops_per_s")),
                f"{ratio(m(o, 'ops_per_s'), m(w, 'ops_per_s')):.2f}",
                f"{fmt(m(o, 'p50_ms'))} / {fmt(m(o, 'p99_ms'))}",
                f"{fmt(m(w, 'p50_ms'))} / {fmt(m(w, 'p99_ms'))}",
                f"{fmt(m(o, 'cpu_ms_per_op'))} / {fmt(m(w, 'cpu_ms_per_op'))}",
            ]
        )
    section.notes.append(
        f"{db}: ledger invariant after the runs: {'holds' if not problems else f'{problems} problems'}."
    )
