"""The composition root: turns Settings into a ServiceContext (database, catalog, providers, storage)."""

from __future__ import annotations

import json
import logging

from reelgate.api.metrics import InstrumentedRegistry
from reelgate.catalog.loader import load_catalog, load_default_catalog
from reelgate.data_dir import ensure_private_dir
from reelgate.db.engine import Database
from reelgate.db.migrate import upgrade_to_head
from reelgate.domain.catalog import Catalog
from reelgate.providers.base import ProviderConfig
from reelgate.providers.registry import PROVIDER_CLASSES
from reelgate.services.context import ServiceConfig, ServiceContext
from reelgate.settings import Settings
from reelgate.storage import store_from_url

log = logging.getLogger("reelgate")


def provider_spool_dir(settings: Settings) -> str:
    """Where adapters whose outputs need the API key to download (Veo, OpenAI Videos) put them; the output
    step deletes each file once its video is stored."""
    return str((settings.provider_spool_dir or settings.data_dir / "spool").resolve())


def provider_configs(settings: Settings) -> dict[str, ProviderConfig]:
    """Credentials and base URLs per provider; every base URL can be overridden for tests and proxies."""
    s = settings
    spool = provider_spool_dir(s)
    return {
        "sandbox": ProviderConfig(
            api_key="local",
            extra={"spool_dir": str((s.data_dir / "sandbox").resolve()), "delay_seconds": str(s.sandbox_delay_seconds)},
        ),
        "runpod": ProviderConfig(
            api_key=s.runpod_api_key,
            base_url=s.runpod_base_url,
            extra={
                k: v
                for k, v in {
                    "ltx_endpoint_id": s.runpod_ltx_endpoint_id,
                    "wan_endpoint_id": s.runpod_wan_endpoint_id,
                    "ltx_endpoint_url": s.runpod_ltx_endpoint_url,
                    "wan_endpoint_url": s.runpod_wan_endpoint_url,
                }.items()
                if v
            },
        ),
        "replicate": ProviderConfig(
            api_key=s.replicate_api_token, base_url=s.replicate_base_url, webhook_secret=s.replicate_webhook_secret
        ),
        "pollo": ProviderConfig(
            api_key=s.pollo_api_key, base_url=s.pollo_base_url, webhook_secret=s.pollo_webhook_secret
        ),
        "modelslab": ProviderConfig(api_key=s.modelslab_api_key, base_url=s.modelslab_base_url),
        "edenai": ProviderConfig(
            api_key=s.edenai_api_key,
            base_url=s.edenai_base_url,
            extra=_present(webhook_public_key=s.edenai_webhook_public_key),
        ),
        "poe": ProviderConfig(
            api_key=s.poe_api_key,
            base_url=s.poe_base_url,
            extra=_present(enhance_bot=s.poe_enhance_bot, spool_dir=spool),
        ),
        "fal": ProviderConfig(api_key=s.fal_key, base_url=s.fal_base_url, extra=_present(jwks_url=s.fal_jwks_url)),
        "runway": ProviderConfig(api_key=s.runwayml_api_secret, base_url=s.runway_base_url),
        "luma": ProviderConfig(api_key=s.lumaai_api_key, base_url=s.luma_base_url),
        "veo": ProviderConfig(api_key=s.gemini_api_key, base_url=s.veo_base_url, extra=_present(spool_dir=spool)),
        "openai_videos": ProviderConfig(
            api_key=s.openai_videos_api_key,
            base_url=s.openai_videos_base_url,
            extra={**_present(spool_dir=spool), **_upstreams(s.openai_videos_upstreams)},
        ),
    }


def _present(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


def _upstreams(text: str | None) -> dict[str, str]:
    """REELGATE_OPENAI_VIDEOS_UPSTREAMS, {"<model>": {"base_url", "api_key"}}, as the adapter's flat extra keys."""
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"REELGATE_OPENAI_VIDEOS_UPSTREAMS is not JSON: {exc}") from exc
    return {
        f"{model}.{key}": str(value)
        for model, upstream in parsed.items()
        for key, value in upstream.items()
        if key in ("base_url", "api_key") and value
    }


def load_configured_catalog(settings: Settings) -> Catalog:
    return load_catalog(settings.catalog) if settings.catalog else load_default_catalog()


def service_config(settings: Settings) -> ServiceConfig:
    return ServiceConfig(
        public_url=settings.public_url,
        signup_credits=settings.signup_credits,
        fetch_allow_hosts=settings.allowed_fetch_hosts,
        max_output_bytes=settings.max_output_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        max_upload_pixels=settings.max_upload_pixels,
        max_upload_decoded_bytes=settings.max_upload_decoded_bytes,
        idempotency_ttl_hours=settings.idempotency_ttl_hours,
        poll_initial=settings.poll_initial_seconds,
        poll_max=settings.poll_max_seconds,
        lease_seconds=settings.lease_seconds,
        stripe_secret_key=settings.stripe_secret_key,
        stripe_webhook_secret=settings.stripe_webhook_secret,
        stripe_api_base=settings.stripe_api_base,
        credit_packages=settings.credit_packages,
        credit_expiry_days=settings.credit_expiry_days,
        rate_limit_per_key=settings.rate_limit_per_key,
        rate_limit_per_user=settings.rate_limit_per_user,
        # Shared counters across processes when Redis is configured (limits' async redis-py storage).
        rate_limit_storage=f"async+{settings.redis_url}" if settings.redis_url else "memory://",
        max_in_flight=settings.max_in_flight,
        daily_spend_cap_user=settings.daily_spend_cap_user,
        daily_spend_cap_global=settings.daily_spend_cap_global,
        provider_spool_dir=provider_spool_dir(settings),
    )


async def build_context(settings: Settings, *, migrate: bool = True) -> ServiceContext:
    ensure_private_dir(settings.data_dir)
    settings.session_secret  # noqa: B018 - refuses a missing or public key, or makes and keeps one, at start-up
    db = Database(settings.resolved_database_url, pool_size=settings.database_pool_size)
    if migrate:
        await upgrade_to_head(db.engine)
    return ServiceContext(
        db=db,
        catalog=load_configured_catalog(settings),
        # Catalog models of a provider without an adapter stay listed, as unavailable.
        providers=InstrumentedRegistry({n: c for n, c in provider_configs(settings).items() if n in PROVIDER_CLASSES}),
        store=store_from_url(settings.resolved_storage_url, s3_endpoint_url=settings.s3_endpoint_url),
        config=service_config(settings),
    )


async def close_context(ctx: ServiceContext) -> None:
    await ctx.providers.aclose()
    await ctx.db.dispose()
