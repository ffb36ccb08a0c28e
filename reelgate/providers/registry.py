"""The provider registry: adapters of the providers declared under the `reelgate.providers` entry points."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping

from reelgate.providers.base import Provider, ProviderConfig
from reelgate.providers.plugin import ProviderSpec, discover

log = logging.getLogger("reelgate.providers")


class UnknownProvider(KeyError):
    """A provider name that no installed package registers."""


def provider_specs() -> dict[str, ProviderSpec]:
    """Every registered provider by name, built-ins and third-party packages alike."""
    return discover()


def provider_class(name: str) -> type[Provider]:
    spec = provider_specs().get(name)
    if spec is None:
        raise UnknownProvider(name)
    return spec.adapter_class()


def build_provider(name: str, config: ProviderConfig) -> Provider:
    return provider_class(name)(config)


def config_fingerprint(config: ProviderConfig) -> str:
    """A short, stable digest of one account's config: jobs record it instead of the credentials.

    64 bits of SHA-256 over high-entropy keys reveal nothing usable, yet tell two accounts apart."""
    material = json.dumps(
        [config.api_key, config.base_url, config.webhook_secret, sorted(config.extra.items())], default=str
    )
    return hashlib.sha256(b"reelgate-provider-account\0" + material.encode()).hexdigest()[:16]


class ProviderRegistry:
    """One adapter instance per configured name, built on first use and closed together.

    Jobs are bound to the account they were submitted with (`account`, then `get_bound`): when a
    provider is reconfigured, the old config stays here so its jobs keep polling, canceling and
    downloading with it for as long as this process lives."""

    def __init__(self, configs: Mapping[str, ProviderConfig]) -> None:
        unknown = set(configs) - set(provider_specs())
        if unknown:
            raise UnknownProvider(", ".join(sorted(unknown)))
        self._configs = dict(configs)
        self._instances: dict[str, Provider] = {}
        # Configs replaced by `reconfigure`, and adapters built for them, by (name, fingerprint).
        self._retired: dict[tuple[str, str], ProviderConfig] = {}
        self._retired_instances: dict[tuple[str, str], Provider] = {}
        self._warned: set[tuple[str, str]] = set()

    def names(self) -> list[str]:
        return sorted(self._configs)

    def get(self, name: str) -> Provider:
        provider = self._instances.get(name)
        if provider is None:
            if name not in self._configs:
                raise UnknownProvider(name)
            provider = self._instances[name] = build_provider(name, self._configs[name])
        return provider

    def account(self, name: str) -> dict[str, str | None]:
        """What a job records about the account it is submitted with (no credentials)."""
        config = self._configs.get(name)
        if config is None:
            raise UnknownProvider(name)
        return {"fingerprint": config_fingerprint(config), "base_url": config.base_url}

    def get_bound(self, name: str, fingerprint: str | None) -> Provider:
        """The adapter for the account a job was submitted with; the current one when that is unknown."""
        if fingerprint is None or name not in self._configs:
            return self.get(name)
        if fingerprint == config_fingerprint(self._configs[name]):
            return self.get(name)
        key = (name, fingerprint)
        provider = self._retired_instances.get(key)
        if provider is not None:
            return provider
        config = self._retired.get(key)
        if config is None:
            # A restart with new settings: the old credentials were never stored, so try the current ones.
            if key not in self._warned:
                self._warned.add(key)
                log.warning("a %s job is bound to an account this process does not have; using the current one", name)
            return self.get(name)
        provider = self._retired_instances[key] = build_provider(name, config)
        return provider

    def reconfigure(self, name: str, config: ProviderConfig) -> None:
        """New credentials or base URL for new jobs; jobs already submitted stay on their account."""
        if name not in provider_specs():
            raise UnknownProvider(name)
        old = self._configs.get(name)
        if old is not None:
            key = (name, config_fingerprint(old))
            self._retired[key] = old
            instance = self._instances.pop(name, None)
            if instance is not None:
                self._retired_instances[key] = instance
        self._configs[name] = config

    async def aclose(self) -> None:
        instances = [*self._instances.values(), *self._retired_instances.values()]
        self._instances, self._retired_instances = {}, {}
        for provider in instances:
            await provider.aclose()
