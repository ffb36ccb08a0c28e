"""What a model is, in a line a person reads: its features and its price at the default settings.

The studio's model picker and the README's model table (`reelgate models --markdown`) say the same thing about a
model because both read it here."""

from __future__ import annotations

from reelgate.domain.catalog import GenerationInput, ModelSpec, resolve_request
from reelgate.domain.errors import ReelgateError
from reelgate.domain.pricing import PerTokenPricing, quote

KIND_LABELS = {"t2v": "Text to video", "i2v": "Image to video", "image": "Image", "text": "Text"}


def _span(values: tuple[int, ...]) -> str:
    return f"{values[0]} s" if len(values) == 1 else f"{min(values)}–{max(values)} s"


def _text_features(spec: ModelSpec) -> list[str]:
    features = [KIND_LABELS.get(spec.kind, spec.kind)]
    if spec.text is not None and spec.text.max_output_tokens is not None:
        features.append(f"up to {spec.text.max_output_tokens:,} tokens")
    if isinstance(spec.pricing, PerTokenPricing):
        features.append("priced per token")
    return features


def features_of(spec: ModelSpec) -> list[str]:
    if spec.kind == "text":
        return _text_features(spec)
    caps = spec.capabilities
    features = [KIND_LABELS.get(spec.kind, spec.kind)]
    if any(caps.durations):
        features.append(_span(caps.durations))
    features.append(" / ".join(caps.resolutions))
    if len(caps.aspect_ratios) > 1:
        features.append("aspect ratios " + " / ".join(caps.aspect_ratios))
    if caps.start_image != "none":
        features.append("start image" + (" required" if caps.start_image == "required" else ""))
    if caps.end_image:
        features.append("end image")
    if caps.audio:
        features.append("audio")
    if caps.negative_prompt:
        features.append("negative prompt")
    for name, option in caps.options.items():
        features.append(f"{name}: {option.listing()}")
    return features


def default_input(spec: ModelSpec) -> GenerationInput:
    """The request the picker prices a model at: every setting at its default, a start image where one is
    required."""
    return GenerationInput(prompt=None, start_image=spec.capabilities.start_image == "required")


def price_at_defaults(spec: ModelSpec) -> int | None:
    """Credits a request at the default settings costs (for a per-token model, the most it can cost); None when
    the catalog gives no price there."""
    try:
        return quote(spec, resolve_request(spec, default_input(spec), require_prompt=False)).total
    except ReelgateError:
        return None
