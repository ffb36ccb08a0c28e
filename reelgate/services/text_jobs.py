"""Text models' jobs: what a job keeps of its model (instruction, output limit, token rates), the completion
checked as UTF-8 text within its size cap, and what the finished job costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reelgate.db.records import Generation
from reelgate.domain.catalog import ModelSpec
from reelgate.domain.pricing import PerTokenPricing, token_charge
from reelgate.services.transitions import PartialCapture

TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
# A caption, a prompt or a script is a few pages at most; a larger answer is refused, never cut short, so a
# stored text is always the whole answer.
MAX_TEXT_BYTES = 512 * 1024


def text_params(spec: ModelSpec) -> dict[str, Any]:
    """Kept with the job at create time: the job is sent and charged as it was quoted, whatever the catalog
    says by the time it runs."""
    text = spec.text
    params: dict[str, Any] = {
        "system_prompt": text.system_prompt if text is not None else "",
        "max_output_tokens": text.max_output_tokens if text is not None else None,
    }
    if isinstance(spec.pricing, PerTokenPricing):
        params["pricing"] = spec.pricing.model_dump(mode="json")
        params["rounding"] = spec.rounding
    return params


class TextProblem(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_text(path: Path) -> dict[str, Any]:
    """The completion's metadata; raises TextProblem when it is too large, not UTF-8 or empty."""
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise TextProblem("output_too_large", f"The text is larger than {MAX_TEXT_BYTES // 1024} KiB.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextProblem("invalid_output", "The provider's text is not valid UTF-8.") from exc
    if not text.strip():
        raise TextProblem("provider_no_output", "The provider returned no text.")
    return {"characters": len(text)}


def usage_of(generation: Generation) -> dict[str, int] | None:
    """The tokens the provider reported for the job, as its update recorded them."""
    payload = (generation.raw_provider or {}).get("payload") or {}
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
    if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
        return None
    return {"input_tokens": tokens_in, "output_tokens": tokens_out}


def output_meta(generation: Generation, checked: dict[str, Any], usage: dict[str, int] | None) -> dict[str, Any]:
    """What the API shows of a text beside its content: its size, the tokens counted, and why the model stopped
    ("length": it reached the model's output limit, so the text may end mid-sentence)."""
    meta = dict(checked)
    if usage is not None:
        meta["usage"] = usage
    finish = ((generation.raw_provider or {}).get("payload") or {}).get("finish_reason")
    if isinstance(finish, str) and finish:
        meta["finish_reason"] = finish
    return meta


def settlement(generation: Generation, usage: dict[str, int] | None) -> PartialCapture | None:
    """For a per-token job with reported usage, the part of the hold it costs, at the rates it was quoted with
    (kept in its params, so a catalog changed meanwhile does not reprice it); None to capture the whole hold (a
    per-request price, or usage the provider did not report: the user accepted the quoted maximum)."""
    text = (generation.params or {}).get("text") or {}
    if usage is None or not isinstance(text.get("pricing"), dict):
        return None
    try:
        pricing = PerTokenPricing.model_validate(text["pricing"])
    except ValidationError:
        return None
    held = generation.credits_held
    charged = token_charge(pricing, text.get("rounding", "ceil"), held, usage["input_tokens"], usage["output_tokens"])
    return PartialCapture(charged=charged, held=held) if charged < held else None
