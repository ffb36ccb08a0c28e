"""Fallbacks: a catalog refuses one that can never fire or maps wrongly; the request a fallback receives."""

from __future__ import annotations

from typing import Any

import pytest

from reelgate.domain.catalog import Catalog, CatalogError, GenerationInput, parse_catalog, resolve_request
from reelgate.domain.fallbacks import fallback_request

SOURCE = "catalogs/x.yaml"
PROMPT = "a lighthouse at dusk, slow pan"


def _model(model_id: str, fallbacks: list[Any] | None = None, **caps: Any) -> dict[str, Any]:
    capabilities = {"durations": [5, 10], "resolutions": ["720p"], "aspect_ratios": ["16:9"], "seed": True, **caps}
    return {
        "id": model_id,
        "name": model_id,
        "provider": "test",
        "provider_model": model_id,
        "kind": "t2v",
        "capabilities": capabilities,
        "pricing": {"rule": "per_second", "credits_per_second": 10},
        "fallbacks": fallbacks or [],
    }


def _catalog(*models: dict[str, Any]) -> Catalog:
    return parse_catalog({"models": list(models)}, source=SOURCE)


def _error(*models: dict[str, Any]) -> str:
    with pytest.raises(CatalogError) as info:
        _catalog(*models)
    return str(info.value)


def _to_sd(map_: dict[str, Any] | None = None, **source_caps: Any) -> list[dict[str, Any]]:
    """A 720p source whose fallback `sd` renders 480p only."""
    fallback: Any = {"model": "sd", "map": map_} if map_ is not None else "sd"
    return [_model("hd", [fallback], **source_caps), _model("sd", resolutions=["480p"])]


def test_a_fallback_that_can_never_fire_is_refused_naming_file_model_and_fallback() -> None:
    assert _error(*_to_sd()) == (
        f"{SOURCE}: model 'hd': fallbacks: 'sd': it can never serve a request of hd: "
        "none of its resolutions (720p) is offered or mapped"
    )


@pytest.mark.parametrize(
    ("source", "target", "reason"),
    [
        ({"durations": [10, 15]}, {"durations": [5]}, "none of its durations (10 s, 15 s) is offered or mapped"),
        ({"aspect_ratios": ["9:16"]}, {}, "none of its aspect ratios (9:16) is offered or mapped"),
        ({"start_image": "required"}, {}, "'b' takes no start image"),
        ({}, {"start_image": "required"}, "'b' needs a start image"),
        ({"options": {"mode": {"values": ["fast"]}}}, {}, "b has no option 'mode' (map it or drop it)"),
        ({"prompt": {"min_length": 10, "max_length": 50}}, {"prompt": {"min_length": 60}}, "no prompt length"),
    ],
)
def test_every_kind_of_gap_that_leaves_nothing_to_serve(
    source: dict[str, Any], target: dict[str, Any], reason: str
) -> None:
    message = _error(_model("a", ["b"], **source), _model("b", **target))
    assert message.startswith(f"{SOURCE}: model 'a': fallbacks: 'b': it can never serve a request of a: ")
    assert reason.replace("'b'", "b") in message


def test_an_explicit_map_makes_it_fire_and_the_target_gets_the_mapped_request() -> None:
    catalog = _catalog(*_to_sd({"resolution": {"720p": "480p"}}, negative_prompt=True))
    hd, sd = catalog.get("hd"), catalog.get("sd")
    request = resolve_request(hd, GenerationInput(prompt=PROMPT, duration=10, seed=7))
    served = fallback_request(hd, request, hd.fallbacks[0], sd)
    assert served is not None
    assert (served.resolution, served.width, served.height, served.duration, served.seed) == ("480p", 854, 480, 10, 7)
    # A request the fallback cannot take even after the map is never routed to it.
    with_negative = resolve_request(hd, GenerationInput(prompt=PROMPT, negative_prompt="blur"))
    assert fallback_request(hd, with_negative, hd.fallbacks[0], sd) is None
    assert catalog.notes == (f"{SOURCE}: model 'hd': fallbacks: 'sd' does not serve requests with a negative prompt",)


def test_dropping_fields_and_options_the_fallback_lacks() -> None:
    source = _model(
        "a",
        [{"model": "b", "map": {"options": {"mode": "drop", "level": {"3": 2}}, "drop": ["negative_prompt"]}}],
        negative_prompt=True,
        options={"mode": {"values": ["fast", "pro"]}, "level": {"min": 1, "max": 3}},
    )
    catalog = _catalog(source, _model("b", options={"level": {"min": 1, "max": 2}}))
    a, b = catalog.get("a"), catalog.get("b")
    given = GenerationInput(prompt=PROMPT, negative_prompt="blur", options={"mode": "pro", "level": 3})
    served = fallback_request(a, resolve_request(a, given), a.fallbacks[0], b)
    assert served is not None and served.negative_prompt is None and dict(served.options) == {"level": 2}
    assert catalog.notes == ()


@pytest.mark.parametrize(
    ("source_caps", "map_", "complaint"),
    [
        # 720p sits nearer 480p than 1080p: mapping to 1080p is not the nearest offer.
        (
            {},
            {"resolution": {"720p": "1080p"}},
            "map.resolution.720p: maps to 1080p; the fallback's nearest offer is 480p",
        ),
        ({}, {"resolution": {"4k": "480p"}}, "map.resolution.4k: 4k is not offered by the source (720p)"),
        (
            {"resolutions": ["480p", "720p"]},
            {"resolution": {"480p": "480p"}},
            "offers 480p itself; it needs no mapping",
        ),
        # Never a shorter video than was sold: 10 s cannot become 5 s.
        ({}, {"duration": {10: 5}}, "map.duration.10: maps to 5 s; the fallback's nearest offer is nothing"),
        (
            {"options": {"mode": {"values": ["fast"]}}},
            {"options": {"mode": {"fast": "x"}}},
            "has no option 'mode'; drop",
        ),
        ({"seed": False}, {"drop": ["seed"]}, "map.drop: hd takes no seed"),
    ],
)
def test_a_wrong_map_is_refused(source_caps: dict[str, Any], map_: dict[str, Any], complaint: str) -> None:
    hd = _model("hd", [{"model": "sd", "map": map_}], **source_caps)
    sd = _model("sd", durations=[5], resolutions=["480p", "1080p"])
    message = _error(hd, sd)
    assert message.startswith(f"{SOURCE}: model 'hd': fallbacks: 'sd': ")
    assert complaint in message


def test_a_shorter_order_may_go_to_the_next_longer_duration() -> None:
    catalog = _catalog(_model("a", [{"model": "b", "map": {"duration": {5: 10}}}]), _model("b", durations=[10, 15]))
    a, b = catalog.get("a"), catalog.get("b")
    served = fallback_request(a, resolve_request(a, GenerationInput(prompt=PROMPT, duration=5)), a.fallbacks[0], b)
    assert served is not None and served.duration == 10


def test_an_option_the_fallback_also_has_is_mapped_not_dropped() -> None:
    options = {"mode": {"values": ["fast", "pro"]}}
    a = _model("a", [{"model": "b", "map": {"options": {"mode": "drop"}}}], options=options)
    message = _error(a, _model("b", options={"mode": {"values": ["std"]}}))
    assert "map.options.mode: b has this option too; map its values instead of dropping it" in message
    mapped = _model("a", [{"model": "b", "map": {"options": {"mode": {"fast": "std", "pro": "std"}}}}], options=options)
    catalog = _catalog(mapped, _model("b", options={"mode": {"values": ["std"]}}))
    a_spec, b_spec = catalog.get("a"), catalog.get("b")
    request = resolve_request(a_spec, GenerationInput(prompt=PROMPT, options={"mode": "pro"}))
    served = fallback_request(a_spec, request, a_spec.fallbacks[0], b_spec)
    assert served is not None and dict(served.options) == {"mode": "std"}


def test_optional_options_leave_requests_without_them_servable() -> None:
    a = _model("a", ["b"], options={"motion": {"min": 1, "max": 10, "default": None}})
    catalog = _catalog(a, _model("b"))
    assert catalog.notes == (
        f"{SOURCE}: model 'a': fallbacks: 'b' does not serve requests with option motion 1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
    )
    spec, other = catalog.get("a"), catalog.get("b")
    plain = resolve_request(spec, GenerationInput(prompt=PROMPT))
    assert dict(plain.options) == {} and fallback_request(spec, plain, spec.fallbacks[0], other) is not None
    moving = resolve_request(spec, GenerationInput(prompt=PROMPT, options={"motion": 4}))
    assert fallback_request(spec, moving, spec.fallbacks[0], other) is None
