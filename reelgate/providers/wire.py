"""Typed vendor answers: the base model and the lenient field types the adapters' response models share.

Vendors add fields and, now and then, put an unexpected type in a field we only use as a hint (a progress
value, a message). Such a field reads as None instead of failing the whole answer; fields that decide
what happens (a job id, a status) are plain types, so a wrong one fails the parse and the call is retried.
The full answer is kept as the update's `raw` for debugging.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidatorFunctionWrapHandler, WrapValidator


class WireModel(BaseModel):
    """A vendor's JSON object; fields we do not read are kept, not refused."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


def _number(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # true/false are not numbers, even where Python would let them be.
    return None if isinstance(value, bool) else _or_none(value, handler)


def _text(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # Ids and messages are sometimes numbers (ModelsLab's job ids): read them as text.
    if value is None or isinstance(value, bool):
        return None
    return _or_none(str(value) if isinstance(value, int | float) else value, handler)


def _strings(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # A list of URLs whose first entry is what we use; anything else reads as no URLs.
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        return []
    return [item for item in value if isinstance(item, str)]


Number = Annotated[float | None, WrapValidator(_number)]
Text = Annotated[str | None, WrapValidator(_text)]
Urls = Annotated[list[str], WrapValidator(_strings)]


def first(urls: list[str]) -> str | None:
    return urls[0] if urls and urls[0] else None


T = TypeVar("T")
# Any nested object we only read hints from: a wrong shape reads as None.
Maybe = Annotated[T | None, WrapValidator(_or_none)]
