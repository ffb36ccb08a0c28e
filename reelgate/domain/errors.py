"""Domain errors; each carries the HTTP status the API answers with and the contract's error code."""

from __future__ import annotations

from typing import Any


class ReelgateError(Exception):
    """Base error: rendered as {"error": {"code", "message", "details"}} by the API."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Unauthorized(ReelgateError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ReelgateError):
    status_code = 403
    code = "forbidden"


class NotFound(ReelgateError):
    """Also used for another user's resources, so ids cannot be probed."""

    status_code = 404
    code = "not_found"


class Conflict(ReelgateError):
    status_code = 409
    code = "conflict"


class IdempotencyConflict(ReelgateError):
    status_code = 422
    code = "idempotency_key_reused"


class InsufficientCredits(ReelgateError):
    status_code = 402
    code = "insufficient_credits"

    def __init__(self, required: int, available: int) -> None:
        super().__init__(
            f"This needs {required} credits but only {available} are available.",
            details={"required": required, "available": available},
        )
        self.required = required
        self.available = available


class ValidationFailed(ReelgateError):
    status_code = 422
    code = "validation_error"

    def __init__(self, field: str, message: str, *, allowed: Any = None) -> None:
        details: dict[str, Any] = {"field": field}
        if allowed is not None:
            details["allowed"] = allowed
        super().__init__(message, details=details)
        self.field = field
        self.allowed = allowed


class PayloadTooLarge(ReelgateError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ReelgateError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(ReelgateError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after


class InFlightLimitReached(RateLimited):
    """The account already has as many generations running as it may; one must finish first."""

    RETRY_AFTER = 5  # seconds: the sandbox finishes a job in about that time

    def __init__(self, running: int, limit: int) -> None:
        super().__init__(
            f"You already have {running} generations in progress (the limit is {limit}); wait for one to finish.",
            retry_after=self.RETRY_AFTER,
            details={"scope": "in_flight", "limit": limit, "in_flight": running},
        )


class ServiceUnavailable(ReelgateError):
    status_code = 503
    code = "service_unavailable"


class ModelUnavailable(ReelgateError):
    """The model exists in the catalog but its provider has no credentials or is past sunset."""

    status_code = 422
    code = "model_unavailable"
