"""The built-in providers' declarations, registered in pyproject.toml like any third-party plugin's.

Each adapter is named as "module:Class" and imported on first use, so loading this module stays cheap.
Vendor variable names are the ones the vendors' own SDKs read (RUNPOD_API_KEY, FAL_KEY...); every
setting is also read as REELGATE_<PROVIDER>_<FIELD>. The vendors' facts are in docs/providers/.
"""

from __future__ import annotations

import json

from reelgate.domain.request_rates import RequestRate
from reelgate.providers.base import ProviderConfig
from reelgate.providers.plugin import HostPaths, ProviderSettings, ProviderSpec, setting


class SpooledSettings(ProviderSettings):
    """Providers whose outputs need the API key to download put them in the host's spool directory."""

    def host_extra(self, host: HostPaths) -> dict[str, str]:
        return {"spool_dir": host.spool_dir}


class SandboxSettings(ProviderSettings):
    delay_seconds: float = setting(default=3.0, description="simulated provider time of the preview renderer")

    def to_config(self, host: HostPaths) -> ProviderConfig:
        # A fixed pseudo-key: the sandbox is always configured, and its jobs all belong to one "account".
        spool = str((host.data_dir / "sandbox").resolve())
        return ProviderConfig(api_key="local", extra={"spool_dir": spool, "delay_seconds": str(self.delay_seconds)})


class RunPodSettings(ProviderSettings):
    api_key: str | None = setting("RUNPOD_API_KEY", secret=True)
    base_url: str | None = setting()
    ltx_endpoint_id: str | None = setting("RUNPOD_LTX_ENDPOINT_ID")
    wan_endpoint_id: str | None = setting("RUNPOD_WAN_ENDPOINT_ID")
    # A local worker server (`python handler.py --rp_serve_api`) instead of RunPod's API.
    ltx_endpoint_url: str | None = setting()
    wan_endpoint_url: str | None = setting()


class ReplicateSettings(ProviderSettings):
    api_key: str | None = setting("REPLICATE_API_TOKEN", "REPLICATE_API_KEY", secret=True, attr="replicate_api_token")
    webhook_secret: str | None = setting("REPLICATE_WEBHOOK_SECRET", secret=True)
    base_url: str | None = setting()


class PolloSettings(ProviderSettings):
    api_key: str | None = setting("POLLO_API_KEY", secret=True)
    webhook_secret: str | None = setting("POLLO_WEBHOOK_SECRET", secret=True)
    base_url: str | None = setting()


class ModelsLabSettings(ProviderSettings):
    api_key: str | None = setting("MODELSLAB_API_KEY", secret=True)
    base_url: str | None = setting()


class EdenAISettings(ProviderSettings):
    api_key: str | None = setting("EDENAI_API_KEY", secret=True)
    base_url: str | None = setting()
    webhook_public_key: str | None = setting("EDENAI_WEBHOOK_PUBLIC_KEY", description="PEM from EdenAI support")


class PoeSettings(SpooledSettings):
    api_key: str | None = setting("POE_API_KEY", secret=True)
    base_url: str | None = setting()
    enhance_bot: str | None = setting(description="the text bot that enhances prompts")


class FalSettings(ProviderSettings):
    api_key: str | None = setting("FAL_KEY", secret=True, attr="fal_key")
    base_url: str | None = setting()
    jwks_url: str | None = setting()


class RunwaySettings(ProviderSettings):
    api_key: str | None = setting("RUNWAYML_API_SECRET", secret=True, attr="runwayml_api_secret")
    base_url: str | None = setting()


class LumaSettings(ProviderSettings):
    api_key: str | None = setting("LUMAAI_API_KEY", secret=True, attr="lumaai_api_key")
    base_url: str | None = setting()


class VeoSettings(SpooledSettings):
    api_key: str | None = setting("GEMINI_API_KEY", "GOOGLE_API_KEY", secret=True, attr="gemini_api_key")
    base_url: str | None = setting()


class OpenAIVideosSettings(SpooledSettings):
    api_key: str | None = setting("OPENAI_VIDEOS_API_KEY", secret=True)
    base_url: str | None = setting("OPENAI_VIDEOS_BASE_URL")
    # Per-model upstreams: JSON {"<provider_model>": {"base_url": ..., "api_key": ...}}.
    upstreams: str | None = setting(secret=True)

    def _parsed_upstreams(self) -> dict[str, dict[str, str]]:
        if not self.upstreams:
            return {}
        try:
            parsed = json.loads(self.upstreams)
        except json.JSONDecodeError as exc:
            raise ValueError(f"REELGATE_OPENAI_VIDEOS_UPSTREAMS is not JSON: {exc}") from exc
        if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
            raise ValueError('REELGATE_OPENAI_VIDEOS_UPSTREAMS must be {"<model>": {"base_url", "api_key"}}')
        return {str(model): {str(k): str(v) for k, v in upstream.items() if v} for model, upstream in parsed.items()}

    def secret_values(self, provider: str) -> list[str]:
        # The JSON as a whole rarely shows up in a log line; the keys inside it might.
        inner = [u["api_key"] for u in self._parsed_upstreams().values() if u.get("api_key")]
        return [*super().secret_values(provider), *inner]

    def to_config(self, host: HostPaths) -> ProviderConfig:
        """The upstreams become the adapter's flat extra keys "<model>.base_url" and "<model>.api_key"."""
        flat = {
            f"{model}.{key}": value
            for model, upstream in self._parsed_upstreams().items()
            for key, value in upstream.items()
            if key in ("base_url", "api_key")
        }
        return ProviderConfig(api_key=self.api_key, base_url=self.base_url, extra={**self.host_extra(host), **flat})


class OpenRouterSettings(SpooledSettings):
    api_key: str | None = setting("OPENROUTER_API_KEY", secret=True)
    base_url: str | None = setting()
    # The workspace's webhook signing secret: completion webhooks are asked for only when it is set.
    webhook_secret: str | None = setting("OPENROUTER_WEBHOOK_SECRET", secret=True)


def _spec(
    name: str,
    adapter: str,
    settings: type[ProviderSettings],
    description: str,
    docs: str,
    *,
    max_in_flight: int | None = None,
    rate_limit: RequestRate | None = None,
) -> ProviderSpec:
    return ProviderSpec(
        name=name,
        adapter=f"reelgate.providers.{adapter}",
        settings=settings,
        description=description,
        docs=f"docs/providers/{docs}.md" if docs else "",
        max_in_flight=max_in_flight,
        rate_limit=rate_limit,
    )


SANDBOX = _spec("sandbox", "sandbox:SandboxProvider", SandboxSettings, "local preview renderer, no keys", "")
RUNPOD = _spec("runpod", "runpod:RunPodProvider", RunPodSettings, "RunPod serverless (LTX-2, Wan 2.2)", "runpod")
# Replicate allows 600 "create prediction" requests a minute (https://replicate.com/docs/topics/predictions/rate-limits;
# docs/providers/replicate.md#limits-and-errors).
REPLICATE = _spec(
    "replicate",
    "replicate:ReplicateProvider",
    ReplicateSettings,
    "Replicate",
    "replicate",
    rate_limit=RequestRate(600, 60.0),
)
POLLO = _spec("pollo", "pollo:PolloProvider", PolloSettings, "Pollo.ai", "pollo")
# ModelsLab limits queued requests per account: 5 on pay as you go (docs/providers/modelslab.md#limits-and-errors);
# a larger plan raises it with REELGATE_PROVIDER_MAX_IN_FLIGHT. Its rate limit is that queue, so no request rate is
# declared; an operator who wants one (say 5 submits a minute) sets REELGATE_PROVIDER_RATE_LIMIT=modelslab=5/minute.
MODELSLAB = _spec(
    "modelslab", "modelslab:ModelsLabProvider", ModelsLabSettings, "ModelsLab", "modelslab", max_in_flight=5
)
# EdenAI allows 10 requests a second per account (https://docs.edenai.co/v3/overview/rate-limits;
# docs/providers/edenai.md#limits-and-errors).
EDENAI = _spec("edenai", "edenai:EdenAIProvider", EdenAISettings, "EdenAI", "edenai", rate_limit=RequestRate(10, 1.0))
# Poe allows 500 requests a minute (https://creator.poe.com/api-reference/rate-limits;
# docs/providers/poe.md#limits-and-errors).
POE = _spec("poe", "poe:PoeProvider", PoeSettings, "Poe", "poe", rate_limit=RequestRate(500, 60.0))
FAL = _spec("fal", "fal:FalProvider", FalSettings, "fal.ai", "fal")
RUNWAY = _spec("runway", "runway:RunwayProvider", RunwaySettings, "Runway", "runway")
LUMA = _spec("luma", "luma:LumaProvider", LumaSettings, "Luma Dream Machine", "luma")
VEO = _spec("veo", "veo:VeoProvider", VeoSettings, "Google Veo (Gemini API)", "veo")
OPENAI_VIDEOS = _spec(
    "openai_videos",
    "openai_videos:OpenAIVideosProvider",
    OpenAIVideosSettings,
    "any OpenAI Videos upstream",
    "openai-videos",
)
OPENROUTER = _spec(
    "openrouter", "openrouter:OpenRouterProvider", OpenRouterSettings, "OpenRouter video API", "openrouter"
)
