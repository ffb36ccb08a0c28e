"""The wave-2 example catalog loads, names only registered providers, and prices at cost x 2.5."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelgate.catalog.loader import load_catalog
from reelgate.domain.catalog import GenerationInput, resolve_request
from reelgate.domain.pricing import quote
from reelgate.providers.registry import provider_class, provider_specs

CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalogs" / "wave2-providers.yaml"


def test_loads_and_covers_every_new_provider():
    catalog = load_catalog(CATALOG)
    providers = {m.provider for m in catalog.models}
    assert providers == {"runway", "luma", "veo", "fal", "openai_videos"}
    for name in providers:
        assert name in provider_specs() and provider_class(name).name == name


@pytest.mark.parametrize(
    ("model", "given", "total"),
    [
        ("runway-gen45", {"duration": 10}, 300),  # 0.12 x 2.5 = 30 credits/s
        ("luma-ray-2", {"duration": 5, "resolution": "1080p"}, 900),  # 0.32 x 2.5 x 5 x 2.25
        ("veo-3", {"duration": 8}, 800),
        ("fal-kling-1-6-pro", {"duration": 5}, 119),  # 0.095 x 2.5 x 5 = 118.75, rounded up
        ("sora-2", {"duration": 12}, 300),
    ],
)
def test_prices_are_cost_times_markup(model, given, total):
    catalog = load_catalog(CATALOG)
    spec = next(m for m in catalog.models if m.id == model)
    request = resolve_request(spec, GenerationInput(prompt="a lighthouse at dusk", **given))
    assert quote(spec, request).total == total
