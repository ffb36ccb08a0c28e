"""Wave-2 end-to-end harness: the wave-1 harness (uvicorn on loopback, socket guard, trap) with the wave-2
simulators, a catalog of the default models plus the wave-2 example models, and several providers at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from reelgate.app import create_app
from reelgate.db.records import Generation
from reelgate.services.context import ServiceContext
from tests.conftest import make_account, make_settings
from tests.e2e_providers.conftest import (  # noqa: F401 - connections and video_bytes are re-exported fixtures
    PROMPT,
    Harness,
    Trap,
    connections,
    video_bytes,
)
from tests.helpers import generation_row
from tests.simulators.base import Job, Simulator, listening_socket, serve_on_this_loop

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"
WAVE2 = ["modelslab", "edenai", "poe", "runway", "luma", "veo", "fal", "openai_videos", "openrouter"]
# One model per provider: modelslab, edenai and poe from the default catalog, the rest from the example.
ORDERS: dict[str, dict[str, Any]] = {
    "modelslab": {"model": "text-to-video-ultra"},
    "edenai": {"model": "amazon-nova-reel"},
    "poe": {"model": "video-generator-pro"},
    "runway": {"model": "runway-gen45", "duration": 5},
    "luma": {"model": "luma-ray-2", "duration": 5},
    "veo": {"model": "veo-3-fast"},
    "fal": {"model": "fal-kling-1-6-pro", "duration": 5},
    "openai_videos": {"model": "sora-2", "duration": 4},
    "openrouter": {"model": "openrouter-veo-3.1-fast", "duration": 4},
}
# Providers that call back; the others are followed by polling only.
SENDS_WEBHOOKS = frozenset({"modelslab", "edenai", "luma", "fal", "openrouter"})
# Providers whose webhooks carry a signature on top of the per-generation URL token.
SIGNED_WEBHOOKS = frozenset({"edenai", "fal", "openrouter"})
# OpenRouter signs its webhooks with a workspace secret, given to both sides here.
OPENROUTER_WEBHOOK_SECRET = "openrouter-signing-secret"
# Test-catalog changes: a cross-provider fallback, and a fallback priced above the model it stands in for.
FALLBACKS = {"luma-ray-2": ["runway-gen45"], "runway-gen45": ["luma-ray-2"]}
PRICIER_RUNWAY_MARKUP = 10


def simulator(provider: str, video: bytes) -> Simulator:
    from tests.simulators.edenai import EdenAISimulator
    from tests.simulators.fal import FalSimulator
    from tests.simulators.luma import LumaSimulator
    from tests.simulators.modelslab import ModelsLabSimulator
    from tests.simulators.openai_videos import OpenAIVideosSimulator
    from tests.simulators.openrouter import OpenRouterSimulator
    from tests.simulators.poe import PoeSimulator
    from tests.simulators.runway import RunwaySimulator
    from tests.simulators.veo import VeoSimulator

    if provider == "openrouter":
        return OpenRouterSimulator(api_key=KEY, video=video, webhook_secret=OPENROUTER_WEBHOOK_SECRET)

    classes: dict[str, type[Simulator]] = {
        "modelslab": ModelsLabSimulator,
        "edenai": EdenAISimulator,
        "poe": PoeSimulator,
        "runway": RunwaySimulator,
        "luma": LumaSimulator,
        "veo": VeoSimulator,
        "fal": FalSimulator,
        "openai_videos": OpenAIVideosSimulator,
    }
    return classes[provider](api_key=KEY, video=video)


def provider_settings(provider: str, sim: Simulator) -> dict[str, Any]:
    url = sim.url
    settings: dict[str, dict[str, Any]] = {
        "modelslab": {"modelslab_api_key": KEY, "modelslab_base_url": f"{url}/api"},
        "edenai": {
            "edenai_api_key": KEY,
            "edenai_base_url": f"{url}/v3",
            "edenai_webhook_public_key": getattr(sim, "public_key_pem", None),
        },
        "poe": {"poe_api_key": KEY, "poe_base_url": f"{url}/v1"},
        "runway": {"runwayml_api_secret": KEY, "runway_base_url": url},
        "luma": {"lumaai_api_key": KEY, "luma_base_url": f"{url}/dream-machine/v1"},
        "veo": {"gemini_api_key": KEY, "veo_base_url": url},
        "fal": {"fal_key": KEY, "fal_base_url": url, "fal_jwks_url": f"{url}/.well-known/jwks.json"},
        "openai_videos": {"openai_videos_api_key": KEY, "openai_videos_base_url": f"{url}/v1"},
        "openrouter": {
            "openrouter_api_key": KEY,
            "openrouter_base_url": f"{url}/api/v1",
            "openrouter_webhook_secret": OPENROUTER_WEBHOOK_SECRET,
        },
    }
    return settings[provider]


def write_catalog(path: Path, deadline: int) -> Path:
    """Default catalog + the wave-2 example models, short deadlines, and the FALLBACKS above."""
    default = yaml.safe_load((ROOT / "reelgate" / "catalog" / "default.yaml").read_text())
    wave2 = yaml.safe_load((ROOT / "examples" / "catalogs" / "wave2-providers.yaml").read_text())
    models = default["models"] + wave2["models"]
    for model in models:
        if model["id"] in {order["model"] for order in ORDERS.values()}:
            model["deadline_seconds"] = deadline
        if model["id"] in FALLBACKS:
            model["fallbacks"] = FALLBACKS[model["id"]]
        if model["id"] == "runway-gen45":
            model["pricing"] = {**model["pricing"], "markup": PRICIER_RUNWAY_MARKUP}
    data = {"credit_unit": default["credit_unit"], "rounding": default["rounding"], "models": models}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Wave2Harness(Harness):
    sims: dict[str, Simulator]

    async def quote(self, **order: Any) -> int:
        body = {**ORDERS[self.provider], **order}
        response = await self.client.post("/api/v1/estimate", headers=self.headers, json=body)
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    async def create(self, **extra: Any) -> str:
        body = {**ORDERS[self.provider], "prompt": PROMPT, **extra}
        response = await self.client.post("/api/v1/generations", headers=self.headers, json=body)
        assert response.status_code == 202, response.text
        assert response.json()["credits_held"] == await self.quote(**extra)
        return str(response.json()["id"])

    async def row(self, generation_id: str) -> Generation:
        return await generation_row(self.ctx, generation_id)

    async def started(self, generation_id: str) -> Job:
        """The simulator's job for this generation, once the generation is `processing`."""
        await self.wait_status(generation_id, "processing")
        job_ref = (await self.row(generation_id)).provider_job_id or ""
        with self.sim.lock:
            jobs = [j for j in self.sim.jobs.values() if j.id in job_ref]
        assert len(jobs) == 1, (job_ref, list(self.sim.jobs))
        return jobs[0]


Start = Callable[..., Awaitable[Wave2Harness]]


@pytest.fixture(params=WAVE2)
def provider_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def wave2(tmp_path: Path, video_bytes: bytes) -> AsyncIterator[Start]:  # noqa: F811 - the fixture
    """`await wave2(provider, also=[...], polling=..., deadline=...)`: simulators for the provider (and `also`)
    and the app configured for exactly those. polling=False delays the first poll 5 minutes."""
    async with AsyncExitStack() as stack:

        async def start(
            provider: str, *, also: tuple[str, ...] = (), polling: bool = False, deadline: int = 600, **overrides: Any
        ) -> Wave2Harness:
            sims: dict[str, Simulator] = {}
            for name in (provider, *also):
                sims[name] = simulator(name, video_bytes)
                sims[name].start()
                stack.callback(sims[name].stop)
            trap = Trap()
            stack.callback(trap.close)
            sock = listening_socket()
            public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            configured: dict[str, Any] = {}
            for name, sim in sims.items():
                configured.update(provider_settings(name, sim))
            settings = make_settings(
                tmp_path / "data",
                f"sqlite:///{tmp_path / 'reelgate.db'}",
                public_url=public_url,
                # Only the simulators' own host:port: any other loopback or private address stays refused.
                fetch_allow_hosts=",".join(urlsplit(sim.url).netloc for sim in sims.values()),
                catalog=write_catalog(tmp_path / "catalog.yaml", deadline),
                poll_initial_seconds=0.1 if polling else 300.0,
                poll_max_seconds=0.5 if polling else 600.0,
                **{**configured, **overrides},
            )
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            await serve_on_this_loop(stack, app, sock)
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=public_url, timeout=30.0))
            ctx: ServiceContext = app.state.ctx
            account = await make_account(ctx, credits=5000)
            harness = Wave2Harness(provider, sims[provider], ctx, client, account, public_url, trap, 0, sims)
            harness.price = await harness.quote()
            return harness

        yield start
