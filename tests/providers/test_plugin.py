"""Providers are plugins: built-ins register through the `reelgate.providers` entry points, and settings,
configs and log redaction learn about providers only from their declarations."""

from __future__ import annotations

from importlib import metadata

import pytest

from reelgate.bootstrap import provider_configs
from reelgate.logging_setup import secrets_of
from reelgate.providers import plugin
from reelgate.providers.plugin import ENTRY_POINT_GROUP, ProviderPluginError, ProviderSpec
from reelgate.providers.registry import provider_specs
from reelgate.settings import Settings

BUILT_IN = {
    "sandbox", "runpod", "replicate", "pollo", "modelslab", "edenai", "poe", "fal", "runway", "luma", "veo",
    "openai_videos", "openrouter",
}  # fmt: skip


def test_built_ins_register_through_the_entry_point_group() -> None:
    declared = {ep.name for ep in metadata.distribution("reelgate").entry_points if ep.group == ENTRY_POINT_GROUP}
    assert declared == BUILT_IN
    specs = provider_specs()
    assert BUILT_IN <= set(specs)
    for name in BUILT_IN:
        assert specs[name].adapter_class().name == name


@pytest.mark.parametrize(
    ("variable", "provider", "field"),
    [
        ("RUNPOD_API_KEY", "runpod", "api_key"),
        ("REELGATE_RUNPOD_API_KEY", "runpod", "api_key"),
        ("RUNPOD_LTX_ENDPOINT_ID", "runpod", "ltx_endpoint_id"),
        ("RUNPOD_WAN_ENDPOINT_ID", "runpod", "wan_endpoint_id"),
        ("REELGATE_RUNPOD_BASE_URL", "runpod", "base_url"),
        ("REELGATE_RUNPOD_LTX_ENDPOINT_URL", "runpod", "ltx_endpoint_url"),
        ("REPLICATE_API_TOKEN", "replicate", "api_key"),
        ("REPLICATE_API_KEY", "replicate", "api_key"),
        ("REELGATE_REPLICATE_API_TOKEN", "replicate", "api_key"),
        ("REPLICATE_WEBHOOK_SECRET", "replicate", "webhook_secret"),
        ("POLLO_API_KEY", "pollo", "api_key"),
        ("POLLO_WEBHOOK_SECRET", "pollo", "webhook_secret"),
        ("MODELSLAB_API_KEY", "modelslab", "api_key"),
        ("EDENAI_API_KEY", "edenai", "api_key"),
        ("EDENAI_WEBHOOK_PUBLIC_KEY", "edenai", "webhook_public_key"),
        ("POE_API_KEY", "poe", "api_key"),
        ("REELGATE_POE_ENHANCE_BOT", "poe", "enhance_bot"),
        ("FAL_KEY", "fal", "api_key"),
        ("REELGATE_FAL_JWKS_URL", "fal", "jwks_url"),
        ("RUNWAYML_API_SECRET", "runway", "api_key"),
        ("REELGATE_RUNWAY_BASE_URL", "runway", "base_url"),
        ("LUMAAI_API_KEY", "luma", "api_key"),
        ("GEMINI_API_KEY", "veo", "api_key"),
        ("GOOGLE_API_KEY", "veo", "api_key"),
        ("REELGATE_VEO_BASE_URL", "veo", "base_url"),
        ("OPENAI_VIDEOS_BASE_URL", "openai_videos", "base_url"),
        ("OPENAI_VIDEOS_API_KEY", "openai_videos", "api_key"),
        ("OPENROUTER_API_KEY", "openrouter", "api_key"),
        ("OPENROUTER_WEBHOOK_SECRET", "openrouter", "webhook_secret"),
        ("REELGATE_OPENROUTER_BASE_URL", "openrouter", "base_url"),
    ],
)
def test_every_documented_variable_still_works(
    monkeypatch: pytest.MonkeyPatch, variable: str, provider: str, field: str
):
    monkeypatch.setenv(variable, "value-from-the-environment")
    assert getattr(Settings().providers[provider], field) == "value-from-the-environment"


def test_typed_values_keyword_arguments_and_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELGATE_SANDBOX_DELAY_SECONDS", "0.25")
    assert Settings().providers["sandbox"].delay_seconds == 0.25  # type: ignore[attr-defined]
    # A keyword argument (tests, embedding) wins over the environment.
    assert Settings(sandbox_delay_seconds=2).providers["sandbox"].delay_seconds == 2.0  # type: ignore[attr-defined]
    monkeypatch.setenv("REELGATE_SANDBOX_DELAY_SECONDS", "soon")
    with pytest.raises(ProviderPluginError, match="REELGATE_SANDBOX_DELAY_SECONDS"):
        Settings().providers  # noqa: B018


def test_configs_come_from_the_declarations(tmp_path) -> None:
    upstreams = '{"sora-2": {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-upstream-0123456789"}}'
    settings = Settings(
        data_dir=tmp_path, fal_key="fal-key-0123456789", openai_videos_upstreams=upstreams, poe_enhance_bot="Bot"
    )
    configs = provider_configs(settings)
    assert set(configs) == set(provider_specs())
    assert configs["fal"].api_key == "fal-key-0123456789"
    assert configs["poe"].extra == {"enhance_bot": "Bot", "spool_dir": str((tmp_path / "spool").resolve())}
    assert configs["openai_videos"].extra["sora-2.api_key"] == "sk-upstream-0123456789"
    assert configs["sandbox"].extra["spool_dir"] == str((tmp_path / "sandbox").resolve())
    # Secrets are whatever the declarations mark secret, including keys inside the upstreams' JSON.
    secrets = secrets_of(settings)
    assert "fal-key-0123456789" in secrets and "sk-upstream-0123456789" in secrets and "Bot" not in secrets


def _with_entry_points(monkeypatch: pytest.MonkeyPatch, *values: tuple[str, str]) -> None:
    points = [metadata.EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in values]
    monkeypatch.setattr(plugin, "_entry_points", lambda: iter(points))
    plugin.discover.cache_clear()


@pytest.fixture
def fresh_discovery():
    plugin.discover.cache_clear()
    yield
    plugin.discover.cache_clear()


def test_broken_registrations_are_named(monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> None:
    _with_entry_points(monkeypatch, ("fal", "reelgate.providers.specs:FAL"), ("fal", "reelgate.providers.specs:LUMA"))
    with pytest.raises(ProviderPluginError, match="declares the name 'luma'"):
        plugin.discover()
    _with_entry_points(monkeypatch, ("fal", "reelgate.providers.specs:FalSettings"))
    with pytest.raises(ProviderPluginError, match="not a reelgate ProviderSpec"):
        plugin.discover()
    _with_entry_points(monkeypatch, ("fal", "reelgate.providers.nowhere:SPEC"))
    with pytest.raises(ProviderPluginError, match="cannot load provider plugin fal"):
        plugin.discover()
    _with_entry_points(monkeypatch)
    with pytest.raises(ProviderPluginError, match="no provider is registered"):
        plugin.discover()


def test_an_adapter_that_is_not_a_provider_is_refused() -> None:
    with pytest.raises(ProviderPluginError, match="not a reelgate Provider"):
        ProviderSpec(name="x", adapter="reelgate.providers.specs:FalSettings").adapter_class()


def test_http_adapters_share_one_base() -> None:
    """Client, base URL, auth header and error mapping are set up in one place, not per adapter."""
    from reelgate.providers.http_provider import HTTPProvider

    # The sandbox speaks no HTTP; openai_videos holds one client per upstream server (VideosUpstream).
    for name, spec in provider_specs().items():
        if name not in ("sandbox", "openai_videos") and name in BUILT_IN:
            assert issubclass(spec.adapter_class(), HTTPProvider), name
