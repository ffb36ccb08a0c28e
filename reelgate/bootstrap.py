"""The composition root: turns Settings into a ServiceContext (database, catalog, providers, storage)."""

from __future__ import annotations

import logging
from dataclasses import replace

from reelgate.api.metrics import InstrumentedRegistry
from reelgate.catalog.loader import load_catalog, load_default_catalog
from reelgate.data_dir import ensure_private_dir
from reelgate.db.database import open_database
from reelgate.domain.catalog import Catalog
from reelgate.providers.base import ProviderConfig
from reelgate.providers.plugin import HostPaths
from reelgate.providers.registry import provider_specs
from reelgate.services.context import ServiceConfig, ServiceContext
from reelgate.settings import Settings
from reelgate.storage import store_from_url

log = logging.getLogger("reelgate")


def provider_spool_dir(settings: Settings) -> str:
    """Where adapters whose outputs need the API key to download (Veo, OpenAI Videos) put them; the output
    step deletes each file once its video is stored."""
    return str((settings.provider_spool_dir or settings.data_dir / "spool").resolve())


def provider_configs(settings: Settings) -> dict[str, ProviderConfig]:
    """Every registered provider's config, made from the settings it declares (reelgate.providers.plugin)."""
    host = HostPaths(data_dir=settings.data_dir, spool_dir=provider_spool_dir(settings))
    return {name: values.to_config(host) for name, values in settings.providers.items()}


def load_configured_catalog(settings: Settings) -> Catalog:
    """REELGATE_CATALOG when set; else the built-in catalog plus the models installed providers ship."""
    if settings.catalog:
        return load_catalog(settings.catalog)
    shipped = [(spec.catalog or name, spec.catalog_text()) for name, spec in provider_specs().items() if spec.catalog]
    return load_default_catalog([(source, text) for source, text in shipped if text])


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
        generate_limit=settings.generate_limit,
        provider_in_flight_caps=settings.provider_in_flight_caps,
        provider_rate_limits=settings.provider_rate_limits,
        # Shared counters across processes when Redis is configured (limits' async redis-py storage).
        rate_limit_storage=f"async+{settings.redis_url}" if settings.redis_url else "memory://",
        rate_limit_key_prefix=settings.redis_key_prefix,
        sign_in_limit_per_account=settings.sign_in_limit_per_account,
        sign_in_limit_per_address=settings.sign_in_limit_per_address,
        sign_in_failures_global=settings.sign_in_failures_global,
        signup_limit_per_address=settings.signup_limit_per_address,
        signup_credits_per_address=settings.signup_credits_per_address,
        max_in_flight=settings.max_in_flight,
        daily_spend_cap_user=settings.daily_spend_cap_user,
        daily_spend_cap_global=settings.daily_spend_cap_global,
        provider_spool_dir=provider_spool_dir(settings),
        smtp_url=settings.smtp_url,
        smtp_timeout=settings.smtp_timeout_seconds,
        mail_dir=str(settings.mail_dir.resolve()) if settings.mail_dir else "",
        mail_from=settings.mail_from,
        mail_signing_key=settings.session_secret,
        low_credit_threshold=settings.low_credit_threshold,
        storage_quota_mb=settings.storage_quota_mb,
        retention_days=settings.retention_days,
        retention_keep_favorites=settings.retention_keep_favorites,
        link_signing_key=settings.session_secret,
    )


async def build_context(settings: Settings, *, migrate: bool = True) -> ServiceContext:
    ensure_private_dir(settings.data_dir)
    settings.session_secret  # noqa: B018 - refuses a missing or public key, or makes and keeps one, at start-up
    db = await open_database(settings.resolved_database_url, pool_size=settings.database_pool_size, migrate=migrate)
    store = store_from_url(settings.resolved_storage_url, s3_endpoint_url=settings.s3_endpoint_url)
    try:
        await store.prepare_staging()
    except Exception:  # noqa: BLE001 - a store that is down now is reported by /readyz, not by a failed start
        log.warning("could not prepare the object store's staging prefix", exc_info=True)
    providers = InstrumentedRegistry(provider_configs(settings))
    config = service_config(settings)

    # Only providers that can take jobs here: the submit path reads nothing extra for the others.
    def takes_jobs(name: str) -> bool:
        return name in providers.names() and providers.get(name).configured()

    caps = {name: cap for name, cap in config.provider_in_flight_caps.items() if takes_jobs(name)}
    rates = {name: rate for name, rate in config.provider_rate_limits.items() if takes_jobs(name)}
    return ServiceContext(
        db=db,
        catalog=load_configured_catalog(settings),
        # Catalog models of a provider no package registers stay listed, as unavailable.
        providers=providers,
        store=store,
        config=replace(config, provider_in_flight_caps=caps, provider_rate_limits=rates),
    )


async def close_context(ctx: ServiceContext) -> None:
    await ctx.providers.aclose()
    await ctx.close_counters()
    await ctx.db.close()
