"""Shared HTTP plumbing for adapters: one client factory and one mapping of vendor answers to intent."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

from reelgate.providers.base import ProviderRejected, RetryLater, SubmitOutcomeUnknown

# Video jobs are asynchronous, so every call is short; 30 s covers a slow 10 MB /run upload
# (RunPod's payload cap, docs/providers/runpod.md#endpoints) and 10 s to connect is generous for an API host.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# An idle connection is reused for this long only. Servers close idle keep-alive connections on timers of their
# own (uvicorn and Node.js after 5 s, gunicorn after 2 s); a request sent on one just as the server closes it
# fails after it was sent, which for a submit means an outcome nobody can know (the job waits for review).
# httpx keeps connections 5 s by default, the same as those servers: a client that always lets go first
# never races them, at the price of a new connection for calls more than this far apart.
KEEPALIVE_SECONDS = 1.5

# Wording vendors use for an empty account: Pollo "Not enough credits" (docs/providers/pollo.md#limits-and-errors), fal
# "Exhausted balance" (docs/providers/fal.md#limits-and-errors), ModelsLab "Insufficient credits"
# (docs/providers/modelslab.md#limits-and-errors), OpenAI `insufficient_quota`
# (docs/providers/openai-videos.md#limits-and-errors).
_OUT_OF_CREDIT = re.compile(
    r"out of credit|insufficient[ _](credit|balance|fund|quota)|exhausted balance|not enough credit"
    r"|credit[ _]balance[ _]exhausted|top up your balance",
    re.IGNORECASE,
)
# Moderation refusals; Replicate models say "NSFW content detected", others "content policy".
_CONTENT_POLICY = re.compile(
    r"nsfw|content[ _-]?polic|safety (checker|filter|system)|moderation|inappropriate content|flagged",
    re.IGNORECASE,
)


def make_client(
    *,
    headers: Mapping[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    connect_retries: int = 0,
) -> httpx.AsyncClient:
    """An AsyncClient with our timeouts; redirects are not followed (an API never needs them).
    `connect_retries` repeats only failed connection attempts, so no request is ever sent twice."""
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
    return httpx.AsyncClient(
        headers=dict(headers or {}),
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        follow_redirects=False,
        limits=limits,
        transport=httpx.AsyncHTTPTransport(retries=connect_retries, limits=limits) if connect_retries else None,
    )


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP-date (RFC 9110, section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_out_of_credit_text(text: str) -> bool:
    return bool(_OUT_OF_CREDIT.search(text or ""))


def is_content_policy_text(text: str) -> bool:
    return bool(_CONTENT_POLICY.search(text or ""))


def raise_for_response(response: httpx.Response, *, what: str) -> None:
    """Raise RetryLater or ProviderRejected for a non-2xx answer; return quietly on success."""
    code = response.status_code
    if code < 400:
        return
    text = response.text[:500]
    message = f"{what}: HTTP {code}: {text}"
    # The body wins over the status: Pollo says "Not enough credits" with a 403
    # (docs/providers/pollo.md#limits-and-errors).
    if code == 402 or (code < 500 and is_out_of_credit_text(text)):
        raise ProviderRejected(message, code=ProviderRejected.OUT_OF_CREDIT)
    if code in (408, 409, 425, 429) or code >= 500:
        raise RetryLater(message, after=parse_retry_after(response.headers.get("retry-after")))
    if is_content_policy_text(text):
        raise ProviderRejected(message, code=ProviderRejected.CONTENT_POLICY)
    if code in (400, 413, 422):
        raise ProviderRejected(message, code=ProviderRejected.BAD_INPUT)
    if code in (401, 403):
        raise ProviderRejected(message, code=ProviderRejected.AUTH)
    if code in (404, 410):
        raise ProviderRejected(message, code=ProviderRejected.NOT_FOUND)
    raise ProviderRejected(message, code=ProviderRejected.FAILED)


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    json_body: Any = None,
    creates_job: bool = False,
) -> httpx.Response:
    """Send one request and map transport failures to intent.

    `creates_job` marks a submit: once bytes may have left (read errors, resets, read timeouts) the
    provider may have started the job, so the caller must reconcile instead of resending.
    """
    try:
        response = await client.request(method, url, json=json_body)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # Nothing reached the provider: safe to try again.
        raise RetryLater(f"{what}: cannot connect: {exc!r}") from exc
    except httpx.TransportError as exc:
        if creates_job:
            raise SubmitOutcomeUnknown(f"{what}: connection broke after sending: {exc!r}") from exc
        raise RetryLater(f"{what}: connection broke: {exc!r}") from exc
    raise_for_response(response, what=what)
    return response


def json_object(response: httpx.Response, *, what: str, creates_job: bool = False) -> dict[str, Any]:
    """The JSON object of a 2xx answer; a garbled body after a submit means the outcome is unknown."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        message = f"{what}: malformed JSON body: {response.text[:200]!r}"
        if creates_job:
            raise SubmitOutcomeUnknown(message) from exc
        raise RetryLater(message) from exc
    if not isinstance(data, dict):
        message = f"{what}: expected a JSON object, got {type(data).__name__}"
        if creates_job:
            raise SubmitOutcomeUnknown(message)
        raise RetryLater(message)
    return data


def clamp_percent(value: Any) -> int | None:
    """A progress value as 0..100; fractions below 1 are read as a share of the whole."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and 0 < value < 1:
        value = value * 100
    return max(0, min(100, int(value)))
