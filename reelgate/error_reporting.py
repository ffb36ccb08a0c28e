"""Optional error reporting to Sentry (or any server that speaks its protocol) when SENTRY_DSN is set.

Uses the official SDK (`pip install 'reelgate[sentry]'`). Every event and breadcrumb passes through the same
redaction as the logs before it leaves the process: configured secrets, API keys, bearer tokens and webhook
tokens are masked, credential headers and cookies are dropped, and no personal data is attached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from reelgate.logging_setup import Redactor, secrets_of
from reelgate.settings import Settings

log = logging.getLogger("reelgate")

_MASK = "[redacted]"
# Request headers that carry credentials or signatures; their values never leave the process.
_SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "stripe-signature",
        "webhook-signature",
        "x-webhook-signature",
        "x-edenai-signature",
        "x-fal-webhook-signature",
        "idempotency-key",
    }
)


def scrub(value: Any, redact: Redactor, *, key: str = "") -> Any:
    """A copy of an event (any JSON-like value) with secrets masked."""
    if key.lower() in _SENSITIVE_HEADERS:
        return _MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: scrub(v, redact, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # Header lists come as [name, value] pairs.
        if len(value) == 2 and isinstance(value[0], str) and value[0].lower() in _SENSITIVE_HEADERS:
            return [value[0], _MASK]
        return [scrub(v, redact) for v in value]
    return value


def _scrubber(redact: Redactor) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def before_send(event: dict[str, Any], hint: Any) -> dict[str, Any]:
        scrubbed: dict[str, Any] = scrub(event, redact)
        return scrubbed

    return before_send


def _version_options(sdk_version: str, before_send: Callable[[dict[str, Any], Any], dict[str, Any]]) -> dict[str, Any]:
    """The options whose names or defaults differ between the SDK's major versions, set to the same behaviour:
    error log lines become events, lower ones breadcrumbs, and traces pass the redaction before they leave."""
    if int(sdk_version.split(".", 1)[0]) < 3:
        # SDK 2's logging defaults are the behaviour wanted; its hook for traces sees whole transactions.
        return {"before_send_transaction": before_send}
    from sentry_sdk.integrations.logging import LoggingIntegration

    return {
        # SDK 3 sends every INFO line as a Sentry log and no line as an event unless told otherwise.
        "integrations": [LoggingIntegration(level=None, event_level=logging.ERROR)],
        # It hands over spans one by one, and refuses the transaction hook it no longer knows.
        "before_send_span": before_send,
        "before_send_log": before_send,
        # Its data collection option takes over from the PII switch; it collects bodies unless told not to.
        "data_collection": {"user_info": False, "http_bodies": []},
    }


def configure_error_reporting(settings: Settings) -> bool:
    """Start the SDK when a DSN is configured; True when events will be sent."""
    if not settings.sentry_dsn:
        return False
    try:
        import sentry_sdk
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed: pip install 'reelgate[sentry]'")
        return False
    redact = Redactor([*secrets_of(settings), settings.sentry_dsn])
    before_send = _scrubber(redact)
    options: dict[str, Any] = {
        "dsn": settings.sentry_dsn,
        "environment": settings.sentry_environment,
        "before_send": before_send,
        "before_breadcrumb": lambda crumb, hint: scrub(crumb, redact),
        "traces_sample_rate": 0.0,
        # Request bodies hold users' prompts and uploads: they never leave the process.
        "max_request_body_size": "never",
    }
    options.update(_version_options(sentry_sdk.VERSION, before_send))
    # No personal data is attached (no cookies, bodies or user IPs); before_send masks the rest.
    sentry_sdk.init(**options)
    return True
