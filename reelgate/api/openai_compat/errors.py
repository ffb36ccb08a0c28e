"""OpenAI's error shape for the /v1 routes only: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelgate.api.error_routes import route_rendering_errors_with
from reelgate.domain.errors import (
    InsufficientCredits,
    ModelUnavailable,
    NotFound,
    RateLimited,
    ReelgateError,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger("reelgate.api.openai")

# Our request fields, named as the videos API names them.
_PARAMS = {
    "duration": "seconds",
    "resolution": "size",
    "aspect_ratio": "size",
    "start_image": "input_reference",
    "end_image": "input_reference",
    "file": "input_reference",
}


class OpenAIError(Exception):
    """An error raised by the translation layer itself (a bad `size`, a missing `prompt`)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def _body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _reply(status: int, message: str, type_: str, param: str | None, code: str | None, **headers: str) -> Response:
    # The SDK retries 409, 429 and 5xx unless told not to; only real rate limits and outages are worth it.
    retry = "true" if status == 503 or (status == 429 and type_ == "requests") else "false"
    return JSONResponse(
        _body(message, type_, param, code), status_code=status, headers={"x-should-retry": retry, **headers}
    )


def _domain(exc: ReelgateError) -> Response:
    invalid = "invalid_request_error"
    if isinstance(exc, InsufficientCredits):
        # OpenAI reports an exhausted balance as 429 insufficient_quota, which clients know not to retry.
        return _reply(429, exc.message, "insufficient_quota", None, "insufficient_quota")
    if isinstance(exc, RateLimited):
        return _reply(
            429, exc.message, "requests", None, "rate_limit_exceeded", **{"retry-after": str(exc.retry_after)}
        )
    if isinstance(exc, Unauthorized):
        return _reply(401, exc.message, invalid, None, "invalid_api_key")
    if isinstance(exc, NotFound) and "model" in exc.details:
        return _reply(404, exc.message, invalid, "model", "model_not_found")
    if isinstance(exc, ModelUnavailable):
        return _reply(400, exc.message, invalid, "model", "model_unavailable")
    if isinstance(exc, ValidationFailed):
        return _reply(400, exc.message, invalid, _PARAMS.get(exc.field, exc.field), "invalid_value")
    if exc.status_code == 422:
        return _reply(400, exc.message, invalid, None, exc.code)
    if exc.status_code >= 500:
        return _reply(exc.status_code, exc.message, "server_error", None, exc.code)
    param = exc.details.get("field") if isinstance(exc.details.get("field"), str) else None
    headers: dict[str, str] = dict(getattr(exc, "response_headers", None) or {})  # e.g. a 416's Content-Range
    return _reply(exc.status_code, exc.message, invalid, _PARAMS.get(param or "", param), exc.code, **headers)


def _validation(exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    return _reply(
        400, f"{param or 'request'}: {first.get('msg', 'invalid value')}", "invalid_request_error", param, None
    )


def error_response(exc: Exception) -> Response:
    if isinstance(exc, OpenAIError):
        return _reply(exc.status, exc.message, "invalid_request_error", exc.param, exc.code)
    if isinstance(exc, ReelgateError):
        return _domain(exc)
    if isinstance(exc, RequestValidationError):
        return _validation(exc)
    if isinstance(exc, StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return _reply(exc.status_code, message, "invalid_request_error", None, None)
    log.exception("unhandled error in the videos API", exc_info=exc)
    return _reply(500, "Something went wrong on our side.", "server_error", None, None)


# Every error of its routes in OpenAI's shape; the rest of the API keeps reelgate's.
OpenAIRoute = route_rendering_errors_with(error_response, "OpenAIRoute")
