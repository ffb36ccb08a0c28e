"""Every error leaves as {"error": {"code", "message", "details"}}, including validation and unexpected ones."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelgate.api.body_limits import BodyTooLarge
from reelgate.domain.errors import RateLimited, ReelgateError, ServiceUnavailable

log = logging.getLogger("reelgate.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _describe(error: dict[str, Any]) -> str:
    field = _field_path(tuple(error.get("loc", ())))
    if error.get("type") == "extra_forbidden":
        return f"Unknown field '{field}': it cannot be set by clients."
    if error.get("type") == "missing":
        return f"Field '{field}' is required."
    return f"{field}: {error.get('msg', 'invalid value')}"


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_path(tuple(e.get("loc", ()))), "type": e.get("type"), "message": e.get("msg")}
        for e in exc.errors()
    ]
    first = exc.errors()[0] if exc.errors() else {}
    details: dict[str, Any] = {"field": errors[0]["field"] if errors else "body", "errors": errors}
    return JSONResponse(error_body("validation_error", _describe(first), details), status_code=422)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReelgateError)
    headers: dict[str, str] = dict(getattr(exc, "response_headers", None) or {})  # e.g. a 416's Content-Range
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, ServiceUnavailable):
        # A dependency is down (the database, a payment provider): a retry may work.
        log.warning("dependency unavailable on %s %s: %s", request.method, request.url.path, exc.message)
        headers["Retry-After"] = str(exc.details.get("retry_after", 5))
    return JSONResponse(exc.as_dict(), status_code=exc.status_code, headers=headers or None)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    details = {"max_bytes": exc.cap} if isinstance(exc, BodyTooLarge) else None
    return JSONResponse(error_body(code, message, details), status_code=exc.status_code, headers=exc.headers)


async def _connection_lost(request: Request, exc: Exception) -> JSONResponse:
    """A dependency's connection failed outside the database layer's own handling: a retry may work."""
    log.warning("connection failed on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    body = error_body("service_unavailable", "A service reelgate depends on is unavailable. Try again shortly.")
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", "Something went wrong on our side."), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ReelgateError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ConnectionError, _connection_lost)
    app.add_exception_handler(Exception, _unexpected)
