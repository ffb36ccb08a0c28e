"""Model catalog: specs and capabilities, parsing with located errors, and resolving a request."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reelgate.domain.costs import ProviderCost, provider_cost_problems
from reelgate.domain.errors import NotFound, ValidationFailed
from reelgate.domain.pricing import GRID_REQUEST_KEYS, GridPricing, Pricing, Rounding, pricing_problems

Kind = Literal["t2v", "i2v", "image", "text"]
# Short side in pixels; the contract's closed set of resolutions.
RESOLUTIONS: dict[str, int] = {"480p": 480, "720p": 720, "1080p": 1080, "4k": 2160}
# Image models may instead declare exact sizes such as "1024x1024".
_SIZE = re.compile(r"^([1-9][0-9]*)x([1-9][0-9]*)$")
_RATIO = re.compile(r"^([1-9][0-9]*):([1-9][0-9]*)$")
_SEED_MAX = 2**32 - 1
# Option values keep their YAML/JSON type: `true`, `5` and `"5"` are three different values.
OptionValue = bool | int | str
# A ranged option lists every value it allows; this keeps the list (and a grid over it) small.
MAX_RANGE_VALUES = 1001
# Tier names a request may give instead of a model; "auto" picks among all models.
AUTO = "auto"
TIER_ID = r"^[a-z][a-z0-9_-]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CatalogError(ValueError):
    """A catalog that cannot be served; the message names the file, the model and the field."""


class CreditUnit(_Frozen):
    name: str = "credits"
    value: Annotated[Decimal, Field(gt=0)] = Decimal("0.01")  # money per credit
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"


class PromptLimits(_Frozen):
    min_length: Annotated[int, Field(ge=0)] = 10  # prompts of 10–1000 characters by default
    max_length: Annotated[int, Field(gt=0)] = 1000
    negative_max_length: Annotated[int, Field(gt=0)] = 1000


def same_value(a: object, b: object) -> bool:
    """Equality that keeps types apart (`True == 1` in Python, but not as option values)."""
    return type(a) is type(b) and a == b


class OptionRange(_Frozen):
    min: int
    max: int
    step: Annotated[int, Field(gt=0)] = 1


class OptionSpec(_Frozen):
    """A model option: a list of values, or a whole-number range (`min`, `max`, `step`) listed as values.

    `default` is the value sent when the request gives none; it is the first value unless declared.
    `default: null` makes the option optional: nothing is sent unless the request gives a value, so the
    provider's own default applies."""

    values: Annotated[tuple[OptionValue, ...], Field(min_length=1)]
    default: OptionValue | None
    range: OptionRange | None = None

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        filled = dict(data)
        bounds = {k: filled.pop(k) for k in ("min", "max", "step") if k in filled}
        if bounds:
            if "values" in filled:
                raise ValueError("give either values or min/max, not both")
            span = OptionRange.model_validate(bounds)
            count = (span.max - span.min) // span.step + 1
            if span.max < span.min or count > MAX_RANGE_VALUES:
                raise ValueError(f"min/max must give 1 to {MAX_RANGE_VALUES} values")
            filled["range"] = span
            filled["values"] = list(range(span.min, span.max + 1, span.step))
        if "default" not in filled and filled.get("values"):
            filled["default"] = filled["values"][0]
        return filled

    @property
    def optional(self) -> bool:
        return self.default is None

    def offers(self, value: object) -> bool:
        return any(same_value(value, v) for v in self.values)

    def allowed(self) -> list[OptionValue] | dict[str, int]:
        """The allowed values as an error's `details.allowed` shows them."""
        if self.range is not None:
            return {"min": self.range.min, "max": self.range.max, "step": self.range.step}
        return list(self.values)

    def listing(self) -> str:
        if self.range is not None:
            step = f" in steps of {self.range.step}" if self.range.step != 1 else ""
            return f"{self.range.min}–{self.range.max}{step}"
        return ", ".join(_shown(v) for v in self.values)


def _shown(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _fill_default(data: dict[str, Any], default_key: str, list_key: str) -> None:
    if default_key not in data and isinstance(data.get(list_key), list | tuple) and data[list_key]:
        data[default_key] = data[list_key][0]


class Capabilities(_Frozen):
    # Image and text models take no duration: they declare [0] or omit it.
    durations: Annotated[tuple[Annotated[int, Field(ge=0)], ...], Field(min_length=1)] = (0,)
    default_duration: int = 0
    resolutions: Annotated[tuple[str, ...], Field(min_length=1)] = ("720p",)
    default_resolution: str = "720p"
    aspect_ratios: Annotated[tuple[Annotated[str, Field(pattern=_RATIO.pattern)], ...], Field(min_length=1)] = ("16:9",)
    default_aspect_ratio: str = "16:9"
    start_image: Literal["none", "optional", "required"] = "none"
    end_image: bool = False
    negative_prompt: bool = False
    audio: bool = False
    seed: bool = False
    enhance_prompt: bool = False
    prompt: PromptLimits = Field(default_factory=PromptLimits)
    options: dict[str, OptionSpec] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_lists(cls, data: Any) -> Any:
        # An omitted default is the first value of its list, so short catalogs stay short.
        if not isinstance(data, Mapping):
            return data
        filled = dict(data)
        _fill_default(filled, "default_duration", "durations")
        _fill_default(filled, "default_resolution", "resolutions")
        _fill_default(filled, "default_aspect_ratio", "aspect_ratios")
        return filled


class Lifecycle(_Frozen):
    status: Literal["active", "deprecated"] = "active"
    sunset: date | None = None  # the last day on which new jobs are accepted


class TextSpec(_Frozen):
    """What a text model sends besides the prompt: the instruction that gives the bot its purpose (a caption
    writer, a script writer) and the most tokens it may answer with (required for per-token pricing)."""

    system_prompt: Annotated[str, Field(max_length=4000)] = ""
    max_output_tokens: Annotated[int, Field(gt=0, le=32000)] | None = None


FallbackOptionRule = Literal["drop"] | dict[str, OptionValue]


class FallbackMap(_Frozen):
    """How a request of the source model is changed for a fallback that does not offer it as it is.

    Each mapped value goes to the fallback's nearest offered value (a duration to the nearest one that is
    not shorter: a fallback never delivers less video than was sold). `options` maps an option's values,
    or drops an option the fallback does not have; `drop` lists request fields the fallback may ignore.
    The user still pays the quote they accepted on the source model."""

    duration: dict[int, int] = Field(default_factory=dict)
    resolution: dict[str, str] = Field(default_factory=dict)
    aspect_ratio: dict[str, str] = Field(default_factory=dict)
    options: dict[str, FallbackOptionRule] = Field(default_factory=dict)
    drop: tuple[Literal["negative_prompt", "seed"], ...] = ()

    @field_validator("options", mode="before")
    @classmethod
    def _value_keys(cls, value: Any) -> Any:
        # YAML reads `50:` as a number and `true:` as a boolean; maps are looked up by the value as written.
        if not isinstance(value, Mapping):
            return value
        return {
            name: {_shown(k): v for k, v in rule.items()} if isinstance(rule, Mapping) else rule
            for name, rule in value.items()
        }

    @property
    def empty(self) -> bool:
        return not (self.duration or self.resolution or self.aspect_ratio or self.options or self.drop)


class Fallback(_Frozen):
    model: str
    map: FallbackMap = Field(default_factory=FallbackMap)

    @model_validator(mode="before")
    @classmethod
    def _bare_id(cls, data: Any) -> Any:
        # `fallbacks: [veo2]` is short for `fallbacks: [{model: veo2}]`.
        return {"model": data} if isinstance(data, str) else data


class ModelSpec(_Frozen):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)]
    name: str
    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    provider_model: str
    kind: Kind
    description: str = ""
    group: str | None = None
    tier: Annotated[str, Field(pattern=TIER_ID, max_length=32)] | None = None
    preview: bool = False  # the built-in local renderer: shown as "not an AI model"
    capabilities: Capabilities = Field(default_factory=Capabilities)
    text: TextSpec | None = None  # text models only
    pricing: Pricing
    provider_cost: ProviderCost | None = None
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    deadline_seconds: Annotated[int, Field(gt=0)] = 1800
    # The usual time from submit to a stored result, shown until the model has recent completions.
    estimated_seconds: Annotated[int, Field(gt=0)] | None = None
    fallbacks: tuple[Fallback, ...] = ()
    # Filled from the catalog by parse_catalog; a model may set its own rounding.
    rounding: Rounding = "ceil"
    credit_unit: CreditUnit = Field(default_factory=CreditUnit)

    def accepting_jobs(self, today: date) -> bool:
        return self.lifecycle.sunset is None or today <= self.lifecycle.sunset

    @property
    def fallback_ids(self) -> tuple[str, ...]:
        return tuple(fallback.model for fallback in self.fallbacks)


class TierSpec(_Frozen):
    """A quality and price level; models join one with their `tier` field."""

    id: Annotated[str, Field(pattern=TIER_ID, max_length=32)]
    name: str
    description: str = ""


class Catalog(_Frozen):
    credit_unit: CreditUnit = Field(default_factory=CreditUnit)
    rounding: Rounding = "ceil"
    tiers: tuple[TierSpec, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    source: str = "<catalog>"
    # Fallbacks that serve only part of their source's requests, in words (the loader logs them).
    notes: tuple[str, ...] = ()

    def get(self, model_id: str) -> ModelSpec:
        for spec in self.models:
            if spec.id == model_id:
                return spec
        raise NotFound(f"Unknown model '{model_id}'", details={"model": model_id})

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(spec.id for spec in self.models)

    @property
    def tier_ids(self) -> tuple[str, ...]:
        return tuple(tier.id for tier in self.tiers)

    def in_tier(self, tier_id: str) -> tuple[ModelSpec, ...]:
        return tuple(spec for spec in self.models if spec.tier == tier_id)


# ---------------------------------------------------------------- parsing


def _loc(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    # A discriminated union adds the tag ("grid") after "pricing"; it is not a field the author wrote.
    if (
        len(parts) > 1
        and parts[0] == "pricing"
        and parts[1] in ("per_second", "grid", "base_plus_modifiers", "per_token")
    ):
        del parts[1]
    return ".".join(parts) or "(model)"


def _first_error(error: ValidationError) -> tuple[str, str]:
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    return _loc(tuple(first["loc"])), message


def parse_catalog(data: Mapping[str, Any], *, source: str) -> Catalog:
    """Validate a catalog document (already read from YAML); raises CatalogError."""
    if not isinstance(data, Mapping):
        raise CatalogError(f"{source}: the catalog must be a mapping with credit_unit, rounding and models")
    # Top-level "x-…" keys are ignored: they hold YAML anchors shared by several models.
    known = {"credit_unit", "rounding", "tiers", "models"}
    unknown = sorted(k for k in set(data) - known if not str(k).startswith("x-"))
    if unknown:
        raise CatalogError(f"{source}: {unknown[0]}: unknown top-level field")
    try:
        header = Catalog.model_validate({k: data[k] for k in ("credit_unit", "rounding", "tiers") if k in data})
    except ValidationError as exc:
        where, message = _first_error(exc)
        raise CatalogError(f"{source}: {where}: {message}") from None
    raw_models = data.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise CatalogError(f"{source}: models: expected a non-empty list of models")
    specs = [_parse_model(raw, index, header, source) for index, raw in enumerate(raw_models)]
    _check_catalog(specs, source)
    if "tiers" in data:
        _check_tiers(header.tiers, specs, source)
    else:  # the models' tier names, in order of first use, declare the tiers
        header = header.model_copy(update={"tiers": _implicit_tiers(specs, source)})
    notes = _check_fallbacks(specs, source)
    return Catalog(
        credit_unit=header.credit_unit,
        rounding=header.rounding,
        tiers=header.tiers,
        models=tuple(specs),
        source=source,
        notes=notes,
    )


def _parse_model(raw: Any, index: int, header: Catalog, source: str) -> ModelSpec:
    label = f"model #{index + 1}"
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{source}: {label}: expected a mapping")
    if isinstance(raw.get("id"), str):
        label = f"model '{raw['id']}'"
    if "credit_unit" in raw:
        raise CatalogError(f"{source}: {label}: credit_unit: set once for the whole catalog, not per model")
    try:
        spec = ModelSpec.model_validate(
            {"rounding": header.rounding, **raw, "credit_unit": header.credit_unit.model_dump()}
        )
    except ValidationError as exc:
        where, message = _first_error(exc)
        raise CatalogError(f"{source}: {label}: {where}: {message}") from None
    problems = model_problems(spec)
    if problems:
        where, message = problems[0]
        raise CatalogError(f"{source}: {label}: {where}: {message}")
    return spec


def _check_catalog(specs: list[ModelSpec], source: str) -> None:
    by_id: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.id in by_id:
            raise CatalogError(f"{source}: model '{spec.id}': id: duplicate model id")
        by_id[spec.id] = spec
    for spec in specs:
        for target in spec.fallback_ids:
            other = by_id.get(target)
            if other is None or target == spec.id:
                raise CatalogError(f"{source}: model '{spec.id}': fallbacks: '{target}' is not another model here")
            if other.kind != spec.kind:
                raise CatalogError(
                    f"{source}: model '{spec.id}': fallbacks: '{target}' is a {other.kind} model, not {spec.kind}"
                )
        if len(set(spec.fallback_ids)) != len(spec.fallback_ids):
            raise CatalogError(f"{source}: model '{spec.id}': fallbacks: a model is listed twice")


def _check_tiers(tiers: tuple[TierSpec, ...], specs: list[ModelSpec], source: str) -> None:
    """Tier ids are unique, never a model id (a request's `model` may name either) nor "auto"; every model's
    tier is declared, and every declared tier has a model."""
    declared = [tier.id for tier in tiers]
    model_ids = {spec.id for spec in specs}
    for tier_id in declared:
        if declared.count(tier_id) > 1:
            raise CatalogError(f"{source}: tiers: '{tier_id}' is declared twice")
        if tier_id == AUTO or tier_id in model_ids:
            raise CatalogError(f"{source}: tiers: '{tier_id}' is reserved: a request could not tell it from a model")
    for spec in specs:
        if spec.tier is not None and spec.tier not in declared:
            names = ", ".join(declared) or "none are declared"
            raise CatalogError(f"{source}: model '{spec.id}': tier: '{spec.tier}' is not a declared tier ({names})")
    for tier_id in declared:
        if not any(spec.tier == tier_id for spec in specs):
            raise CatalogError(f"{source}: tiers: '{tier_id}' has no model")


def _implicit_tiers(specs: list[ModelSpec], source: str) -> tuple[TierSpec, ...]:
    names = dict.fromkeys(spec.tier for spec in specs if spec.tier is not None)
    tiers = tuple(TierSpec(id=name, name=name.replace("-", " ").replace("_", " ").capitalize()) for name in names)
    _check_tiers(tiers, specs, source)
    return tiers


def _check_fallbacks(specs: list[ModelSpec], source: str) -> tuple[str, ...]:
    """Refuses a fallback whose mapping is wrong or that can serve no request of its source; returns notes
    on fallbacks that serve only some of them."""
    from reelgate.domain.fallbacks import fallback_reach  # fallbacks builds on this module's types

    by_id = {spec.id: spec for spec in specs}
    notes: list[str] = []
    for spec in specs:
        for fallback in spec.fallbacks:
            reach = fallback_reach(spec, fallback, by_id[fallback.model])
            where = f"{source}: model '{spec.id}': fallbacks: '{fallback.model}'"
            if reach.error is not None:
                raise CatalogError(f"{where}: {reach.error}")
            if reach.gaps:
                notes.append(f"{where} does not serve {'; '.join(reach.gaps)}")
    return tuple(notes)


def _offered(caps: Capabilities) -> dict[str, tuple[str, ...]]:
    allowed = {
        "duration": tuple(str(d) for d in caps.durations),
        "resolution": caps.resolutions,
        "aspect_ratio": caps.aspect_ratios,
    }
    for name, option in caps.options.items():
        allowed[name] = tuple(str(v) for v in option.values)
    return allowed


def _default_problems(caps: Capabilities) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    pairs: list[tuple[str, object, str, tuple[object, ...]]] = [
        ("default_duration", caps.default_duration, "durations", caps.durations),
        ("default_resolution", caps.default_resolution, "resolutions", caps.resolutions),
        ("default_aspect_ratio", caps.default_aspect_ratio, "aspect_ratios", caps.aspect_ratios),
    ]
    for default_name, value, list_name, values in pairs:
        if value not in values:
            problems.append((f"capabilities.{default_name}", f"{value} is not one of {list_name} {list(values)}"))
    for name, option in caps.options.items():
        if name in GRID_REQUEST_KEYS:
            problems.append((f"capabilities.options.{name}", "this name is a request field, not an option"))
        if option.default is not None and not option.offers(option.default):
            problems.append(
                (f"capabilities.options.{name}.default", f"{option.default} is not one of {list(option.values)}")
            )
        if len({(type(v), v) for v in option.values}) != len(option.values):
            problems.append((f"capabilities.options.{name}.values", "a value is listed twice"))
    if caps.prompt.min_length > caps.prompt.max_length:
        problems.append(("capabilities.prompt", "min_length is greater than max_length"))
    return problems


# A text model answers a prompt with text: none of a picture's or a video's settings mean anything to it.
_MEDIA_CAPABILITIES = (
    "durations",
    "default_duration",
    "resolutions",
    "default_resolution",
    "aspect_ratios",
    "default_aspect_ratio",
    "start_image",
    "end_image",
    "negative_prompt",
    "audio",
    "seed",
    "enhance_prompt",
    "options",
)


def _text_problems(spec: ModelSpec) -> list[tuple[str, str]]:
    if spec.kind != "text":
        if spec.text is not None:
            return [("text", f"only text models take a text section; this is a {spec.kind} model")]
        return []
    declared = [name for name in _MEDIA_CAPABILITIES if name in spec.capabilities.model_fields_set]
    if declared:
        return [(f"capabilities.{declared[0]}", "a text model takes only prompt limits in its capabilities")]
    return []


def _kind_problems(spec: ModelSpec) -> list[tuple[str, str]]:
    caps = spec.capabilities
    problems: list[tuple[str, str]] = _text_problems(spec)
    still = spec.kind in ("image", "text")
    if still and caps.durations != (0,):
        problems.append(("capabilities.durations", f"a {spec.kind} model takes no duration: declare [0] or omit it"))
    if not still and 0 in caps.durations:
        problems.append(("capabilities.durations", "a video model needs durations of at least 1 second"))
    if spec.kind == "i2v" and caps.start_image != "required":
        problems.append(("capabilities.start_image", "an i2v model must declare start_image: required"))
    for value in caps.resolutions:
        if value not in RESOLUTIONS and not (spec.kind == "image" and _SIZE.match(value)):
            allowed = list(RESOLUTIONS) + (["WxH such as 1024x1024"] if spec.kind == "image" else [])
            problems.append(("capabilities.resolutions", f"{value} is not one of {allowed}"))
    return problems


def model_problems(spec: ModelSpec) -> list[tuple[str, str]]:
    """Cross-field checks pydantic cannot express, as (field path, message) pairs."""
    problems = _default_problems(spec.capabilities) + _kind_problems(spec)
    if not problems:  # pricing checks assume consistent capabilities
        problems = _optional_key_problems(spec) + pricing_problems(spec, _offered(spec.capabilities), RESOLUTIONS)
    if not problems and spec.provider_cost is not None:
        problems = provider_cost_problems(spec, _offered(spec.capabilities), RESOLUTIONS)
    return problems


def _optional_key_problems(spec: ModelSpec) -> list[tuple[str, str]]:
    """A price cell needs a value: an option that may be absent from a request cannot key a grid."""
    if not isinstance(spec.pricing, GridPricing):
        return []
    options = spec.capabilities.options
    return [
        ("pricing.keys", f"option '{key}' has no default (it may be absent from a request), so it cannot price")
        for key in spec.pricing.keys
        if key in options and options[key].optional
    ]


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class GenerationInput:
    prompt: str | None
    negative_prompt: str | None = None
    duration: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    seed: int | None = None
    start_image: bool = False
    end_image: bool = False
    audio: bool = False
    enhance_prompt: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedRequest:
    prompt: str | None
    negative_prompt: str | None
    duration: int
    resolution: str
    aspect_ratio: str
    width: int
    height: int
    seed: int | None
    start_image: bool
    end_image: bool
    audio: bool
    enhance_prompt: bool
    options: Mapping[str, Any]


def _listing(values: tuple[object, ...], unit: str = "") -> str:
    return ", ".join(str(v) for v in values) + unit


def _choose(spec: ModelSpec, name: str, given: Any, values: tuple[Any, ...], default: Any, unit: str = "") -> Any:
    if given is None:
        return default
    if given not in values:
        raise ValidationFailed(
            name, f"{spec.id} offers {name}s {_listing(values, unit)}; got {given}", allowed=list(values)
        )
    return given


def _check_prompt(spec: ModelSpec, prompt: str | None, require: bool) -> str | None:
    limits = spec.capabilities.prompt
    text = prompt.strip() if prompt is not None else ""
    allowed = {"min_length": limits.min_length, "max_length": limits.max_length}
    if not text:
        if require:
            raise ValidationFailed("prompt", f"{spec.id} needs a prompt", allowed=allowed)
        return None
    if not limits.min_length <= len(text) <= limits.max_length:
        message = f"the prompt must be {limits.min_length}–{limits.max_length} characters; got {len(text)}"
        raise ValidationFailed("prompt", message, allowed=allowed)
    return text


def _check_flags(spec: ModelSpec, given: GenerationInput, negative: str | None) -> None:
    caps = spec.capabilities
    unsupported = [
        ("negative_prompt", negative is not None, caps.negative_prompt),
        ("seed", given.seed is not None, caps.seed),
        ("audio", given.audio, caps.audio),
        ("enhance_prompt", given.enhance_prompt, caps.enhance_prompt),
        ("end_image", given.end_image, caps.end_image),
        ("start_image", given.start_image, caps.start_image != "none"),
    ]
    for name, asked, offered in unsupported:
        if asked and not offered:
            raise ValidationFailed(name, f"{spec.id} does not support {name.replace('_', ' ')}", allowed=False)
    if caps.start_image == "required" and not given.start_image:
        raise ValidationFailed("start_image", f"{spec.id} needs a start image", allowed=True)
    if given.seed is not None and not 0 <= given.seed <= _SEED_MAX:
        raise ValidationFailed("seed", f"seed must be 0–{_SEED_MAX}", allowed={"min": 0, "max": _SEED_MAX})
    if negative is not None and len(negative) > caps.prompt.negative_max_length:
        limit = caps.prompt.negative_max_length
        raise ValidationFailed(
            "negative_prompt", f"the negative prompt must be at most {limit} characters", allowed={"max_length": limit}
        )


def _offered_options(spec: ModelSpec) -> str:
    offered = spec.capabilities.options
    if not offered:
        return "it takes no options"
    return "it offers " + "; ".join(f"{name} ({option.listing()})" for name, option in offered.items())


def _resolve_options(spec: ModelSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """The request's options with the model's defaults filled in; an optional option left out stays out."""
    offered = spec.capabilities.options
    for name in given:
        if name not in offered:
            raise ValidationFailed(
                "options",
                f"{spec.id} has no option '{name}'; {_offered_options(spec)}",
                allowed={k: v.allowed() for k, v in offered.items()},
            )
    resolved: dict[str, Any] = {}
    for name, option in offered.items():
        value = given.get(name)
        if value is None:
            if option.default is not None:
                resolved[name] = option.default
        elif option.offers(value):
            resolved[name] = value
        else:
            raise ValidationFailed(
                f"options.{name}",
                f"{spec.id} offers {name} {option.listing()}; got {_shown(value)}",
                allowed=option.allowed(),
            )
    return resolved


def _refuse_media_fields(spec: ModelSpec, given: GenerationInput) -> None:
    """A text model answers in text: a duration, a size or an image asked of it is a mistake, not a default."""
    for name in ("duration", "resolution", "aspect_ratio"):
        if getattr(given, name) is not None:
            raise ValidationFailed(
                name, f"{spec.id} is a text model: it takes no {name.replace('_', ' ')}", allowed=None
            )


def resolve_request(spec: ModelSpec, given: GenerationInput, *, require_prompt: bool = True) -> ResolvedRequest:
    """Check a request against the model's capabilities and fill its defaults; raises ValidationFailed."""
    caps = spec.capabilities
    if spec.kind == "text":
        _refuse_media_fields(spec, given)
    prompt = _check_prompt(spec, given.prompt, require_prompt)
    negative = given.negative_prompt.strip() if given.negative_prompt else None
    negative = negative or None
    duration = _choose(spec, "duration", given.duration, caps.durations, caps.default_duration, " s")
    resolution = _choose(spec, "resolution", given.resolution, caps.resolutions, caps.default_resolution)
    aspect = _choose(spec, "aspect_ratio", given.aspect_ratio, caps.aspect_ratios, caps.default_aspect_ratio)
    _check_flags(spec, given, negative)
    options = _resolve_options(spec, given.options)
    width, height = dimensions(resolution, aspect)
    return ResolvedRequest(
        prompt=prompt,
        negative_prompt=negative,
        duration=duration,
        resolution=resolution,
        aspect_ratio=aspect,
        width=width,
        height=height,
        seed=given.seed,
        start_image=given.start_image,
        end_image=given.end_image,
        audio=given.audio,
        enhance_prompt=given.enhance_prompt,
        options=options,
    )


def _even(value: Fraction) -> int:
    return max(2, 2 * round(value / 2))


def _sixteens(value: float) -> int:
    return max(16, 16 * round(value / 16))


def _sized(width: int, height: int, a: int, b: int) -> tuple[int, int]:
    """An exact image size asked at another aspect ratio: the same pixel count at that ratio, in the 16-pixel
    blocks image models work in (1024x1024 at 16:9 is 1360x768)."""
    if width * b == height * a:
        return width, height
    area = width * height
    return _sixteens(math.sqrt(area * a / b)), _sixteens(math.sqrt(area * b / a))


def dimensions(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Width and height in even pixels; the resolution names the short side. An exact size (image models)
    passes through at its own aspect ratio and names a pixel count at any other."""
    size = _SIZE.match(resolution)
    ratio = _RATIO.match(aspect_ratio)
    if size and ratio:
        return _sized(int(size.group(1)), int(size.group(2)), int(ratio.group(1)), int(ratio.group(2)))
    if size:
        return int(size.group(1)), int(size.group(2))
    if resolution not in RESOLUTIONS or ratio is None:
        raise ValueError(f"unknown resolution {resolution!r} or aspect ratio {aspect_ratio!r}")
    short = RESOLUTIONS[resolution]
    a, b = int(ratio.group(1)), int(ratio.group(2))
    long = _even(Fraction(short * max(a, b), min(a, b)))
    return (long, short) if a >= b else (short, long)


def short_side(resolution: str) -> int:
    """The short side in pixels of a catalog resolution ("720p", or an exact size such as "1024x1024")."""
    size = _SIZE.match(resolution)
    if size:
        return min(int(size.group(1)), int(size.group(2)))
    return RESOLUTIONS[resolution]
