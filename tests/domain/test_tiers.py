"""Smart routing: a tier or `auto` picks the cheapest available model that fits the request."""

from __future__ import annotations

from typing import Any

import pytest

from reelgate.catalog import load_default_catalog
from reelgate.domain.catalog import Catalog, GenerationInput, parse_catalog
from reelgate.domain.errors import ValidationFailed
from reelgate.domain.tiers import Constraints, NoModelFits, is_choice, pick_model

PROMPT = "a paper boat drifting down a rainy street"


def _model(model_id: str, tier: str, per_second: int, **caps: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "name": model_id,
        "provider": "test",
        "provider_model": model_id,
        "kind": caps.pop("kind", "t2v"),
        "tier": tier,
        "preview": caps.pop("preview", False),
        "capabilities": {"durations": [5, 10], "resolutions": ["720p"], **caps},
        "pricing": {"rule": "per_second", "credits_per_second": per_second, "resolution_multipliers": {"1080p": 2}},
    }


CATALOG: Catalog = parse_catalog(
    {
        "tiers": [{"id": "basic", "name": "Basic"}, {"id": "pro", "name": "Pro"}],
        "models": [
            _model("cheap", "basic", 2, resolutions=["480p", "720p"], default_resolution="480p"),
            _model("steady", "basic", 3, start_image="optional"),
            _model("short", "basic", 1, durations=[5]),
            _model("sharp", "pro", 6, resolutions=["720p", "1080p"], start_image="optional"),
            _model("animate", "pro", 5, kind="i2v", start_image="required"),
            _model("preview", "basic", 0, preview=True),
        ],
    },
    source="tiers-test",
)
EVERY = frozenset(CATALOG.ids)


def _pick(
    choice: str, available: frozenset[str] = EVERY, constraints: Constraints = Constraints(), **given: Any
) -> str:
    return pick_model(
        CATALOG, choice, GenerationInput(prompt=PROMPT, **given), available=available, constraints=constraints
    ).spec.id


def test_a_tier_picks_its_cheapest_model_that_fits() -> None:
    assert _pick("basic", duration=5) == "short"
    assert _pick("basic", duration=10) == "cheap"  # "short" has no 10 s
    assert _pick("pro") == "sharp"  # "animate" needs a start image this request does not carry


def test_only_available_models_are_picked() -> None:
    assert _pick("basic", available=EVERY - {"short", "cheap"}, duration=5) == "steady"
    with pytest.raises(NoModelFits) as info:
        _pick("pro", available=frozenset({"cheap"}))
    assert info.value.status_code == 422 and info.value.code == "no_model_fits"
    assert info.value.details == {
        "model": "pro",
        "rejected": {"sharp": "not available", "animate": "not available"},
    }


def test_auto_spans_every_tier_but_never_a_preview() -> None:
    pick = pick_model(CATALOG, "auto", GenerationInput(prompt=PROMPT, duration=5), available=EVERY)
    assert pick.spec.id == "short" and pick.quote.total == 5  # "preview" would cost 0
    assert pick.request.duration == 5 and pick.quote.model == "short"


def test_constraints() -> None:
    assert _pick("basic", constraints=Constraints(max_credits=15), duration=5) == "short"
    with pytest.raises(NoModelFits) as info:
        _pick("basic", constraints=Constraints(max_credits=10), duration=10)
    assert info.value.details["rejected"]["cheap"] == "costs 20 credits, over the limit of 10"
    # A start image: only models that take one.
    assert _pick("basic", constraints=Constraints(needs_image=True)) == "steady"
    assert _pick("pro", constraints=Constraints(needs_image=True)) == "animate"


def test_a_minimum_resolution_raises_a_model_to_its_first_qualifying_resolution() -> None:
    # "cheap" defaults to 480p; with a 720p floor it is priced at 720p, still below "steady".
    pick = pick_model(
        CATALOG,
        "basic",
        GenerationInput(prompt=PROMPT, duration=10),
        available=EVERY,
        constraints=Constraints(min_resolution="720p"),
    )
    assert (pick.spec.id, pick.request.resolution, pick.quote.total) == ("cheap", "720p", 20)
    assert _pick("pro", constraints=Constraints(min_resolution="1080p")) == "sharp"
    with pytest.raises(NoModelFits):
        _pick("basic", constraints=Constraints(min_resolution="1080p"))


def test_unknown_tiers_and_constraints_are_named() -> None:
    with pytest.raises(ValidationFailed) as info:
        _pick("gold")
    assert (info.value.field, info.value.allowed) == ("tier", ["auto", "basic", "pro"])
    with pytest.raises(ValidationFailed) as bad:
        _pick("basic", constraints=Constraints(min_resolution="8k"))
    assert bad.value.field == "min_resolution"
    assert is_choice(CATALOG, "auto") and is_choice(CATALOG, "pro") and not is_choice(CATALOG, "sharp")


def test_the_default_catalog_offers_the_four_pollo_tiers_and_auto() -> None:
    catalog = load_default_catalog()
    assert catalog.tier_ids == ("economy", "basic", "pro", "premium")
    pollo = {"economy": "kling-v1-6", "basic": "pollo-v1-6", "pro": "kling-v2-5-turbo", "premium": "runway-gen-4-turbo"}
    for tier, model in pollo.items():
        assert [spec.id for spec in catalog.in_tier(tier)] == [model]
        assert _cheapest(catalog, tier, frozenset(catalog.ids)) == model
    # `auto` looks past the tiers: with every provider configured, the cheapest 10 s order is LTX-2 Fast.
    assert _cheapest(catalog, "auto", frozenset(catalog.ids), duration=10) == "ltx-2-t2v"
    assert _cheapest(catalog, "auto", frozenset(catalog.ids) - {"ltx-2-t2v"}, duration=10) == "seedance-t2v"


def _cheapest(catalog: Catalog, tier: str, available: frozenset[str], **given: Any) -> str:
    return pick_model(catalog, tier, GenerationInput(prompt=PROMPT, **given), available=available).spec.id
