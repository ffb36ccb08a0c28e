"""How a provider declares itself: a `ProviderSpec` registered under the `reelgate.providers` entry point group.

Built-in providers and third-party packages register the same way (see docs/providers.md):

    [project.entry-points."reelgate.providers"]
    myvendor = "myvendor_reelgate:SPEC"

A spec names the provider, its typed settings (each field with the environment variables it is read
from and whether it is a secret), the catalog entries of its models if it ships any, and its adapter
class as "module:Class", imported only when the provider is first used so an unused vendor's
dependencies never load. The composition root turns the settings into a `ProviderConfig` for the adapter.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from reelgate.domain.request_rates import RequestRate
from reelgate.providers.base import Provider, ProviderConfig

ENTRY_POINT_GROUP = "reelgate.providers"
# ProviderConfig's own fields; every other setting reaches the adapter in `ProviderConfig.extra`.
_CONFIG_FIELDS = ("api_key", "base_url", "webhook_secret")


class ProviderPluginError(RuntimeError):
    """A provider registration that cannot be used: it names the entry point and the problem."""


def setting(
    *env: str, secret: bool = False, default: Any = None, attr: str | None = None, description: str = ""
) -> Any:
    """A provider setting: read from the first of `env` that is set, then from `REELGATE_<ATTR>`.

    `attr` is the setting's name in `Settings(...)` keyword arguments and in `REELGATE_<ATTR>`; it defaults to
    "<provider>_<field>". `secret` values are redacted from every log line."""
    return Field(
        default=default, description=description, json_schema_extra={"env": list(env), "secret": secret, "attr": attr}
    )


@dataclass(frozen=True)
class HostPaths:
    """What the host tells every provider: its data directory and where adapters may spool downloads."""

    data_dir: Path
    spool_dir: str


@dataclass(frozen=True)
class SettingField:
    """One declared setting, as the environment reader sees it."""

    field: str
    attr: str
    env: tuple[str, ...]
    secret: bool


class ProviderSettings(BaseModel):
    """Base of a provider's typed settings. Fields named `api_key`, `base_url` and `webhook_secret` fill those
    of `ProviderConfig`; the others go to `ProviderConfig.extra` as text. Subclasses add host values (a spool
    directory) in `host_extra`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider_name: ClassVar[str] = ""

    @classmethod
    def fields_for(cls, provider: str) -> list[SettingField]:
        declared = []
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            attr = str(extra.get("attr") or f"{provider}_{name}")
            env = [str(e) for e in extra.get("env") or []]  # type: ignore[union-attr]
            names = tuple(dict.fromkeys([*env, f"REELGATE_{attr.upper()}"]))
            declared.append(SettingField(name, attr, names, bool(extra.get("secret"))))
        return declared

    def secret_values(self, provider: str) -> list[str]:
        """Values to redact from logs: every field declared secret."""
        values = [getattr(self, f.field) for f in self.fields_for(provider) if f.secret]
        return [str(v) for v in values if v not in (None, "")]

    def host_extra(self, host: HostPaths) -> dict[str, str]:
        return {}

    def to_config(self, host: HostPaths) -> ProviderConfig:
        values = self.model_dump()
        extra = {k: _text(v) for k, v in values.items() if k not in _CONFIG_FIELDS and v not in (None, "")}
        return ProviderConfig(
            api_key=values.get("api_key"),
            base_url=values.get("base_url"),
            webhook_secret=values.get("webhook_secret"),
            extra={**extra, **self.host_extra(host)},
        )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class ProviderSpec:
    """A provider's declaration. `adapter` is "module:Class"; `catalog` is "package:resource.yaml" holding a
    `models:` list (priced in the default catalog's credit unit, US$0.01) that the default catalog includes."""

    name: str
    adapter: str
    settings: type[ProviderSettings] = ProviderSettings
    catalog: str | None = None
    description: str = ""
    docs: str = ""
    # The most of our jobs the provider takes at once (queued or running there), when its account has such a
    # limit; reelgate holds further submissions back instead of having them refused. None: no limit.
    max_in_flight: int | None = None
    # The request rate the vendor publishes for creating jobs (e.g. 600 a minute); reelgate paces its submits
    # to stay under it, across all workers, instead of having them refused with 429. None: no published rate.
    rate_limit: RequestRate | None = None

    def adapter_class(self) -> type[Provider]:
        module_name, _, class_name = self.adapter.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ProviderPluginError(f"provider {self.name}: cannot import its adapter {self.adapter}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ProviderPluginError(f"provider {self.name}: {self.adapter} is not a reelgate Provider")
        return cls

    def catalog_text(self) -> str | None:
        if not self.catalog:
            return None
        package, _, resource = self.catalog.partition(":")
        return resources.files(package).joinpath(resource).read_text(encoding="utf-8")

    def load_settings(self, values: Mapping[str, Any]) -> ProviderSettings:
        """Typed settings from values keyed by field name; a bad value names the variables it came from."""
        from pydantic import ValidationError

        try:
            return self.settings.model_validate(dict(values))
        except ValidationError as exc:
            fields = {f.field: f for f in self.settings.fields_for(self.name)}
            problems = []
            for error in exc.errors():
                field = fields.get(str(error["loc"][0])) if error["loc"] else None
                where = " / ".join(field.env) if field else ".".join(str(p) for p in error["loc"])
                problems.append(f"{where}: {error['msg']}")
            raise ProviderPluginError(f"provider {self.name} settings: " + "; ".join(problems)) from None


def _entry_points() -> Iterator[metadata.EntryPoint]:
    yield from metadata.entry_points(group=ENTRY_POINT_GROUP)


@lru_cache(maxsize=1)
def discover() -> dict[str, ProviderSpec]:
    """Every provider registered under the entry point group, by name (built-ins included)."""
    specs: dict[str, ProviderSpec] = {}
    origins: dict[str, str] = {}
    for entry_point in _entry_points():
        origin = f"{entry_point.name} = {entry_point.value}"
        try:
            spec = entry_point.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is named, whatever it raised
            raise ProviderPluginError(f"cannot load provider plugin {origin}: {exc!r}") from exc
        if not isinstance(spec, ProviderSpec):
            raise ProviderPluginError(f"provider plugin {origin} is not a reelgate ProviderSpec")
        if spec.name != entry_point.name:
            raise ProviderPluginError(f"provider plugin {origin} declares the name {spec.name!r}")
        if spec.name in specs and origins[spec.name] != origin:
            raise ProviderPluginError(f"two plugins register provider {spec.name!r}: {origins[spec.name]}; {origin}")
        specs[spec.name], origins[spec.name] = spec, origin
    if not specs:
        raise ProviderPluginError(
            f"no provider is registered under the {ENTRY_POINT_GROUP!r} entry points: is reelgate installed "
            "(pip install -e .)?"
        )
    return dict(sorted(specs.items()))
