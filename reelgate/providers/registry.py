"""The explicit provider registry: names to adapter classes, imported only when first used."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from reelgate.providers.base import Provider, ProviderConfig

# Built-in adapters are listed exactly like an add-on would be: "module:Class", imported lazily so an
# unused vendor's dependencies never load.
PROVIDER_CLASSES: dict[str, str] = {
    "sandbox": "reelgate.providers.sandbox:SandboxProvider",
    "runpod": "reelgate.providers.runpod:RunPodProvider",
    "replicate": "reelgate.providers.replicate:ReplicateProvider",
    "pollo": "reelgate.providers.pollo:PolloProvider",
    "modelslab": "reelgate.providers.modelslab:ModelsLabProvider",
    "edenai": "reelgate.providers.edenai:EdenAIProvider",
    "poe": "reelgate.providers.poe:PoeProvider",
    "fal": "reelgate.providers.fal:FalProvider",
    "runway": "reelgate.providers.runway:RunwayProvider",
    "luma": "reelgate.providers.luma:LumaProvider",
    "veo": "reelgate.providers.veo:VeoProvider",
    "openai_videos": "reelgate.providers.openai_videos:OpenAIVideosProvider",
}


class UnknownProvider(KeyError):
    """A provider name that is not in the registry."""


def provider_class(name: str) -> type[Provider]:
    try:
        target = PROVIDER_CLASSES[name]
    except KeyError:
        raise UnknownProvider(name) from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"{target} is not a Provider")
    return cls


def build_provider(name: str, config: ProviderConfig) -> Provider:
    return provider_class(name)(config)


class ProviderRegistry:
    """One adapter instance per configured name, built on first use and closed together."""

    def __init__(self, configs: Mapping[str, ProviderConfig]) -> None:
        unknown = set(configs) - set(PROVIDER_CLASSES)
        if unknown:
            raise UnknownProvider(", ".join(sorted(unknown)))
        self._configs = dict(configs)
        self._instances: dict[str, Provider] = {}

    def names(self) -> list[str]:
        return sorted(self._configs)

    def get(self, name: str) -> Provider:
        provider = self._instances.get(name)
        if provider is None:
            if name not in self._configs:
                raise UnknownProvider(name)
            provider = self._instances[name] = build_provider(name, self._configs[name])
        return provider

    async def aclose(self) -> None:
        instances, self._instances = list(self._instances.values()), {}
        for provider in instances:
            await provider.aclose()
