"""Each example catalog reproduces its published price list cell by cell; every shipped catalog loads, its
fallbacks can fire, and every model carries its provider cost, expected time and the options its adapter reads."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reelgate.catalog import load_catalog, load_default_catalog
from reelgate.domain.catalog import (
    Catalog,
    Fallback,
    GenerationInput,
    ModelSpec,
    ResolvedRequest,
    resolve_request,
    same_value,
)
from reelgate.domain.costs import provider_cost_estimate
from reelgate.domain.errors import ValidationFailed
from reelgate.domain.fallbacks import fallback_request
from reelgate.domain.pricing import Quote, quote

CATALOGS = Path(__file__).resolve().parents[1] / "examples" / "catalogs"


def _load(name: str) -> Catalog:
    return load_catalog(CATALOGS / name)


def _quote(catalog: Catalog, model: str, **given: object) -> Quote:
    spec = catalog.get(model)
    request = resolve_request(spec, GenerationInput(prompt="a lighthouse at dusk, slow pan", **given))
    return quote(spec, request)


# The Pollo tier table: tier, model, 5 s price, 10 s price (in dollars; 1 credit = US$0.01).
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


# The LTX-2 table: duration -> (fast 720p, fast 1080p, pro 720p, pro 1080p).
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
        # The published estimate response: Veo 3 at 1080p and its default 8 s.
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


def test_replicate_zeroscope_and_flux() -> None:
    catalog = _load("replicate-wan.yaml")
    flux = catalog.get("flux-schnell")
    assert flux.kind == "image"
    assert flux.provider_model == "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"
    assert catalog.get("zeroscope-v2-xl").provider_model.startswith("9f747673945c")
    assert _quote(catalog, "flux-schnell").total == 1
    assert _quote(catalog, "zeroscope-v2-xl").total == 16


PUBLISHED_MODEL_IDS = {
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


def test_default_catalog_contains_sandbox_and_every_example_model() -> None:
    catalog = load_default_catalog()
    assert catalog.ids[:2] == ("sandbox-t2v", "sandbox-i2v")
    assert PUBLISHED_MODEL_IDS <= set(catalog.ids)
    assert catalog.credit_unit.currency == "USD" and str(catalog.credit_unit.value) == "0.01"
    assert {spec.provider for spec in catalog.models} == {
        "sandbox",
        "runpod",
        "replicate",
        "pollo",
        "modelslab",
        "edenai",
        "poe",
        "openrouter",
    }
    assert [spec.id for spec in catalog.models if spec.preview] == ["sandbox-t2v", "sandbox-i2v"]


def test_default_openrouter_models_sell_at_two_and_a_half_times_their_list_price() -> None:
    catalog = load_default_catalog()
    openrouter = [spec for spec in catalog.models if spec.provider == "openrouter"]
    assert {spec.provider_model for spec in openrouter} == {
        "google/veo-3.1",
        "google/veo-3.1-fast",
        "openai/sora-2-pro",
        "alibaba/wan-2.6",
    }
    # US$0.40/s x 8 s x 2.5 = US$8 = 800 credits; Veo 3.1 Fast at US$0.15/s; Wan 2.6 at 1080p costs 1.5x.
    assert _quote(catalog, "openrouter-veo-3.1").total == 800
    assert _quote(catalog, "openrouter-veo-3.1-fast", duration=4).total == 150
    assert _quote(catalog, "openrouter-wan-2.6", duration=5, resolution="1080p").total == 188


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


def test_pollo_1_6_sells_every_validated_duration_including_8_s() -> None:
    for catalog in (_load("pollo-tiers.yaml"), load_default_catalog()):
        assert catalog.get("pollo-v1-6").capabilities.durations == (5, 6, 7, 8, 9, 10)
        assert _quote(catalog, "pollo-v1-6", duration=8).total == 248  # $0.31 × 8
        assert catalog.get("kling-v2-5-turbo").capabilities.durations == (5, 10)


# ---------------------------------------------------------------- every shipped catalog

SHIPPED = ["default", *sorted(path.name for path in CATALOGS.glob("*.yaml"))]


def _shipped(name: str) -> Catalog:
    return load_default_catalog() if name == "default" else _load(name)


def _fallbacks() -> Iterator[tuple[str, str, str]]:
    for name in SHIPPED:
        for spec in _shipped(name).models:
            for fallback in spec.fallbacks:
                yield name, spec.id, fallback.model


FALLBACKS = list(_fallbacks())


def test_the_shipped_catalogs_have_fallbacks_to_check() -> None:
    assert len(FALLBACKS) >= 20
    assert ("default", "video-generator-pro", "zeroscope-v2-xl") in FALLBACKS  # Poe out of credit: Replicate


def _option_choices(spec: ModelSpec) -> list[list[tuple[str, Any]]]:
    """Each option's values to try (a range by its ends and default), plus leaving an optional one out."""
    choices = []
    for name, option in spec.capabilities.options.items():
        values = list(option.values)
        if option.range is not None:
            values = [option.range.min, option.range.max, *([option.default] if option.default is not None else [])]
        choices.append([(name, v) for v in values] + ([(name, None)] if option.optional else []))
    return choices


def _requests(spec: ModelSpec) -> Iterator[ResolvedRequest]:
    """Every combination of the model's offers (ranges sampled), resolved as the API would."""
    caps = spec.capabilities
    images = {"none": [False], "optional": [False, True], "required": [True]}[caps.start_image]
    flags = [
        [None, "blurry, low quality"] if caps.negative_prompt else [None],
        [None, 7] if caps.seed else [None],
        [False, True] if caps.audio else [False],
        [False, True] if caps.end_image else [False],
    ]
    dims = [caps.durations, caps.resolutions, caps.aspect_ratios, images, *flags, *_option_choices(spec)]
    for duration, resolution, aspect, image, negative, seed, audio, end, *options in itertools.product(*dims):
        given = GenerationInput(
            prompt="a lighthouse at dusk, waves rolling in",
            negative_prompt=negative,
            # A text model takes no duration, size or shape: a request that names one is refused.
            duration=duration or None,
            resolution=resolution if spec.kind != "text" else None,
            aspect_ratio=aspect if spec.kind != "text" else None,
            seed=seed,
            start_image=image,
            end_image=end,
            audio=audio,
            options={name: value for name, value in options if value is not None},
        )
        yield resolve_request(spec, given)


def _check_served(request: ResolvedRequest, served: ResolvedRequest, fallback: Fallback, target: ModelSpec) -> None:
    """What the fallback receives is a request the fallback itself accepts, changed only as its map says."""
    again = resolve_request(
        target,
        GenerationInput(
            prompt=served.prompt,
            negative_prompt=served.negative_prompt,
            duration=served.duration or None,
            resolution=served.resolution,
            aspect_ratio=served.aspect_ratio,
            seed=served.seed,
            start_image=served.start_image,
            end_image=served.end_image,
            audio=served.audio,
            options=dict(served.options),
        ),
    )
    assert again == served
    mapping = fallback.map
    assert served.duration == mapping.duration.get(request.duration, request.duration) >= request.duration
    assert served.resolution == mapping.resolution.get(request.resolution, request.resolution)
    assert served.aspect_ratio == mapping.aspect_ratio.get(request.aspect_ratio, request.aspect_ratio)
    assert (served.start_image, served.end_image, served.audio) == (
        request.start_image,
        request.end_image,
        request.audio,
    )
    assert served.prompt == request.prompt
    for name, value in request.options.items():
        rule = mapping.options.get(name)
        if rule is None:
            assert same_value(served.options[name], value)
        elif rule != "drop":
            assert isinstance(rule, dict)
            assert same_value(served.options[name], rule.get(str(value), value))


@pytest.mark.parametrize(("catalog_name", "model", "fallback_id"), FALLBACKS)
def test_every_fallback_of_every_shipped_catalog_can_serve_a_request_of_its_model(
    catalog_name: str, model: str, fallback_id: str
) -> None:
    catalog = _shipped(catalog_name)
    source, target = catalog.get(model), catalog.get(fallback_id)
    (fallback,) = [f for f in source.fallbacks if f.model == fallback_id]
    served_count = 0
    for request in _requests(source):
        served = fallback_request(source, request, fallback, target)
        if served is not None:
            _check_served(request, served, fallback, target)
            served_count += 1
    assert served_count > 0, f"{model} -> {fallback_id} in {catalog_name} can never fire"


def test_the_poe_video_bot_falls_back_to_zeroscope_at_480p() -> None:
    catalog = load_default_catalog()
    poe, zeroscope = catalog.get("video-generator-pro"), catalog.get("zeroscope-v2-xl")
    request = resolve_request(poe, GenerationInput(prompt="a lighthouse at dusk, waves rolling in"))
    served = fallback_request(poe, request, poe.fallbacks[0], zeroscope)
    assert served is not None and (served.duration, served.resolution) == (15, "480p")


@pytest.mark.parametrize("catalog_name", SHIPPED)
def test_every_shipped_model_has_a_provider_cost_an_expected_time_and_a_margin(catalog_name: str) -> None:
    catalog = _shipped(catalog_name)
    for spec in catalog.models:
        assert spec.provider_cost is not None, spec.id
        assert spec.estimated_seconds is not None, spec.id
        request = next(_requests(spec))
        cost = provider_cost_estimate(spec, request)
        assert cost is not None and cost >= 0
        if spec.preview:
            assert cost == 0
            continue
        assert cost > 0, spec.id
        # Costs are in the credit unit's currency here, so the margin at the model's cheapest request shows.
        assert spec.provider_cost.currency == catalog.credit_unit.currency
        price = quote(spec, request).total * catalog.credit_unit.value
        assert price > cost, f"{spec.id}: sold for {price}, costs {cost}"


def test_costs_follow_what_the_provider_bills() -> None:
    catalog = load_default_catalog()

    def cost(model: str, **given: Any) -> Decimal | None:
        spec = catalog.get(model)
        request = resolve_request(spec, GenerationInput(prompt="a lighthouse at dusk, slow pan", **given))
        return provider_cost_estimate(spec, request)

    assert cost("kling-v2-5-turbo", duration=10) == Decimal("1.20")  # $0.12/s
    assert cost("ltx-2-t2v", duration=10, resolution="1080p", options={"mode": "pro"}) == Decimal("0.15660")
    assert cost("veo3") == Decimal("3.128")  # 782 credits / 2.5
    assert cost("flux-schnell") == Decimal("0.003") and cost("zeroscope-v2-xl") == Decimal("0.05")
    assert cost("t2v-14B", resolution="480p") == Decimal("0.0411750")


# The options each adapter reads from a request, by catalog and model.
ADAPTER_OPTIONS = [
    ("runpod-ltx2.yaml", "ltx-2-t2v", {"mode", "camera_lora"}),
    ("runpod-ltx2.yaml", "ltx-2-i2v", {"mode", "camera_lora"}),
    ("pollo-tiers.yaml", "kling-v1-6", {"mode", "strength"}),
    ("pollo-tiers.yaml", "pollo-v1-6", {"mode"}),
    ("pollo-tiers.yaml", "kling-v2-5-turbo", {"strength"}),
    ("pollo-tiers.yaml", "runway-gen-4-turbo", {"motionStrength"}),
    ("replicate-wan.yaml", "zeroscope-v2-xl", {"fps"}),
    ("replicate-wan.yaml", "flux-schnell", {"output_format"}),
    ("wave2-providers.yaml", "luma-ray-2", {"loop"}),
    ("wave2-providers.yaml", "veo-3", {"personGeneration", "enhancePrompt"}),
    ("wave2-providers.yaml", "runway-gen4-turbo", {"ratio"}),
]


@pytest.mark.parametrize(("catalog_name", "model", "names"), ADAPTER_OPTIONS)
def test_the_options_adapters_read_are_declared(catalog_name: str, model: str, names: set[str]) -> None:
    for catalog in (_load(catalog_name), *([load_default_catalog()] if catalog_name != "wave2-providers.yaml" else [])):
        assert set(catalog.get(model).capabilities.options) == names


def test_adapter_options_with_their_allowed_values() -> None:
    ltx = _load("runpod-ltx2.yaml").get("ltx-2-t2v")
    assert resolve_request(ltx, GenerationInput(prompt="a lighthouse at dusk", options={"camera_lora": "dolly_in"}))
    kling = _load("pollo-tiers.yaml").get("kling-v1-6")
    assert resolve_request(kling, GenerationInput(prompt="a lighthouse at dusk")).options == {
        "mode": "std",
        "strength": 50,
    }
    with pytest.raises(ValidationFailed) as info:
        resolve_request(kling, GenerationInput(prompt="a lighthouse at dusk", options={"strength": 150}))
    assert info.value.allowed == {"min": 0, "max": 100, "step": 1}
    runway = _load("pollo-tiers.yaml").get("runway-gen-4-turbo")
    assert resolve_request(runway, GenerationInput(prompt="a lighthouse at dusk")).options == {}
    moving = GenerationInput(prompt="a lighthouse at dusk", options={"motionStrength": 4})
    assert resolve_request(runway, moving).options == {"motionStrength": 4}


def test_image_models_offer_their_aspect_ratios() -> None:
    flux = _load("replicate-wan.yaml").get("flux-schnell")
    assert {"1:1", "16:9", "9:16", "4:3", "3:4"} <= set(flux.capabilities.aspect_ratios)
    wide = resolve_request(flux, GenerationInput(prompt="a lighthouse at dusk", aspect_ratio="16:9"))
    assert (wide.width, wide.height) == (1360, 768)


def test_the_tiers_of_the_pollo_catalog() -> None:
    catalog = _load("pollo-tiers.yaml")
    assert catalog.tier_ids == ("economy", "basic", "pro", "premium")
    assert [[spec.id for spec in catalog.in_tier(t)] for t in catalog.tier_ids] == [
        ["kling-v1-6"],
        ["pollo-v1-6"],
        ["kling-v2-5-turbo"],
        ["runway-gen-4-turbo"],
    ]
