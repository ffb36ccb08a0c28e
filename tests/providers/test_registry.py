"""The provider registry: lazy imports, one cached instance per name, closed together."""

from __future__ import annotations

import pytest

from reelgate.providers.base import ProviderConfig
from reelgate.providers.pollo import PolloProvider
from reelgate.providers.registry import ProviderRegistry, UnknownProvider, build_provider, provider_specs


async def test_registry_builds_caches_and_closes():
    registry = ProviderRegistry({"pollo": ProviderConfig(api_key="k"), "runpod": ProviderConfig()})
    assert registry.names() == ["pollo", "runpod"]
    pollo = registry.get("pollo")
    assert isinstance(pollo, PolloProvider) and registry.get("pollo") is pollo
    with pytest.raises(UnknownProvider):
        registry.get("replicate")  # known, but not configured here
    await registry.aclose()


def test_unknown_names_are_refused():
    assert {"sandbox", "runpod", "replicate", "pollo"} <= set(provider_specs())
    with pytest.raises(UnknownProvider):
        ProviderRegistry({"nope": ProviderConfig()})
    with pytest.raises(UnknownProvider):
        build_provider("nope", ProviderConfig())
    assert build_provider("replicate", ProviderConfig()).name == "replicate"
