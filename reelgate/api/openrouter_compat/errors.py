"""OpenRouter's error shape for the /api/v1/videos routes only: {"error": {"code": <status>, "message", "metadata"}}.

The SDKs read `error.code` (the HTTP status as a number) and `error.message`; `metadata` carries reelgate's own
error code and the offending field, so a client can tell a bad `duration` from a bad `size`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelgate.api.error_routes import route_rendering_errors_with
from reelgate.domain.errors import RateLimited, ReelgateError, UnsupportedMediaType

log = logging.getLogger("reelgate.api.openrouter")

# Our request fields, named as OpenRouter's request names them.
_FIELDS = {
    "start_image": "frame_images",
    "end_image": "frame_images",
    "audio": "generate_audio",
    "file": "frame_images",
}


class OpenRouterError(Exception):
    """An error raised by the translation layer itself (an unsupported field, a bad frame image)."""

    def __init__(self, status: int, message: str, *, field: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.code = status, message, field, code


def _reply(status: int, message: str, metadata: dict[str, Any], **headers: str) -> Response:
    body = {"error": {"code": status, "message": message, "metadata": metadata}}
    return JSONResponse(body, status_code=status, headers=headers)


def _meta(code: str, field: str | None, allowed: Any = None) -> dict[str, Any]:
    found: dict[str, Any] = {"reelgate_code": code}
    if field:
        found["field"] = field
    if allowed is not None:
        found["allowed"] = allowed
    return found


def _domain(exc: ReelgateError) -> Response:
    field = exc.details.get("field") if isinstance(exc.details.get("field"), str) else getattr(exc, "field", None)
    field = _FIELDS.get(field or "", field) if isinstance(field, str) else None
    metadata = _meta(exc.code, field, exc.details.get("allowed"))
    if isinstance(exc, RateLimited):
        return _reply(429, exc.message, metadata, **{"retry-after": str(exc.retry_after)})
    if isinstance(exc, UnsupportedMediaType):
        # Only a frame image or reference is an upload here; OpenRouter's API has no 415, a bad input is a 400.
        return _reply(400, exc.message, _meta(exc.code, "frame_images", exc.details.get("allowed")))
    # reelgate answers an invalid request with 422; OpenRouter (and its SDKs) with 400.
    status = 400 if exc.status_code == 422 else exc.status_code
    headers: dict[str, str] = dict(getattr(exc, "response_headers", None) or {})
    return _reply(status, exc.message, metadata, **headers)


def _validation(exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    field = ".".join(loc) or None
    message = f"{field or 'request'}: {first.get('msg', 'invalid value')}"
    return _reply(400, message, _meta("validation_error", field))


def error_response(exc: Exception) -> Response:
    if isinstance(exc, OpenRouterError):
        return _reply(exc.status, exc.message, _meta(exc.code, exc.field))
    if isinstance(exc, ReelgateError):
        return _domain(exc)
    if isinstance(exc, RequestValidationError):
        return _validation(exc)
    if isinstance(exc, StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return _reply(exc.status_code, message, _meta("http_error", None))
    log.exception("unhandled error in the OpenRouter videos API", exc_info=exc)
    return _reply(500, "Something went wrong on our side.", _meta("internal_error", None))


# Every error of its routes in OpenRouter's shape; the rest of the API keeps reelgate's.
OpenRouterRoute = route_rendering_errors_with(error_response, "OpenRouterRoute")
