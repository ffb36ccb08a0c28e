"""Production mode under load: 2 API and 2 worker processes on PostgreSQL and an S3 server, 200 sandbox
generations from 20 users at once, one worker SIGKILLed mid-run; every job ends once, nothing is paid twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import httpx
import pytest

from reelgate.bootstrap import build_context, close_context
from reelgate.db.records import Generation
from reelgate.db.sql import columns, query
from reelgate.services import accounts
from reelgate.settings import Settings
from tests.conftest import METRICS_HEADERS, METRICS_TOKEN
from tests.production.fleet import REELGATE, Fleet, free_port, wait_http

pytestmark = pytest.mark.slow

USERS, PER_USER = 20, 10
TOTAL = USERS * PER_USER
ORDER = {"model": "sandbox-t2v", "prompt": "a paper boat on a pond", "duration": 1, "resolution": "480p"}


def _environment(tmp_path: Path, database_url: str, endpoint: str, bucket: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGATE_", "AWS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's fixed test credentials
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        REELGATE_DATA_DIR=str(tmp_path / "data"),  # shared: the sandbox provider spools its jobs here
        REELGATE_DATABASE_URL=database_url,
        REELGATE_STORAGE_URL=f"s3://{bucket}/media",
        REELGATE_S3_ENDPOINT_URL=endpoint,
        REELGATE_SECRET_KEY="many-processes-test-secret-key",
        REELGATE_METRICS_TOKEN=METRICS_TOKEN,
        REELGATE_EMBEDDED_WORKER="false",
        REELGATE_SANDBOX_DELAY_SECONDS="0.5",
        REELGATE_POLL_INITIAL_SECONDS="0.3",
        REELGATE_POLL_MAX_SECONDS="1",
        REELGATE_QUEUE_POLL_SECONDS="0.2",
        REELGATE_QUEUE_HEARTBEAT_SECONDS="1",
        REELGATE_RECONCILE_INTERVAL_SECONDS="1",
        REELGATE_LEASE_SECONDS="10",
        REELGATE_LOG_JSON="true",
        REELGATE_LOG_LEVEL="WARNING",
    )
    return env


async def _make_users(settings: Settings) -> list[str]:
    ctx = await build_context(settings, migrate=False)
    try:
        keys = []
        for n in range(USERS):
            user = await accounts.create_user(ctx, f"load-{n}@example.com", "correct horse battery", credits=1000)
            keys.append((await accounts.create_api_key(ctx, user.id, "load")).secret)
        return keys
    finally:
        await close_context(ctx)


async def _submit_all(api_urls: list[str], keys: list[str], retries: list[int]) -> list[str]:
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(n: int) -> str:
            # A well-behaved client: an Idempotency-Key, and retries with backoff when told to (503/429).
            headers = {"Authorization": f"Bearer {keys[n % USERS]}", "Idempotency-Key": f"load-{n}"}
            for attempt in range(6):
                response = await client.post(
                    f"{api_urls[(n + attempt) % len(api_urls)]}/api/v1/generations",
                    headers=headers,
                    json={**ORDER, "seed": n},
                )
                if response.status_code not in {429, 503}:
                    break
                retries.append(n)
                await asyncio.sleep(0.5 * 2**attempt)
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        return list(await asyncio.gather(*(one(n) for n in range(TOTAL))))


_COUNTS = query("SELECT status, count(*) FROM generations GROUP BY status")
_GENERATIONS = query(f"SELECT {columns(Generation)} FROM generations", row=Generation)
_EVENTS = query("SELECT generation_id, to_status, count(*) FROM generation_events GROUP BY generation_id, to_status")


async def _counts(settings: Settings) -> dict[str, int]:
    ctx = await build_context(settings, migrate=False)
    try:
        rows = await ctx.db.read(lambda tx: tx.all(_COUNTS))
        return {status: int(count) for status, count in rows}
    finally:
        await close_context(ctx)


async def _facts(settings: Settings) -> tuple[list[Generation], dict[tuple[str, str], int]]:
    ctx = await build_context(settings, migrate=False)
    try:
        generations, events = await ctx.db.read(lambda tx: (tx.all(_GENERATIONS), tx.all(_EVENTS)), snapshot=True)
        return generations, {(gid, status): int(n) for gid, status, n in events}
    finally:
        await close_context(ctx)


def test_two_apis_two_workers_200_generations_and_a_sigkill(
    tmp_path: Path, pg_database_url: str, s3_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    bucket = "reelgate-load"
    env = _environment(tmp_path, pg_database_url, s3_server, bucket)
    boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    subprocess.run([*REELGATE, "migrate"], env=env, check=True, capture_output=True)
    settings = Settings(
        database_url=pg_database_url, data_dir=tmp_path / "data", secret_key="many-processes-test-secret-key"
    )
    keys = asyncio.run(_make_users(settings))

    logs = Path(os.environ.get("REELGATE_TEST_LOG_DIR", tmp_path))  # set it to keep the processes' logs
    logs.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(env, logs)
    ports = [free_port(), free_port()]
    try:
        for n, port in enumerate(ports):
            fleet.start(f"api{n}", "serve", "--port", str(port), REELGATE_DATABASE_POOL_SIZE="6")
        # Connections stay well inside PostgreSQL's default 100: APIs 2 x (18 + 4), workers 2 x (12 + 10).
        doomed = fleet.start("worker0", "worker", "--concurrency", "8", REELGATE_DATABASE_POOL_SIZE="4")
        fleet.start("worker1", "worker", "--concurrency", "8", REELGATE_DATABASE_POOL_SIZE="4")
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            wait_http(f"{url}/healthz")
        ready_at = time.monotonic()

        retries: list[int] = []
        ids = asyncio.run(_submit_all(urls, keys, retries))
        accepted_at = time.monotonic()
        assert len(set(ids)) == TOTAL

        # SIGKILL one worker while work is in flight: some done, most not.
        while asyncio.run(_counts(settings)).get("succeeded", 0) < TOTAL // 5:
            time.sleep(0.2)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        killed_at, at_kill = time.monotonic(), asyncio.run(_counts(settings))

        deadline = time.monotonic() + 150
        while True:
            counts = asyncio.run(_counts(settings))
            if sum(n for s, n in counts.items() if s in {"succeeded", "failed", "canceled", "expired"}) == TOTAL:
                break
            assert time.monotonic() < deadline, f"unfinished after the kill: {counts}"
            time.sleep(0.5)
        finished_at = time.monotonic()

        metrics = httpx.get(f"{urls[0]}/metrics", headers=METRICS_HEADERS).text
        ready = httpx.get(f"{urls[1]}/readyz").json()
        ledger = subprocess.run([*REELGATE, "ledger", "check"], env=env, capture_output=True, text=True)
    finally:
        fleet.stop()

    generations, events = asyncio.run(_facts(settings))
    assert counts == {"succeeded": TOTAL}, counts
    # One provider job per generation: one submission each, and one spooled job per generation.
    assert all(events.get((g.id, "submitting")) == 1 for g in generations)
    assert all(events.get((g.id, "succeeded")) == 1 for g in generations)
    spooled = {p.name.removesuffix(".json") for p in (tmp_path / "data" / "sandbox").glob("sbx_*.json")}
    assert spooled == {f"sbx_{g.id}" for g in generations}
    assert len({g.provider_job_id for g in generations}) == TOTAL
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for generation in generations:
        head = s3.head_object(Bucket=bucket, Key=f"media/{generation.output_key}")
        assert head["ContentLength"] == generation.output_size, generation.id
        assert head["Metadata"]["sha256"] == generation.output_sha256, generation.id

    assert ready["checks"]["queue"]["ok"] and ready["checks"]["storage"]["ok"], ready
    assert 'reelgate_generations{model="sandbox-t2v",status="succeeded"} 200.0' in metrics
    assert "reelgate_queue_depth" in metrics and "reelgate_credits_held 0.0" in metrics
    for log in logs.glob("*.log"):
        assert "many-processes-test-secret-key" not in log.read_text(errors="replace")
    with capsys.disabled():
        print(
            f"\nmany processes: {TOTAL} generations from {USERS} users; processes ready in "
            f"{ready_at - started:.1f}s, all accepted in {accepted_at - ready_at:.1f}s ({len(retries)} retried "
            f"submits), worker killed at "
            f"{killed_at - ready_at:.1f}s with {at_kill}, all finished {finished_at - ready_at:.1f}s after "
            f"the first submit ({finished_at - killed_at:.1f}s after the kill); test took "
            f"{time.monotonic() - started:.1f}s"
        )
