"""Catalog parsing errors name file, model and field; requests are validated and defaulted."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from reelgate.domain.catalog import (
    Catalog,
    CatalogError,
    GenerationInput,
    ModelSpec,
    dimensions,
    parse_catalog,
    resolve_request,
)
from reelgate.domain.errors import NotFound, ValidationFailed
from reelgate.domain.estimates import expected_seconds

SOURCE = "examples/catalogs/x.yaml"


def _model(**overrides: Any) -> dict[str, Any]:
    model: dict[str, Any] = {
        "id": "veo3",
        "name": "Veo 3",
        "provider": "modelslab",
        "provider_model": "veo3",
        "kind": "t2v",
        "capabilities": {
            "durations": [8, 16],
            "default_duration": 8,
            "resolutions": ["720p", "1080p"],
            "aspect_ratios": ["16:9", "9:16", "1:1"],
            "start_image": "optional",
            "negative_prompt": True,
            "seed": True,
            "options": {"mode": {"values": ["fast", "pro"], "default": "fast"}},
        },
        "pricing": {"rule": "per_second", "credits_per_second": 10},
    }
    model.update(overrides)
    return model


def _doc(*models: dict[str, Any]) -> dict[str, Any]:
    return {"credit_unit": {"name": "credits", "value": 0.01, "currency": "USD"}, "models": list(models)}


def _spec(**overrides: Any) -> ModelSpec:
    return parse_catalog(_doc(_model(**overrides)), source=SOURCE).models[0]


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, source=SOURCE)
    return str(info.value)


def test_bad_default_duration_names_file_model_and_field() -> None:
    model = _model()
    model["capabilities"]["default_duration"] = 9
    assert _error(_doc(model)) == (
        "examples/catalogs/x.yaml: model 'veo3': capabilities.default_duration: 9 is not one of durations [8, 16]"
    )


def test_unknown_pricing_rule() -> None:
    message = _error(_doc(_model(pricing={"rule": "per_word", "credits": 3})))
    assert message.startswith(f"{SOURCE}: model 'veo3': pricing")
    assert "per_word" in message


def test_pydantic_errors_are_located() -> None:
    message = _error(_doc(_model(pricing={"rule": "grid", "keys": ["duration"], "table": {8: "ten", 16: 3}})))
    assert message.startswith(f"{SOURCE}: model 'veo3': pricing.table:")
    assert _error(_doc(_model(colour="red"))) == f"{SOURCE}: model 'veo3': colour: Extra inputs are not permitted"
    assert _error(_doc(_model(kind="audio"))).startswith(f"{SOURCE}: model 'veo3': kind:")


def test_grid_missing_a_cell() -> None:
    grid = {"rule": "grid", "keys": ["mode", "duration"], "table": {"fast": {8: 10, 16: 20}, "pro": {8: 15}}}
    assert _error(_doc(_model(pricing=grid))) == (
        f"{SOURCE}: model 'veo3': pricing.table.pro: missing cell for duration 16"
    )


def test_grid_cell_for_a_value_not_offered() -> None:
    grid = {"rule": "grid", "keys": ["duration"], "table": {8: 10, 16: 20, 20: 30}}
    assert "pricing.table.20: 20 is not an offered duration" in _error(_doc(_model(pricing=grid)))


def test_grid_key_must_be_a_request_field_or_option() -> None:
    grid = {"rule": "grid", "keys": ["quality"], "table": {"hi": 1}}
    assert "pricing.keys: 'quality'" in _error(_doc(_model(pricing=grid)))


def test_duplicate_id() -> None:
    assert _error(_doc(_model(), _model())) == f"{SOURCE}: model 'veo3': id: duplicate model id"


def test_unknown_fallback_and_kind_mismatch() -> None:
    assert _error(_doc(_model(fallbacks=["veo9"]))) == (
        f"{SOURCE}: model 'veo3': fallbacks: 'veo9' is not another model here"
    )
    other = _model(id="img", kind="image", capabilities={"durations": [0]})
    message = _error(_doc(_model(fallbacks=["img"]), other))
    assert message == f"{SOURCE}: model 'veo3': fallbacks: 'img' is a image model, not t2v"


def test_other_cross_checks() -> None:
    assert "capabilities.start_image" in _error(_doc(_model(kind="i2v")))
    model = _model()
    model["capabilities"]["resolutions"] = ["720p", "8k"]
    assert "capabilities.resolutions: 8k" in _error(_doc(model))
    assert "pricing.markup" in _error(_doc(_model(pricing={"rule": "per_second", "markup": 3})))
    usd_cost = {"per_second": 0.1, "currency": "EUR"}
    assert "EUR" in _error(_doc(_model(pricing={"rule": "per_second", "markup": 3}, provider_cost=usd_cost)))
    assert "credit_unit: set once for the whole catalog" in _error(_doc(_model(credit_unit={"value": 1})))
    assert _error({"models": []}) == f"{SOURCE}: models: expected a non-empty list of models"
    assert "unknown top-level field" in _error({**_doc(_model()), "extra": 1})


def test_defaults_come_from_the_first_value_and_catalog_rounding_applies() -> None:
    doc = _doc(_model(capabilities={"durations": [4, 6], "resolutions": ["1080p", "720p"]}))
    doc["rounding"] = "floor"
    spec = parse_catalog(doc, source=SOURCE).models[0]
    assert spec.capabilities.default_duration == 4
    assert spec.capabilities.default_resolution == "1080p"
    assert spec.rounding == "floor"
    assert _spec(rounding="round").rounding == "round"


def test_get_unknown_model_is_not_found() -> None:
    catalog = parse_catalog(_doc(_model()), source=SOURCE)
    assert isinstance(catalog, Catalog) and catalog.get("veo3").id == "veo3"
    with pytest.raises(NotFound) as info:
        catalog.get("nope")
    assert info.value.message == "Unknown model 'nope'"
    assert info.value.details == {"model": "nope"}


def test_accepting_jobs_until_sunset() -> None:
    spec = _spec(lifecycle={"status": "deprecated", "sunset": date(2027, 1, 31)})
    assert spec.accepting_jobs(date(2027, 1, 31))
    assert not spec.accepting_jobs(date(2027, 2, 1))
    assert _spec().accepting_jobs(date(2100, 1, 1))


def test_specs_are_frozen() -> None:
    spec = _spec()
    with pytest.raises(ValueError, match="frozen"):
        spec.id = "other"  # type: ignore[misc]


# ---------------------------------------------------------------- resolve_request

PROMPT = "a red fox trotting through fresh snow"


def test_defaults_filled() -> None:
    resolved = resolve_request(_spec(), GenerationInput(prompt=f"  {PROMPT} "))
    assert resolved.prompt == PROMPT
    assert (resolved.duration, resolved.resolution, resolved.aspect_ratio) == (8, "720p", "16:9")
    assert (resolved.width, resolved.height) == (1280, 720)
    assert resolved.options == {"mode": "fast"}
    assert resolved.negative_prompt is None and resolved.seed is None


def test_given_values_kept() -> None:
    given = GenerationInput(
        prompt=PROMPT,
        negative_prompt="blur",
        duration=16,
        resolution="1080p",
        aspect_ratio="9:16",
        seed=42,
        start_image=True,
        options={"mode": "pro"},
    )
    resolved = resolve_request(_spec(), given)
    assert (resolved.width, resolved.height) == (1080, 1920)
    assert resolved.options == {"mode": "pro"} and resolved.seed == 42 and resolved.start_image


def _fails(spec: ModelSpec, given: GenerationInput, **kwargs: bool) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        resolve_request(spec, given, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("given", "field", "allowed"),
    [
        (GenerationInput(prompt=PROMPT, duration=7), "duration", [8, 16]),
        (GenerationInput(prompt=PROMPT, resolution="4k"), "resolution", ["720p", "1080p"]),
        (GenerationInput(prompt=PROMPT, aspect_ratio="4:3"), "aspect_ratio", ["16:9", "9:16", "1:1"]),
        (GenerationInput(prompt=PROMPT, options={"mode": "turbo"}), "options.mode", ["fast", "pro"]),
        (GenerationInput(prompt=PROMPT, options={"camera": "pan"}), "options", {"mode": ["fast", "pro"]}),
        (GenerationInput(prompt=PROMPT, end_image=True), "end_image", False),
        (GenerationInput(prompt=PROMPT, audio=True), "audio", False),
        (GenerationInput(prompt=PROMPT, enhance_prompt=True), "enhance_prompt", False),
        (GenerationInput(prompt=None), "prompt", {"min_length": 10, "max_length": 1000}),
        (GenerationInput(prompt="   "), "prompt", {"min_length": 10, "max_length": 1000}),
        (GenerationInput(prompt="too short"), "prompt", {"min_length": 10, "max_length": 1000}),
        (GenerationInput(prompt="x" * 1001), "prompt", {"min_length": 10, "max_length": 1000}),
        (GenerationInput(prompt=PROMPT, seed=-1), "seed", {"min": 0, "max": 2**32 - 1}),
        (GenerationInput(prompt=PROMPT, negative_prompt="n" * 1001), "negative_prompt", {"max_length": 1000}),
    ],
)
def test_bad_fields_name_the_field_and_what_is_allowed(given: GenerationInput, field: str, allowed: Any) -> None:
    error = _fails(_spec(), given)
    assert error.field == field
    assert error.details == {"field": field, "allowed": allowed}
    assert error.status_code == 422


def test_duration_message() -> None:
    error = _fails(_spec(), GenerationInput(prompt=PROMPT, duration=7))
    assert error.message == "veo3 offers durations 8, 16 s; got 7"


def test_unsupported_features() -> None:
    caps = copy.deepcopy(_model()["capabilities"])
    caps.update(start_image="none", negative_prompt=False, seed=False)
    bare = _spec(capabilities=caps)
    assert _fails(bare, GenerationInput(prompt=PROMPT, start_image=True)).field == "start_image"
    assert _fails(bare, GenerationInput(prompt=PROMPT, negative_prompt="blur")).field == "negative_prompt"
    assert _fails(bare, GenerationInput(prompt=PROMPT, seed=1)).field == "seed"
    # An empty negative prompt is no negative prompt.
    assert resolve_request(bare, GenerationInput(prompt=PROMPT, negative_prompt=" ")).negative_prompt is None


def test_required_start_image() -> None:
    caps = copy.deepcopy(_model()["capabilities"])
    caps["start_image"] = "required"
    spec = _spec(kind="i2v", capabilities=caps)
    error = _fails(spec, GenerationInput(prompt=PROMPT))
    assert (error.field, error.allowed) == ("start_image", True)
    assert resolve_request(spec, GenerationInput(prompt=PROMPT, start_image=True)).start_image


def test_prompt_optional_for_estimates() -> None:
    resolved = resolve_request(_spec(), GenerationInput(prompt=None), require_prompt=False)
    assert resolved.prompt is None
    # A prompt that is given is still checked.
    assert _fails(_spec(), GenerationInput(prompt="short"), require_prompt=False).field == "prompt"


def test_image_model_takes_no_duration() -> None:
    spec = _spec(
        id="flux",
        kind="image",
        capabilities={"resolutions": ["1024x1024"], "aspect_ratios": ["1:1"]},
        pricing={"rule": "grid", "table": 1},
    )
    resolved = resolve_request(spec, GenerationInput(prompt=PROMPT))
    assert (resolved.duration, resolved.width, resolved.height) == (0, 1024, 1024)


@pytest.mark.parametrize(
    ("resolution", "ratio", "size"),
    [
        ("480p", "16:9", (854, 480)),
        ("720p", "16:9", (1280, 720)),
        ("720p", "9:16", (720, 1280)),
        ("720p", "1:1", (720, 720)),
        ("1080p", "16:9", (1920, 1080)),
        ("1080p", "9:16", (1080, 1920)),
        ("4k", "16:9", (3840, 2160)),
        ("720p", "4:3", (960, 720)),
        ("720p", "21:9", (1680, 720)),
        ("480p", "9:16", (480, 854)),
        ("1024x1024", "1:1", (1024, 1024)),
        # An exact image size at another ratio keeps its pixel count, in 16-pixel blocks.
        ("1024x1024", "16:9", (1360, 768)),
        ("1024x1024", "9:16", (768, 1360)),
        ("1024x576", "16:9", (1024, 576)),
    ],
)
def test_dimensions(resolution: str, ratio: str, size: tuple[int, int]) -> None:
    assert dimensions(resolution, ratio) == size
    assert all(side % 2 == 0 for side in size)


def test_dimensions_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="unknown resolution"):
        dimensions("8k", "16:9")


# ---------------------------------------------------------------- options


def _with_options(**options: Any) -> ModelSpec:
    caps = copy.deepcopy(_model()["capabilities"])
    caps["options"] = options
    return _spec(capabilities=caps)


def test_a_ranged_option_lists_its_values_and_names_its_bounds_when_refused() -> None:
    spec = _with_options(strength={"min": 0, "max": 100, "default": 50})
    option = spec.capabilities.options["strength"]
    assert option.values == tuple(range(101)) and option.default == 50
    assert resolve_request(spec, GenerationInput(prompt=PROMPT)).options == {"strength": 50}
    assert resolve_request(spec, GenerationInput(prompt=PROMPT, options={"strength": 0})).options == {"strength": 0}
    error = _fails(spec, GenerationInput(prompt=PROMPT, options={"strength": 101}))
    assert (error.field, error.allowed) == ("options.strength", {"min": 0, "max": 100, "step": 1})
    assert error.message == "veo3 offers strength 0–100; got 101"


def test_an_optional_option_is_sent_only_when_given() -> None:
    spec = _with_options(motion={"min": 1, "max": 10, "default": None}, loop={"values": [False, True], "default": None})
    assert resolve_request(spec, GenerationInput(prompt=PROMPT)).options == {}
    given = GenerationInput(prompt=PROMPT, options={"motion": 4, "loop": True})
    assert resolve_request(spec, given).options == {"motion": 4, "loop": True}


def test_option_values_keep_their_type() -> None:
    spec = _with_options(loop={"values": [False, True], "default": None}, steps={"values": [1, 2]})
    assert _fails(spec, GenerationInput(prompt=PROMPT, options={"loop": 1})).field == "options.loop"
    assert _fails(spec, GenerationInput(prompt=PROMPT, options={"steps": True})).field == "options.steps"
    assert _fails(spec, GenerationInput(prompt=PROMPT, options={"steps": "1"})).field == "options.steps"


def test_an_unknown_option_is_refused_naming_it_and_every_allowed_value() -> None:
    spec = _with_options(mode={"values": ["fast", "pro"]}, strength={"min": 0, "max": 100})
    error = _fails(spec, GenerationInput(prompt=PROMPT, options={"camera": "pan"}))
    assert error.field == "options"
    assert error.message == "veo3 has no option 'camera'; it offers mode (fast, pro); strength (0–100)"
    assert error.allowed == {"mode": ["fast", "pro"], "strength": {"min": 0, "max": 100, "step": 1}}
    bare = _with_options()
    assert _fails(bare, GenerationInput(prompt=PROMPT, options={"x": 1})).message == (
        "veo3 has no option 'x'; it takes no options"
    )


@pytest.mark.parametrize(
    ("option", "complaint"),
    [
        ({"values": ["a"], "min": 1, "max": 2}, "give either values or min/max, not both"),
        ({"min": 5, "max": 1}, "min/max must give 1 to 1001 values"),
        ({"values": ["a", "a"]}, "a value is listed twice"),
        ({"values": ["a"], "default": "b"}, "capabilities.options.x.default: b is not one of"),
    ],
)
def test_bad_options_are_refused(option: dict[str, Any], complaint: str) -> None:
    caps = copy.deepcopy(_model()["capabilities"])
    caps["options"] = {"x": option}
    assert complaint in _error(_doc(_model(capabilities=caps)))


def test_an_optional_option_cannot_key_a_price_grid() -> None:
    caps = copy.deepcopy(_model()["capabilities"])
    caps["options"] = {"mode": {"values": ["fast", "pro"], "default": None}}
    grid = {"rule": "grid", "keys": ["mode"], "table": {"fast": 1, "pro": 2}}
    assert "pricing.keys: option 'mode' has no default" in _error(_doc(_model(capabilities=caps, pricing=grid)))


# ---------------------------------------------------------------- tiers and estimates


def test_tiers_are_declared_and_each_has_a_model() -> None:
    tiers = [{"id": "basic", "name": "Basic"}, {"id": "pro", "name": "Pro"}]
    doc = {**_doc(_model(tier="basic"), _model(id="b", tier="pro")), "tiers": tiers}
    catalog = parse_catalog(doc, source=SOURCE)
    assert catalog.tier_ids == ("basic", "pro") and [s.id for s in catalog.in_tier("pro")] == ["b"]
    assert _error({**_doc(_model(tier="gold")), "tiers": tiers[:1]}) == (
        f"{SOURCE}: model 'veo3': tier: 'gold' is not a declared tier (basic)"
    )
    assert _error({**_doc(_model(tier="basic")), "tiers": tiers}) == f"{SOURCE}: tiers: 'pro' has no model"
    reserved = [{"id": "auto", "name": "Any"}]
    assert "'auto' is reserved" in _error({**_doc(_model(tier="auto")), "tiers": reserved})
    clash = [{"id": "veo3", "name": "Veo"}]
    assert "'veo3' is reserved" in _error({**_doc(_model(tier="veo3")), "tiers": clash})


def test_without_a_tiers_section_the_models_tier_names_declare_them() -> None:
    catalog = parse_catalog(_doc(_model(tier="pro"), _model(id="b", tier="economy")), source=SOURCE)
    assert [(t.id, t.name) for t in catalog.tiers] == [("pro", "Pro"), ("economy", "Economy")]


def test_expected_seconds_prefer_recent_completions() -> None:
    spec = _spec(estimated_seconds=240)
    assert expected_seconds(spec, []) == 240
    assert expected_seconds(spec, [100.0, 130.4, 90.0]) == 100
    assert expected_seconds(_spec(), []) is None
    assert "estimated_seconds" in _error(_doc(_model(estimated_seconds=0)))
