"""Acme Motion for reelgate: the provider's declaration, found by reelgate through the `reelgate.providers`
entry point in this package's pyproject.toml."""

from __future__ import annotations

from reelgate.providers.plugin import ProviderSettings, ProviderSpec, setting


class AcmeSettings(ProviderSettings):
    # `api_key`, `webhook_secret` and `base_url` fill reelgate's ProviderConfig; each setting is also read as
    # REELGATE_ACME_<FIELD>, so the base URL comes from REELGATE_ACME_BASE_URL.
    api_key: str | None = setting("ACME_API_KEY", secret=True)
    webhook_secret: str | None = setting("ACME_WEBHOOK_SECRET", secret=True)
    base_url: str | None = setting(description="Acme's API root; the simulator's URL in tests")


SPEC = ProviderSpec(
    name="acme",
    adapter="reelgate_acme.adapter:AcmeProvider",
    settings=AcmeSettings,
    catalog="reelgate_acme:catalog.yaml",
    description="Acme Motion (an example plugin)",
)
