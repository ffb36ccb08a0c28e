"""Production mode across hosts: two API processes and two workers, each with its own data dir and temp dir
(as if on four machines), sharing only PostgreSQL (through a proxy that can drop every connection), an S3
server (moto, its own process) and Redis. Real provider protocols on loopback: RunPod LTX-2 answering with a
base64 video, finished by webhook and then by polling, Replicate with a URL output, Pollo driven by hand (a
failure with refund, a cancel). Mid-run one worker is SIGKILLed and another starts, and the database "restarts".
Every generation ends, nothing stays held, `reelgate ledger check` passes, the client webhook arrives, nothing
is left in the bucket's staging prefix, no API host kept media on its disk, and sign-in guesses are counted
across both API processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest

from reelgate import media_render
from reelgate.bootstrap import build_context, close_context
from reelgate.db.sql import query
from reelgate.services import accounts
from reelgate.settings import Settings
from tests.production.fleet import REELGATE, DroppingProxy, Fleet, free_port, wait_http
from tests.simulators.base import Simulator, WebhookReceiver
from tests.simulators.pollo import PolloSimulator
from tests.simulators.replicate import ReplicateSimulator
from tests.simulators.runpod import RunPodSimulator

pytestmark = pytest.mark.slow

SECRET = "many-hosts-test-secret-key-0123456789"
BUCKET = "reelgate-hosts"
PROMPT = "a lighthouse at dusk, waves rolling in"
ORDERS = {
    "runpod": {"model": "ltx-2-t2v", "duration": 10, "resolution": "720p"},
    "replicate": {"model": "t2v-14B", "duration": 5, "resolution": "480p"},
    "pollo": {"model": "kling-v1-6", "duration": 5},
}
TERMINAL = {"succeeded", "failed", "canceled", "expired"}
_STATUSES = query("SELECT id, status, credits_charged FROM generations")
_HELD = query("SELECT coalesce(sum(held), 0) FROM balances")


@pytest.fixture
def video_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "clip.mp4"
    spec = media_render.RenderSpec(width=160, height=96, duration=1.0, fps=8, seed=3, prompt="lighthouse")
    media_render.encode_preview(spec, path)
    return path.read_bytes()


@pytest.fixture
def simulators(video_bytes: bytes) -> Iterator[dict[str, Simulator]]:
    sims: dict[str, Simulator] = {
        "runpod": RunPodSimulator(video=video_bytes, auto_advance=(0.2, 0.8)),
        "replicate": ReplicateSimulator(video=video_bytes, auto_advance=(0.2, 0.8)),
        "pollo": PolloSimulator(video=video_bytes),  # driven by the test
    }
    for sim in sims.values():
        sim.start()
    yield sims
    for sim in sims.values():
        sim.stop()


def _host_env(base: dict[str, str], root: Path, name: str) -> dict[str, str]:
    """One "machine": its own data dir and temp dir."""
    data, tmp = root / name / "data", root / name / "tmp"
    tmp.mkdir(parents=True)
    return {**base, "REELGATE_DATA_DIR": str(data), "TMPDIR": str(tmp)}


def _environment(
    database_url: str,
    s3: str,
    redis_url: str,
    redis_key_prefix: str,
    public_url: str,
    sims: dict[str, Simulator],
    receiver: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGATE_", "AWS_", "RUNPOD", "REPLICATE"))}
    hosts = [urlsplit(sim.url).netloc for sim in sims.values()] + [urlsplit(receiver).netloc]
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's fixed test credentials
        AWS_DEFAULT_REGION="us-east-1",
        REELGATE_DATABASE_URL=database_url,
        REELGATE_DATABASE_POOL_SIZE="4",
        REELGATE_STORAGE_URL=f"s3://{BUCKET}/media",
        REELGATE_S3_ENDPOINT_URL=s3,
        REELGATE_REDIS_URL=redis_url,
        REELGATE_REDIS_KEY_PREFIX=redis_key_prefix,  # counted from zero whatever earlier runs left in the Redis
        REELGATE_SECRET_KEY=SECRET,
        REELGATE_PUBLIC_URL=public_url,  # the load balancer: providers' webhooks land on the first API process
        REELGATE_EMBEDDED_WORKER="false",
        REELGATE_FETCH_ALLOW_HOSTS=",".join(hosts),
        REELGATE_POLL_INITIAL_SECONDS="0.3",
        REELGATE_POLL_MAX_SECONDS="1",
        REELGATE_QUEUE_POLL_SECONDS="0.2",
        REELGATE_QUEUE_HEARTBEAT_SECONDS="1",
        REELGATE_RECONCILE_INTERVAL_SECONDS="1",
        REELGATE_WORKER_SHUTDOWN_SECONDS="5",
        REELGATE_LOG_LEVEL="WARNING",
        RUNPOD_API_KEY="test-key",
        REELGATE_RUNPOD_BASE_URL=sims["runpod"].url,
        RUNPOD_LTX_ENDPOINT_ID="ltx-endpoint",
        REPLICATE_API_TOKEN="test-key",
        REELGATE_REPLICATE_BASE_URL=sims["replicate"].url,
        REPLICATE_WEBHOOK_SECRET=str(sims["replicate"].webhook_secret),
        POLLO_API_KEY="test-key",
        REELGATE_POLLO_BASE_URL=sims["pollo"].url,
        POLLO_WEBHOOK_SECRET=str(sims["pollo"].webhook_secret),
    )
    return env


async def _make_user(settings: Settings) -> str:
    ctx = await build_context(settings, migrate=False)
    try:
        user = await accounts.create_user(ctx, "hosts@example.com", "correct horse battery", credits=10_000)
        return (await accounts.create_api_key(ctx, user.id, "hosts")).secret
    finally:
        await close_context(ctx)


async def _rows(settings: Settings) -> tuple[dict[str, tuple[str, int]], int]:
    ctx = await build_context(settings, migrate=False)
    try:
        rows, held = await ctx.db.read(lambda tx: (tx.all(_STATUSES), tx.scalar(_HELD)), snapshot=True)
        return {gid: (status, int(charged or 0)) for gid, status, charged in rows}, int(held)
    finally:
        await close_context(ctx)


def _submit(apis: list[str], key: str, provider: str, n: int) -> list[str]:
    """A well-behaved client: round-robin over the API processes, retrying 503s (the database restarting)."""
    ids = []
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            body = {**ORDERS[provider], "prompt": f"{PROMPT} ({provider} {i})"}
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"{provider}-{i}-{time.time_ns()}"}
            for attempt in range(8):
                answer = client.post(
                    f"{apis[(i + attempt) % len(apis)]}/api/v1/generations", json=body, headers=headers
                )
                if answer.status_code != 503:
                    break
                time.sleep(0.5)
            assert answer.status_code == 202, answer.text
            ids.append(str(answer.json()["id"]))
    return ids


def _pollo_job(sim: Simulator, generation_id: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sim.lock:
            jobs = [j.id for j in sim.jobs.values() if f"g={generation_id}&" in (j.webhook_url or "")]
        if jobs:
            return jobs[0]
        time.sleep(0.1)
    raise AssertionError(f"Pollo never received {generation_id}")


def _wrong_sign_ins(apis: list[str], email: str, n: int) -> list[int]:
    """Wrong passwords for one account, alternating between the API processes (one browser, one cookie jar)."""
    statuses = []
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            api = apis[i % len(apis)]
            client.get(f"{api}/login")
            token = client.cookies.get("rg_login_csrf", "")
            form = {"email": email, "password": f"wrong guess {i}", "csrf_token": token}
            statuses.append(client.post(f"{api}/login", data=form).status_code)
    return statuses


def _wait_all_terminal(settings: Settings, ids: list[str], timeout: float) -> dict[str, tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while True:
        rows, _ = asyncio.run(_rows(settings))
        if all(rows[g][0] in TERMINAL for g in ids):
            return rows
        pending = {g: rows[g][0] for g in ids if rows[g][0] not in TERMINAL}
        assert time.monotonic() < deadline, f"unfinished: {pending}"
        time.sleep(0.5)


def _wait_all_submitted(settings: Settings, ids: list[str], timeout: float = 60) -> None:
    """Until every generation has left `queued` and `submitting`: its provider job id is recorded."""
    deadline = time.monotonic() + timeout
    while True:
        rows, _ = asyncio.run(_rows(settings))
        waiting = {g: rows[g][0] for g in ids if rows[g][0] in ("queued", "submitting")}
        if not waiting:
            return
        assert time.monotonic() < deadline, f"never submitted: {waiting}"
        time.sleep(0.2)


def test_api_and_workers_on_separate_hosts_share_only_postgres_s3_and_redis(  # noqa: PLR0915 - one scenario
    tmp_path: Path,
    pg_database_url: str,
    s3_server: str,
    redis_url: str,
    redis_key_prefix: str,
    simulators: dict[str, Simulator],
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="x"
    )
    s3.create_bucket(Bucket=BUCKET)
    pg_port = urlsplit(pg_database_url).port or 5432
    proxy = DroppingProxy(pg_port)
    proxied_url = pg_database_url.replace(f":{pg_port}/", f":{proxy.port}/")
    receiver = WebhookReceiver()
    receiver.start()
    api_ports = [free_port(), free_port()]
    apis = [f"http://127.0.0.1:{port}" for port in api_ports]
    base = _environment(proxied_url, s3_server, redis_url, redis_key_prefix, apis[0], simulators, receiver.url)
    subprocess.run([*REELGATE, "migrate"], env=_host_env(base, tmp_path, "migrate"), check=True, capture_output=True)
    # The test reads the database directly, around the proxy, so its checks never see the outage.
    settings = Settings(database_url=pg_database_url, data_dir=tmp_path / "observer", secret_key=SECRET)
    key = asyncio.run(_make_user(settings))
    headers = {"Authorization": f"Bearer {key}"}

    logs = Path(os.environ.get("REELGATE_TEST_LOG_DIR", tmp_path / "logs"))
    logs.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(base, logs)
    try:
        for n, port in enumerate(api_ports):
            fleet.start(f"api{n}", "serve", "--port", str(port), **_host_env(base, tmp_path, f"api{n}"))
        doomed = fleet.start("worker0", "worker", "--concurrency", "8", **_host_env(base, tmp_path, "worker0"))
        fleet.start("worker1", "worker", "--concurrency", "8", **_host_env(base, tmp_path, "worker1"))
        for api in apis:
            wait_http(f"{api}/healthz")
        endpoint = httpx.post(
            f"{apis[1]}/api/v1/webhook-endpoints", json={"url": f"{receiver.url}/hooks"}, headers=headers, timeout=10
        )
        assert endpoint.status_code == 201, endpoint.text

        # RunPod's base64 videos arrive by webhook at api0; workers on other hosts store them.
        by_webhook = _submit(apis, key, "runpod", 6)
        by_url = _submit(apis, key, "replicate", 4)
        pollo = _submit(apis, key, "pollo", 4)
        pollo_jobs = [_pollo_job(simulators["pollo"], g) for g in pollo]
        to_fail, to_cancel = pollo[0], pollo[1]
        simulators["pollo"].fail(pollo_jobs[0], error="content policy")
        canceled = httpx.post(f"{apis[1]}/api/v1/generations/{to_cancel}/cancel", headers=headers, timeout=30)
        assert canceled.status_code == 200, canceled.text

        # A worker dies mid-run; another host's worker starts. The kill waits until every job has reached its
        # provider: one killed between sending a submit and recording the answer leaves an outcome that neither
        # RunPod nor Replicate can look up, and that job rightly waits for its webhook, an operator or its
        # deadline rather than risk a second paid run (tests/e2e_providers/test_failures.py covers that path).
        _wait_all_submitted(settings, by_webhook + by_url)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        fleet.start("worker2", "worker", "--concurrency", "8", **_host_env(base, tmp_path, "worker2"))
        for job in pollo_jobs[2:]:
            simulators["pollo"].run(job, progress=50)

        # The database "restarts": every connection dropped, new ones refused for 2 s.
        time.sleep(1)
        proxy.outage(2.0)
        for job in pollo_jobs[2:]:
            simulators["pollo"].complete(job)

        # Webhooks lost from now on: RunPod jobs finish by polling.
        simulators["runpod"].webhooks.controls.drop = -1
        by_polling = _submit(apis, key, "runpod", 3)

        everything = by_webhook + by_url + pollo + by_polling
        rows = _wait_all_terminal(settings, everything, timeout=120)
        _, held = asyncio.run(_rows(settings))
        me = httpx.get(f"{apis[1]}/api/v1/me", headers=headers, timeout=10).json()
        ledger = subprocess.run(
            [*REELGATE, "ledger", "check"], env=_host_env(base, tmp_path, "ops"), capture_output=True, text=True
        )
        receiver.wait_for(1, timeout=20)
        guesses = _wrong_sign_ins(apis, "hosts@example.com", 6)
    finally:
        fleet.stop()
        proxy.close()
        receiver.server.stop()

    statuses = {g: rows[g][0] for g in everything}
    expected = {g: "succeeded" for g in everything} | {to_fail: "failed", to_cancel: "canceled"}
    assert statuses == expected
    assert rows[to_fail][1] == 0 and rows[to_cancel][1] == 0  # refunded in full
    assert held == 0 and me["credits"]["held"] == 0, me
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr
    assert proxy.dropped > 0  # the outage did cut live connections
    assert simulators["runpod"].webhooks.dropped  # the last three were finished by polling
    events: list[dict[str, Any]] = [r.json() for r in receiver.requests]
    assert any(e.get("type") == "generation.succeeded" for e in events), events

    # Sign-in throttling counts in Redis: 5 guesses a minute per account, whichever process gets them.
    assert guesses == [401] * 5 + [429], guesses

    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="media/staging/").get("KeyCount", 0)
    assert listed == 0, "outputs in transit are removed once stored"
    for host in ("api0", "api1"):
        media = [p for p in (tmp_path / host).rglob("*") if p.is_file() and p.suffix in {".mp4", ".inline", ".part"}]
        assert media == [], f"{host} kept media on its own disk: {media}"
    with capsys.disabled():
        print(f"\nmany hosts: {len(everything)} generations, {proxy.dropped} connections dropped by the outage")
