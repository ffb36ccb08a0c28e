"""Fallbacks: which requests of a model another model can serve, and the request that model receives.

A fallback serves a request of its source model as it is, or changed by the fallback's declared `map`
(a resolution, duration or aspect ratio the fallback lacks goes to its nearest offered one; an option it
lacks is dropped). The price never changes: the user pays the quote they accepted on the source model.
A catalog is refused when a mapping is wrong or when a fallback could serve no request of its source;
a fallback that serves only part of them is noted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reelgate.domain.catalog import (
    Capabilities,
    Fallback,
    FallbackMap,
    GenerationInput,
    ModelSpec,
    OptionSpec,
    ResolvedRequest,
    resolve_request,
    same_value,
    short_side,
)
from reelgate.domain.errors import ValidationFailed

DROP = "drop"


@dataclass(frozen=True)
class Reach:
    """What a fallback can serve of its source's requests: `error` when it can serve none or its map is
    wrong; `gaps` names the source's offers it cannot serve (those requests are never routed to it)."""

    error: str | None = None
    gaps: tuple[str, ...] = ()


class _Refused(Exception):
    pass


# ---------------------------------------------------------------- the request a fallback receives


def fallback_request(
    source: ModelSpec, request: ResolvedRequest, fallback: Fallback, target: ModelSpec
) -> ResolvedRequest | None:
    """The request `target` receives for `request` (resolved on `source`), or None when it cannot serve it.

    Prompt enhancement is not passed on: reelgate enhances the prompt itself before any route is tried."""
    mapping = fallback.map
    options: dict[str, Any] = {}
    for name, value in request.options.items():
        rule = mapping.options.get(name)
        if rule == DROP:
            continue
        if isinstance(rule, Mapping):
            value = rule.get(_key(value), value)
        options[name] = value
    dropped = set(mapping.drop)
    given = GenerationInput(
        prompt=request.prompt,
        negative_prompt=None if "negative_prompt" in dropped else request.negative_prompt,
        duration=mapping.duration.get(request.duration, request.duration),
        resolution=mapping.resolution.get(request.resolution, request.resolution),
        aspect_ratio=mapping.aspect_ratio.get(request.aspect_ratio, request.aspect_ratio),
        seed=None if "seed" in dropped else request.seed,
        start_image=request.start_image,
        end_image=request.end_image,
        audio=request.audio,
        enhance_prompt=False,
        options=options,
    )
    try:
        return resolve_request(target, given, require_prompt=request.prompt is not None)
    except ValidationFailed:
        return None


def _key(value: object) -> str:
    # Option maps are keyed by the value as YAML writes it: `true`, `5`, `pro`.
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------- what a fallback can serve


def fallback_reach(source: ModelSpec, fallback: Fallback, target: ModelSpec) -> Reach:
    """Checks the fallback's map, then which of the source's offers the target can serve.

    The source's offers are independent (any duration with any resolution…), so some request can be
    served exactly when every dimension keeps at least one servable value."""
    try:
        _check_map(source, fallback.map, target)
    except _Refused as exc:
        return Reach(error=str(exc))
    gaps: list[str] = []
    never: list[str] = []
    for check in (_durations, _resolutions, _aspect_ratios, _images, _flags, _options, _prompts):
        check(source, fallback.map, target, gaps, never)
    if never:
        return Reach(error=f"it can never serve a request of {source.id}: {'; '.join(never)}", gaps=tuple(gaps))
    return Reach(gaps=tuple(gaps))


Notes = list[str]


def _split(values: Iterable[Any], servable: Callable[[Any], bool]) -> tuple[list[Any], list[Any]]:
    ok: list[Any] = []
    not_ok: list[Any] = []
    for value in values:
        (ok if servable(value) else not_ok).append(value)
    return ok, not_ok


def _listed(values: Iterable[Any], unit: str = "") -> str:
    return ", ".join(f"{v}{unit}" for v in values)


def _dimension(
    name: str, offered: tuple[Any, ...], mapped: Mapping[Any, Any], target_offers: tuple[Any, ...], unit: str
) -> tuple[str | None, str | None]:
    ok, not_ok = _split(offered, lambda v: mapped.get(v, v) in target_offers)
    if not ok:
        return None, f"none of its {name} ({_listed(offered, unit)}) is offered or mapped"
    if not_ok:
        return f"{name} {_listed(not_ok, unit)}", None
    return None, None


def _record(result: tuple[str | None, str | None], gaps: Notes, never: Notes) -> None:
    gap, none = result
    if gap:
        gaps.append(gap)
    if none:
        never.append(none)


def _durations(source: ModelSpec, m: FallbackMap, target: ModelSpec, gaps: Notes, never: Notes) -> None:
    s, t = source.capabilities, target.capabilities
    _record(_dimension("durations", s.durations, m.duration, t.durations, " s"), gaps, never)


def _resolutions(source: ModelSpec, m: FallbackMap, target: ModelSpec, gaps: Notes, never: Notes) -> None:
    s, t = source.capabilities, target.capabilities
    _record(_dimension("resolutions", s.resolutions, m.resolution, t.resolutions, ""), gaps, never)


def _aspect_ratios(source: ModelSpec, m: FallbackMap, target: ModelSpec, gaps: Notes, never: Notes) -> None:
    s, t = source.capabilities, target.capabilities
    _record(_dimension("aspect ratios", s.aspect_ratios, m.aspect_ratio, t.aspect_ratios, ""), gaps, never)


_IMAGE_STATES = {"none": {False}, "optional": {False, True}, "required": {True}}


def _images(source: ModelSpec, m: FallbackMap, target: ModelSpec, gaps: Notes, never: Notes) -> None:
    s, t = source.capabilities, target.capabilities
    asked, served = _IMAGE_STATES[s.start_image], _IMAGE_STATES[t.start_image]
    if not asked & served:
        never.append(f"{target.id} {'needs a' if t.start_image == 'required' else 'takes no'} start image")
    for state in sorted(asked - served):
        gaps.append("requests with a start image" if state else "requests without a start image")
    if s.end_image and not t.end_image:
        gaps.append("requests with an end image")


def _flags(source: ModelSpec, m: FallbackMap, target: ModelSpec, gaps: Notes, never: Notes) -> None:
    s, t = source.capabilities, target.capabilities
    for name in ("negative_prompt", "seed", "audio"):
        if getattr(s, name) and not getattr(t, name) and name not in m.drop:
            gaps.append(f"requests with {'a ' if name != 'audio' else ''}{name.replace('_', ' ')}")


def _options(source: ModelSpec, m: FallbackMap, target: ModelSpec, gaps: Notes, never: Notes) -> None:
    theirs = target.capabilities.options
    for name, option in source.capabilities.options.items():
        rule = m.options.get(name)
        if rule == DROP:
            continue
        value_map: Mapping[str, Any] = rule if isinstance(rule, Mapping) else {}
        other = theirs.get(name)
        ok, not_ok = _split(option.values, _serves(other, value_map))
        if option.optional:
            if not_ok:  # requests without the option are still served
                gaps.append(f"requests with option {name} {_listed(map(_key, not_ok))}")
        elif not ok:
            lacks = f"{target.id} has no option '{name}'" if other is None else f"no value of option {name} fits"
            never.append(f"{lacks} (map it or drop it)")
        elif not_ok:
            gaps.append(f"option {name} {_listed(map(_key, not_ok))}")


def _serves(other: OptionSpec | None, value_map: Mapping[str, Any]) -> Callable[[Any], bool]:
    def serves(value: Any) -> bool:
        return other is not None and other.offers(value_map.get(_key(value), value))

    return serves


def _prompts(source: ModelSpec, m: FallbackMap, target: ModelSpec, gaps: Notes, never: Notes) -> None:
    s, t = source.capabilities.prompt, target.capabilities.prompt
    low, high = max(s.min_length, t.min_length), min(s.max_length, t.max_length)
    if low > high:
        never.append(f"no prompt length fits both ({s.min_length}–{s.max_length} and {t.min_length}–{t.max_length})")
    elif (low, high) != (s.min_length, s.max_length):
        gaps.append(f"prompts outside {low}–{high} characters")


# ---------------------------------------------------------------- the map's own rules


def _check_map(source: ModelSpec, mapping: FallbackMap, target: ModelSpec) -> None:
    s, t = source.capabilities, target.capabilities
    _check_values("duration", s.durations, t.durations, mapping.duration, _nearest_duration, " s")
    _check_values("resolution", s.resolutions, t.resolutions, mapping.resolution, _nearest_resolution, "")
    _check_values("aspect_ratio", s.aspect_ratios, t.aspect_ratios, mapping.aspect_ratio, _nearest_ratio, "")
    for field in mapping.drop:
        if not getattr(s, field):
            raise _Refused(f"map.drop: {source.id} takes no {field.replace('_', ' ')}")
        if getattr(t, field):
            raise _Refused(f"map.drop: {target.id} takes {field.replace('_', ' ')}; nothing to drop")
    for name, rule in mapping.options.items():
        _check_option(source, target, name, rule, s, t)


def _check_values(
    name: str,
    offered: tuple[Any, ...],
    theirs: tuple[Any, ...],
    mapped: Mapping[Any, Any],
    nearest: Callable[[Any, tuple[Any, ...]], tuple[Any, ...]],
    unit: str,
) -> None:
    for value, to in mapped.items():
        where = f"map.{name}.{value}"
        if value not in offered:
            raise _Refused(f"{where}: {value}{unit} is not offered by the source ({_listed(offered, unit)})")
        if value in theirs:
            raise _Refused(f"{where}: the fallback offers {value}{unit} itself; it needs no mapping")
        best = nearest(value, theirs)
        if to not in best:
            allowed = " or ".join(f"{b}{unit}" for b in best) or "nothing"
            raise _Refused(f"{where}: maps to {to}{unit}; the fallback's nearest offer is {allowed}")


def _closest(value: float, candidates: tuple[Any, ...], measure: Callable[[Any], float]) -> tuple[Any, ...]:
    if not candidates:
        return ()
    distances = {c: abs(measure(c) - value) for c in candidates}
    best = min(distances.values())
    return tuple(c for c in candidates if math.isclose(distances[c], best))


def _nearest_duration(value: int, theirs: tuple[int, ...]) -> tuple[int, ...]:
    # Never shorter than what was sold: the nearest duration at or above it.
    return _closest(value, tuple(d for d in theirs if d >= value), float)


def _nearest_resolution(value: str, theirs: tuple[str, ...]) -> tuple[str, ...]:
    return _closest(short_side(value), theirs, short_side)


def _ratio(aspect: str) -> float:
    a, b = aspect.split(":")
    return math.log(int(a) / int(b))


def _nearest_ratio(value: str, theirs: tuple[str, ...]) -> tuple[str, ...]:
    return _closest(_ratio(value), theirs, _ratio)


def _check_option(
    source: ModelSpec, target: ModelSpec, name: str, rule: object, s: Capabilities, t: Capabilities
) -> None:
    where = f"map.options.{name}"
    mine = s.options.get(name)
    if mine is None:
        raise _Refused(f"{where}: {source.id} has no option '{name}'")
    theirs = t.options.get(name)
    if rule == DROP:
        if theirs is not None:
            raise _Refused(f"{where}: {target.id} has this option too; map its values instead of dropping it")
        return
    if theirs is None:
        raise _Refused(f"{where}: {target.id} has no option '{name}'; drop it")
    assert isinstance(rule, Mapping)
    for key, to in rule.items():
        value = next((v for v in mine.values if _key(v) == str(key)), None)
        if value is None:
            raise _Refused(f"{where}.{key}: not a value of {source.id}'s option ({mine.listing()})")
        if theirs.offers(value):
            raise _Refused(f"{where}.{key}: {target.id} offers it itself; it needs no mapping")
        if not theirs.offers(to):
            raise _Refused(f"{where}.{key}: {_key(to)} is not offered by {target.id} ({theirs.listing()})")
        _check_nearest_number(where, key, value, to, theirs)


def _check_nearest_number(where: str, key: object, value: object, to: object, theirs: OptionSpec) -> None:
    """Numbers map to the nearest number offered; names may map to any offered name."""
    if not (isinstance(value, int) and isinstance(to, int)) or isinstance(value, bool) or isinstance(to, bool):
        return
    numbers = tuple(v for v in theirs.values if isinstance(v, int) and not isinstance(v, bool))
    best = _closest(value, numbers, float)
    if not any(same_value(to, b) for b in best):
        raise _Refused(f"{where}.{key}: maps to {to}; the nearest offered is {_listed(best)}")
