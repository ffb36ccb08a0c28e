"""Each example catalog reproduces its published prices cell by cell; the default catalog loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelgate.catalog import load_catalog, load_default_catalog
from reelgate.domain.catalog import Catalog, GenerationInput, resolve_request
from reelgate.domain.pricing import Quote, quote

CATALOGS = Path(__file__).resolve().parents[1] / "examples" / "catalogs"


def _load(name: str) -> Catalog:
    return load_catalog(CATALOGS / name)


def _quote(catalog: Catalog, model: str, **given: object) -> Quote:
    spec = catalog.get(model)
    request = resolve_request(spec, GenerationInput(prompt="a lighthouse at dusk, slow pan", **given))
    return quote(spec, request)


# Pollo tiers: tier, model, 5 s price, 10 s price (in dollars; 1 credit = US$0.01).
POLLO_TABLE = [
    ("kling-v1-6", "1.00", "2.00"),
    ("pollo-v1-6", "1.55", "3.10"),
    ("kling-v2-5-turbo", "1.86", "3.72"),
    ("runway-gen-4-turbo", "4.65", "9.30"),
]


@pytest.mark.parametrize(
    ("model", "duration", "dollars"),
    [(m, 5, five) for m, five, _ in POLLO_TABLE] + [(m, 10, ten) for m, _, ten in POLLO_TABLE],
)
def test_pollo_tier_table(model: str, duration: int, dollars: str) -> None:
    catalog = _load("pollo-tiers.yaml")
    expected = round(float(dollars) * 100)
    result = _quote(catalog, model, duration=duration)
    assert result.total == expected
    assert result.breakdown == {"base": expected}


def test_pollo_price_does_not_depend_on_resolution_or_mode() -> None:
    catalog = _load("pollo-tiers.yaml")
    assert _quote(catalog, "pollo-v1-6", duration=5, resolution="720p").total == 155
    assert _quote(catalog, "runway-gen-4-turbo", duration=10, resolution="720p").total == 930
    assert _quote(catalog, "kling-v1-6", duration=10, options={"mode": "pro"}).total == 200


# LTX-2 on RunPod: duration -> (fast 720p, fast 1080p, pro 720p, pro 1080p).
LTX_TABLE = {10: (30, 45, 45, 60), 15: (45, 67, 67, 90), 20: (60, 90, 90, 120)}
LTX_COLUMNS = [("fast", "720p"), ("fast", "1080p"), ("pro", "720p"), ("pro", "1080p")]


@pytest.mark.parametrize("model", ["ltx-2-t2v", "ltx-2-i2v"])
@pytest.mark.parametrize(
    ("duration", "mode", "resolution", "credits"),
    [(d, mode, res, row[i]) for d, row in LTX_TABLE.items() for i, (mode, res) in enumerate(LTX_COLUMNS)],
)
def test_ltx2_table(model: str, duration: int, mode: str, resolution: str, credits: int) -> None:
    catalog = _load("runpod-ltx2.yaml")
    result = _quote(
        catalog,
        model,
        duration=duration,
        resolution=resolution,
        options={"mode": mode},
        start_image=model == "ltx-2-i2v",
    )
    assert result.total == credits
    assert result.breakdown == {"base": credits}


def test_ltx2_i2v_needs_a_start_image_and_wan_is_priced_by_resolution() -> None:
    catalog = _load("runpod-ltx2.yaml")
    assert catalog.get("ltx-2-i2v").capabilities.start_image == "required"
    assert _quote(catalog, "wan-2.2-runpod", resolution="480p").total < _quote(catalog, "wan-2.2-runpod").total


@pytest.mark.parametrize(
    ("model", "given", "total", "breakdown"),
    [
        ("veo3", {"resolution": "720p", "duration": 8}, 2500, {"base": 2500}),
        (
            "veo3",
            {"resolution": "1080p", "duration": 16},
            5250,
            {"base": 2500, "resolution": 750, "duration": 2000},
        ),
        (
            "kling-2.5",
            {"resolution": "1080p", "duration": 10, "start_image": True},
            1000,
            {"base": 500, "images": 100, "resolution": 150, "duration": 250},
        ),
        # The published estimate example: Veo 3 at 1080p and its default 8 s.
        ("veo3", {"resolution": "1080p", "duration": 8}, 3250, {"base": 2500, "resolution": 750}),
    ],
)
def test_modelslab_edenai_worked_examples(
    model: str, given: dict[str, object], total: int, breakdown: dict[str, int]
) -> None:
    result = _quote(_load("modelslab-edenai.yaml"), model, **given)
    assert result.total == total
    assert result.breakdown == breakdown


@pytest.mark.parametrize(
    ("model", "base", "default_duration"),
    [
        ("veo3", 2500, 8),
        ("veo2", 2200, 8),
        ("text-to-video-ultra", 1300, 8),
        ("wan-2.2-t2v", 1200, 10),
        ("seedance-t2v", 400, 5),
        ("runway-gen-3", 750, 10),
        ("kling-2.5", 500, 5),
        ("amazon-nova-reel", 400, 6),
    ],
)
def test_modelslab_edenai_base_credits(model: str, base: int, default_duration: int) -> None:
    catalog = _load("modelslab-edenai.yaml")
    spec = catalog.get(model)
    assert spec.capabilities.default_duration == default_duration
    assert _quote(catalog, model).breakdown == {"base": base}
    assert catalog.credit_unit.currency == "IDR" and catalog.credit_unit.value == 50


def test_modelslab_modifiers() -> None:
    catalog = _load("modelslab-edenai.yaml")
    assert _quote(catalog, "text-to-video-ultra", resolution="4k").breakdown == {"base": 1300, "resolution": 1300}
    both = _quote(catalog, "veo3", start_image=True, end_image=True, audio=True, enhance_prompt=True)
    assert both.breakdown == {"base": 2500, "images": 1000, "audio": 10, "enhance_prompt": 5}
    assert _quote(catalog, "veo3", end_image=True).breakdown == {"base": 2500, "images": 750}


@pytest.mark.parametrize("model", ["t2v-14B", "i2v-14B"])
@pytest.mark.parametrize(("resolution", "credits"), [("720p", 20), ("480p", 10)])
def test_replicate_wan(model: str, resolution: str, credits: int) -> None:
    result = _quote(_load("replicate-wan.yaml"), model, resolution=resolution, start_image=model == "i2v-14B")
    assert result.total == credits


def test_replicate_seed_004_models() -> None:
    catalog = _load("replicate-wan.yaml")
    flux = catalog.get("flux-schnell")
    assert flux.kind == "image"
    assert flux.provider_model == "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"
    assert catalog.get("zeroscope-v2-xl").provider_model.startswith("9f747673945c")
    assert _quote(catalog, "flux-schnell").total == 1
    assert _quote(catalog, "zeroscope-v2-xl").total == 16


SEED_MODEL_IDS = {
    "ltx-2-t2v",
    "ltx-2-i2v",
    "wan-2.2-runpod",
    "kling-v1-6",
    "pollo-v1-6",
    "kling-v2-5-turbo",
    "runway-gen-4-turbo",
    "veo3",
    "veo2",
    "text-to-video-ultra",
    "wan-2.2-t2v",
    "seedance-t2v",
    "runway-gen-3",
    "kling-2.5",
    "amazon-nova-reel",
    "t2v-14B",
    "i2v-14B",
    "zeroscope-v2-xl",
    "flux-schnell",
    "video-generator-pro",
}


def test_default_catalog_contains_sandbox_and_every_seed_model() -> None:
    catalog = load_default_catalog()
    assert catalog.ids[:2] == ("sandbox-t2v", "sandbox-i2v")
    assert SEED_MODEL_IDS <= set(catalog.ids)
    assert catalog.credit_unit.currency == "USD" and str(catalog.credit_unit.value) == "0.01"
    assert {spec.provider for spec in catalog.models} == {
        "sandbox",
        "runpod",
        "replicate",
        "pollo",
        "modelslab",
        "edenai",
        "poe",
    }
    assert [spec.id for spec in catalog.models if spec.preview] == ["sandbox-t2v", "sandbox-i2v"]


def test_default_sandbox_is_cheap_and_priced_by_duration() -> None:
    catalog = load_default_catalog()
    t2v, i2v = catalog.get("sandbox-t2v"), catalog.get("sandbox-i2v")
    assert {2, 3, 4, 5, 6, 8, 10} <= set(t2v.capabilities.durations)
    assert t2v.capabilities.start_image == "none" and i2v.capabilities.start_image == "required"
    assert i2v.capabilities.end_image and t2v.deadline_seconds == i2v.deadline_seconds == 600
    five = _quote(catalog, "sandbox-t2v", duration=5, resolution="720p").total
    assert 0 < five <= 20
    assert _quote(catalog, "sandbox-t2v", duration=8).total > five
    assert _quote(catalog, "sandbox-t2v", duration=3).total < five


def test_default_catalog_keeps_the_same_published_prices_in_us_credits() -> None:
    catalog = load_default_catalog()
    assert _quote(catalog, "pollo-v1-6", duration=10).total == 310
    assert _quote(catalog, "ltx-2-t2v", duration=15, resolution="1080p").total == 67
    assert _quote(catalog, "t2v-14B", resolution="480p").total == 10
