"""A provider's request rate is never passed, whichever worker sends: submits over it wait, queued, until a place in
the window frees, and then go; none fails, none is counted as an attempt. In all three modes, production's queue
workers (two of them) included, against the Replicate simulator, which notes when each request arrived."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from reelgate import media_render
from reelgate.db.sql import query
from reelgate.domain.request_rates import RequestRate
from reelgate.settings import Settings
from tests.api.conftest import PRODUCTION
from tests.conftest import Running, make_account, make_settings
from tests.helpers import wait_for_terminal
from tests.production.harness import production_settings, queue_worker
from tests.simulators.replicate import ReplicateSimulator

RATE = 2
PERIOD = 1.0
JOBS = 6
# Between taking its place and reaching the simulator a submit still crosses a transaction and the loopback, so
# two arrivals may land this much closer together than the two places were taken.
TRANSIT = 0.3
_ATTEMPTS = query("SELECT max(submit_attempts) FROM generations")
_NOT_SUCCEEDED = query("SELECT count(*) FROM generations WHERE status <> 'succeeded' OR error_code IS NOT NULL")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real, small MP4: outputs are probed, so the simulator must return a decodable video."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    spec = media_render.RenderSpec(width=160, height=96, duration=1.0, fps=8, seed=5, prompt="paced")
    media_render.encode_preview(spec, path)
    return path.read_bytes()


@pytest.fixture
def replicate(video: bytes) -> Iterator[ReplicateSimulator]:
    with ReplicateSimulator(video=video, auto_advance=(0.05, 0.1)) as sim:
        yield sim  # type: ignore[misc]


@pytest.fixture
def settings(tmp_path: Path, database_url: str, api_mode: str, replicate: ReplicateSimulator) -> Settings:
    overrides = production_settings() if api_mode == PRODUCTION else {}
    return make_settings(
        tmp_path / "data",
        database_url,
        replicate_api_token="test-key",
        replicate_base_url=replicate.url,
        fetch_allow_hosts=urlsplit(replicate.url).netloc,
        provider_rate_limit=f"replicate={RATE}/{PERIOD:g} seconds",
        **overrides,
    )


async def test_submits_over_a_providers_rate_wait_queued_and_all_finish(
    running: Running, replicate: ReplicateSimulator, settings: Settings, api_mode: str
) -> None:
    assert running.ctx.config.provider_rate_limits == {"replicate": RequestRate(RATE, PERIOD)}
    account = await make_account(running.ctx, credits=500)
    order = {"model": "t2v-14B", "prompt": "a paper boat on a pond", "duration": 5, "resolution": "480p"}
    async with AsyncExitStack() as stack:
        if api_mode == PRODUCTION:
            # A second worker with its own connections and memory: the two share nothing but PostgreSQL.
            await stack.enter_async_context(queue_worker(settings))
        ids = []
        for _ in range(JOBS):
            created = await running.client.post("/api/v1/generations", json=order, headers=account.headers)
            assert created.status_code == 202, created.text
            ids.append(created.json()["id"])
        finals = [await wait_for_terminal(running.client, gid, account.headers, timeout=60) for gid in ids]
    assert [final["status"] for final in finals] == ["succeeded"] * JOBS

    arrivals = sorted(request.at for request in replicate.requests_to("submit"))
    assert len(arrivals) == JOBS  # each job sent once: nothing was refused and sent again
    # No window of PERIOD holds more than RATE submits: the (RATE+1)-th after any submit came a period later.
    gaps = [later - first for first, later in zip(arrivals, arrivals[RATE:], strict=False)]
    assert min(gaps) >= PERIOD - TRANSIT, gaps
    # Waiting for a place in the rate is not a failed attempt, and nothing ended otherwise than succeeded.
    assert await running.ctx.db.read(lambda tx: tx.scalar(_ATTEMPTS)) == 1
    assert await running.ctx.db.read(lambda tx: tx.scalar(_NOT_SUCCEEDED)) == 0
    # Status polls are not paced (they back off on their own): they went on while submits waited.
    assert replicate.requests_to("status")


def test_the_declared_rates_and_an_operators_override() -> None:
    settings = Settings(provider_rate_limit="modelslab=5/minute, replicate=0, poe=100/2 minutes")
    rates = settings.provider_rate_limits
    assert rates["modelslab"] == RequestRate(5, 60.0)  # ModelsLab declares none: the operator adds one
    assert "replicate" not in rates  # 0 lifts a declared rate
    assert rates["poe"] == RequestRate(100, 120.0)
    assert rates["edenai"] == RequestRate(10, 1.0)
    assert Settings().provider_rate_limits["replicate"] == RequestRate(600, 60.0)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("replicate=600", "is not a rate such as 600/minute"),
        ("replicate", "is not <provider>=<count>/<period>"),
        ("replicate=600/fortnight", "is not a rate such as 600/minute"),
        ("replicate=0/minute", "needs a count and a period above zero"),
        ("=5/minute", "is not <provider>=<count>/<period>"),
    ],
)
def test_a_bad_rate_setting_is_refused_when_read(monkeypatch: pytest.MonkeyPatch, value: str, says: str) -> None:
    monkeypatch.setenv("REELGATE_PROVIDER_RATE_LIMIT", value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "REELGATE_PROVIDER_RATE_LIMIT" in str(refused.value) and says in str(refused.value)
