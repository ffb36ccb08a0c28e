"""Benchmark data put in place through reelgate's own services: settings, users with API keys, and
generations inserted directly in the state a benchmark needs."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.common import PYTHON, SERVER_CPU, Proc, free_port, spawn
from reelgate.bootstrap import build_context, close_context
from reelgate.db.queries.generations import insert_generation
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.ids import new_id
from reelgate.services import accounts, projects
from reelgate.services.context import ServiceContext
from reelgate.services.provider_costs import job_provider_cost_micros
from reelgate.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "REELGATE_BENCH_PG", os.environ.get("REELGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
)
REPLICATE_SECRET = "whsec_" + base64.b64encode(b"reelgate-bench-webhook-secret-0123").decode()


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def pg_database() -> Any:
    """A fresh PostgreSQL database for one benchmark, dropped afterwards."""
    name = f"reelgate_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"postgresql://{base.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_urls(databases: Sequence[str], notes: list[str]) -> Iterator[tuple[str, str | None]]:
    """`open_databases` for a benchmark that runs them one after the other: dropped once the last has run."""
    with contextlib.ExitStack() as stack:
        yield from open_databases(stack, databases, notes)


def open_databases(
    stack: contextlib.ExitStack, databases: Sequence[str], notes: list[str]
) -> list[tuple[str, str | None]]:
    """(name, url) per database, all open at once: SQLite as None (each server's own file), PostgreSQL as a fresh
    database kept until the stack closes (after the servers stop), or a note when none is reachable."""
    chosen: list[tuple[str, str | None]] = []
    for db in databases:
        if db != "postgresql":
            chosen.append((db, None))
        elif not pg_available():
            notes.append("PostgreSQL not reachable: skipped.")
        else:
            chosen.append((db, stack.enter_context(pg_database())))
    return chosen


def settings_values(data_dir: Path, database_url: str | None = None, **overrides: Any) -> dict[str, Any]:
    """JSON-able Settings values: the server process gets the same ones through BENCH_SETTINGS."""
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "database_url": database_url,
        "secret_key": "reelgate-bench-secret-key-not-for-production",
        "public_url": "http://127.0.0.1:8000",
        "embedded_worker": False,
        "signup_credits": 0,
        # Limits far above what a benchmark sends, so the figure is the path's cost, not the limiter's answer.
        "rate_limit_per_key": "100000000/minute",
        "rate_limit_per_user": "100000000/minute",
        "rate_limit_studio_per_address": "100000000/minute",  # the trivial route counts as a page
        "max_in_flight": 100_000_000,
        "replicate_api_token": "bench-token",
        "replicate_webhook_secret": REPLICATE_SECRET,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return values


def settings_env(values: dict[str, Any]) -> dict[str, str]:
    return {"BENCH_SETTINGS": json.dumps(values)}


@contextlib.asynccontextmanager
async def context(values: dict[str, Any]) -> AsyncIterator[ServiceContext]:
    """A service context for loading a benchmark's data; on PostgreSQL the database is analyzed once it is in."""
    ctx = await build_context(Settings(**values))
    try:
        yield ctx
    finally:
        await close_context(ctx)
    if str(values.get("database_url") or "").startswith("postgresql"):
        analyze(values["database_url"])


def analyze(database_url: str) -> None:
    """ANALYZE, as autovacuum does on a PostgreSQL run as shipped once a table has grown. A machine's server may run
    with autovacuum off (reelgate warns of it when it starts): its planner then never gets statistics and may take
    a user's index for a lookup by id, and the benchmark would measure that setting rather than reelgate."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")


async def user_with_key(ctx: ServiceContext, credits: int = 1_000_000_000) -> tuple[str, str]:
    user = await accounts.create_user(ctx, f"bench-{secrets.token_hex(4)}@example.com", None, credits=credits)
    key = await accounts.create_api_key(ctx, user.id, "bench")
    return user.id, key.secret


async def insert_generations(
    ctx: ServiceContext,
    user_id: str,
    count: int,
    *,
    provider: str = "replicate",
    model: str = "t2v-14B",
    status: str = "processing",
    job_ids: Sequence[str] | None = None,
    next_poll_at: Sequence[datetime | None] | None = None,
    poll_count: int = 0,
    batch: int = 2000,
    **fields: Any,
) -> list[Generation]:
    """Generations as the pipeline would have left them (no hold: these benchmarks don't settle)."""
    project_id = await projects.default_project_id(ctx, user_id)
    spec = ctx.catalog.get(model)
    now = datetime.now(UTC)
    rows: list[Generation] = []
    for i in range(count):
        rows.append(
            Generation(
                id=new_id("gen"),
                user_id=user_id,
                account_id=user_id,  # paid from the user's own wallet
                project_id=project_id,
                model=spec.id,
                provider=provider,
                provider_model=spec.provider_model,
                kind=spec.kind,
                status=status,
                progress=0,
                prompt="a red fox running through snow",
                negative_prompt=None,
                params={
                    "duration": 5,
                    "resolution": "720p",
                    "aspect_ratio": "16:9",
                    "width": 1280,
                    "height": 720,
                    "seed": 1,
                    "audio": False,
                    "enhance_prompt": False,
                    "options": {},
                },
                start_upload_id=None,
                end_upload_id=None,
                quote_total=20,
                quote_breakdown={},
                credits_held=0,
                credits_charged=0,
                credits_refunded=0,
                provider_cost_micros=0,
                provider_job_id=job_ids[i] if job_ids is not None else (f"job{i:07d}" if status != "queued" else None),
                webhook_token=secrets.token_urlsafe(24),
                error_code=None,
                error_message=None,
                needs_review=False,
                favorite=False,
                deleted_at=None,
                media_removed_at=None,
                output_key=None,
                output_content_type=None,
                output_size=None,
                output_sha256=None,
                output_meta={},
                thumbnail_key=None,
                submit_attempts=0,
                poll_count=poll_count,
                transient_errors=0,
                next_poll_at=next_poll_at[i] if next_poll_at is not None else None,
                deadline_at=now + timedelta(days=2),
                lease_owner=None,
                lease_until=None,
                callback_url=None,
                retry_of=None,
                raw_provider={},
                created_at=now,
                updated_at=now,
                submitted_at=now,
                completed_at=None,
                served_model=None,
                provider_account=None,
                enhanced_prompt=None,
            )
        )
        for name, value in fields.items():
            setattr(rows[-1], name, value)
        if status == "succeeded" and "provider_cost_micros" not in fields:  # recorded with the success
            rows[-1].provider_cost_micros = job_provider_cost_micros(ctx.catalog, rows[-1])
    for start in range(0, count, batch):
        chunk = rows[start : start + batch]

        def insert(tx: Tx, chunk: list[Generation] = chunk) -> None:
            for generation in chunk:
                insert_generation(tx, generation)

        await ctx.db.write(insert)
    return rows


def spawn_bench_server(db: str, values: dict[str, Any], run_dir: Path) -> Proc:
    """The product's app with the benchmarks' extra routes (bench/server.py), on a free port, pinned to the
    server's CPU, configured by `values`."""
    port = free_port()
    return spawn(
        f"server-{db}",
        SERVER_CPU,
        [PYTHON, "-m", "bench.server", "--port", str(port)],
        env=settings_env(values),
        port=port,
        run_dir=run_dir,
    )
