"""Pollo.ai adapter: the four quality tiers, task polling, and Pollo's X-Webhook-* HMAC scheme."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from reelgate.domain.jobs import ProviderState
from reelgate.providers import http
from reelgate.providers.base import (
    HealthReport,
    ImageTransport,
    JobRequest,
    OutputRef,
    ProviderRejected,
    ProviderUpdate,
    RetryLater,
    SubmitOutcomeUnknown,
    SubmitResult,
    WebhookEvent,
    WebhookRejected,
)
from reelgate.providers.http_provider import HTTPProvider
from reelgate.providers.wire import Maybe, Text, WireModel

DEFAULT_BASE_URL = "https://pollo.ai/api/platform"
# Pollo documents no tolerance (docs/providers/pollo.md#webhooks, unverified); 300 s is the Standard Webhooks figure
# (docs/providers/pollo.md#webhooks).
WEBHOOK_TOLERANCE_SECONDS = 300

# Pollo's status values (docs/providers/pollo.md#status-values).
_STATES = {
    "waiting": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "succeed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
}


def _image(request: JobRequest, which: str) -> str | None:
    """Pollo takes image URLs (docs/providers/pollo.md#endpoints); without a public URL we send a data URL and let Pollo
    judge it."""
    image = request.start_image if which == "start" else request.end_image
    if image is None:
        return None
    if image.url:
        return image.url
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"


# Each tier's input as docs/providers/pollo.md#endpoints lists it, with the defaults shown there.
def economy_input(request: JobRequest) -> dict[str, Any]:
    """Economy, kling-ai/kling-v1-6."""
    opts = request.options
    return {
        "prompt": request.prompt,
        "negativePrompt": request.negative_prompt or None,
        "image": _image(request, "start"),
        "imageTail": _image(request, "end"),
        "length": request.duration,
        "strength": opts.get("strength") or 50,
        "mode": opts.get("mode") or "std",
    }


def basic_input(request: JobRequest) -> dict[str, Any]:
    """Basic, pollo/pollo-v1-6; a random seed below 10000 is drawn when none is given."""
    opts = request.options
    return {
        "prompt": request.prompt,
        "image": _image(request, "start"),
        "imageTail": _image(request, "end"),
        "resolution": request.resolution or "480p",
        "mode": opts.get("mode") or "basic",
        "length": request.duration,
        "seed": request.seed if request.seed is not None else random.randrange(10000),
    }


def pro_input(request: JobRequest) -> dict[str, Any]:
    """Pro, kling-ai/kling-v2-5-turbo."""
    return {
        "prompt": request.prompt,
        "negativePrompt": request.negative_prompt or None,
        "image": _image(request, "start"),
        "strength": request.options.get("strength") or 50,
        "length": request.duration,
    }


def premium_input(request: JobRequest) -> dict[str, Any]:
    """Premium, runway/runway-gen-4-turbo: resolution as "WIDTHxHEIGHT", 1920x1080 by default."""
    resolution = f"{request.width}x{request.height}" if request.width and request.height else "1920x1080"
    return {
        "prompt": request.prompt,
        "negativePrompt": request.negative_prompt or None,
        "image": _image(request, "start"),
        "resolution": resolution,
        "duration": request.duration,
        "motionStrength": request.options.get("motionStrength") or None,
    }


TIER_MODELS: dict[str, Callable[[JobRequest], dict[str, Any]]] = {
    "kling-ai/kling-v1-6": economy_input,
    "pollo/pollo-v1-6": basic_input,
    "kling-ai/kling-v2-5-turbo": pro_input,
    "runway/runway-gen-4-turbo": premium_input,
}


def build_input(request: JobRequest) -> dict[str, Any]:
    builder = TIER_MODELS.get(request.model_ref)
    if builder is None:
        raise ProviderRejected(f"pollo: unknown model {request.model_ref!r}", code=ProviderRejected.BAD_INPUT)
    # Empty fields are left out of the JSON, not sent as null.
    return {k: v for k, v in builder(request).items() if v is not None}


class PolloGeneration(WireModel):
    status: Text = None
    url: Text = None
    failMsg: Text = None  # noqa: N815 - the vendor's field name
    mediaType: Text = None  # noqa: N815


class PolloTask(WireModel):
    """A submit or status answer (docs/providers/pollo.md#status-values), or a webhook body
    (docs/providers/pollo.md#webhooks): `taskId`, `status`, maybe `generations`."""

    taskId: Text = None  # noqa: N815 - the vendor's field name
    status: Text = None
    generations: Maybe[list[Maybe[PolloGeneration]]] = None
    url: Text = None
    videoUrl: Text = None  # noqa: N815
    failMsg: Text = None  # noqa: N815
    message: Text = None


def _unwrap(body: Mapping[str, Any]) -> dict[str, Any]:
    """Both the bare object and the `{"code":"SUCCESS","data":{…}}` envelope, which some answers use
    (docs/providers/pollo.md#status-values)."""
    data = body.get("data")
    if isinstance(data, dict) and ("code" in body or "taskId" not in body):
        return data
    return dict(body)


def parse_task(body: Mapping[str, Any], task_id: str) -> ProviderUpdate:
    task = HTTPProvider.parse(PolloTask, body, what="pollo task")
    first = (task.generations[0] if task.generations else None) or PolloGeneration()
    status = first.status or task.status or "waiting"
    state = _STATES.get(status)
    if state is None:
        raise RetryLater(f"pollo: unknown task status {status!r}")
    raw = dict(body)
    if state is ProviderState.SUCCEEDED:
        url = first.url or task.url or task.videoUrl
        if not url:
            return ProviderUpdate(
                task_id, ProviderState.FAILED, error_code=ProviderRejected.FAILED, error_message="no url", raw=raw
            )
        content_type = "video/mp4" if (first.mediaType or "video") == "video" else None
        return ProviderUpdate(
            task_id, state, progress=100, output=OutputRef(url=url, content_type=content_type), raw=raw
        )
    if state is ProviderState.FAILED:
        message = first.failMsg or task.failMsg or task.message or "failed"
        code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.FAILED
        return ProviderUpdate(task_id, state, error_code=code, error_message=message, raw=raw)
    return ProviderUpdate(task_id, state, raw=raw)


def webhook_key(secret: str) -> bytes:
    """UNVERIFIED part of Pollo's scheme (docs/providers/pollo.md#webhooks): a `whsec_` secret is base64-decoded as in
    Standard Webhooks; anything else is used as raw UTF-8 bytes, like the third-party client does."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :] + "==")
        except binascii.Error:
            pass
    return secret.encode()


def webhook_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """Base64 of HMAC-SHA256 over `id.timestamp.body` (docs/providers/pollo.md#webhooks)."""
    digest = hmac.new(webhook_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class PolloProvider(HTTPProvider):
    name = "pollo"
    # docs/providers/pollo.md#endpoints: `image` and `imageTail` are URLs.
    image_transport = ImageTransport.URL
    default_base_url = DEFAULT_BASE_URL

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    async def submit(self, request: JobRequest) -> SubmitResult:
        payload: dict[str, Any] = {"input": build_input(request)}
        if request.webhook_url:
            payload["webhookUrl"] = request.webhook_url
        what = "pollo submit"
        path = f"generation/{request.model_ref}"
        body = _unwrap(await self.call("POST", path, what=what, creates_job=True, json=payload))
        task = self.parse(PolloTask, body, what=what, creates_job=True)
        if not task.taskId:
            raise SubmitOutcomeUnknown(f"{what}: no taskId in {body!r}")
        return SubmitResult(provider_job_id=task.taskId, raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        body = await self.call("GET", f"generation/{provider_job_id}/status", what="pollo status")
        return parse_task(_unwrap(body), provider_job_id)

    async def cancel(self, provider_job_id: str) -> None:
        """Pollo documents no cancel endpoint (docs/providers/pollo.md#cancel): we only stop polling; the task may still
        bill."""
        return None

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        if not self.config.webhook_secret:
            raise WebhookRejected("pollo webhook: no webhook secret configured")
        lower = {k.lower(): v for k, v in headers.items()}
        webhook_id = lower.get("x-webhook-id", "")
        timestamp = lower.get("x-webhook-timestamp", "")
        signature = lower.get("x-webhook-signature", "")
        if not (webhook_id and timestamp and signature):
            raise WebhookRejected("pollo webhook: missing X-Webhook-* headers")
        try:
            sent_at = float(timestamp)
        except ValueError as exc:
            raise WebhookRejected("pollo webhook: bad timestamp") from exc
        if abs(time.time() - sent_at) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookRejected("pollo webhook: timestamp outside tolerance")
        expected = webhook_signature(self.config.webhook_secret, webhook_id, timestamp, body)
        # Tolerate a Standard-Webhooks-style "v1," prefix and space-separated lists.
        candidates = [s.partition(",")[2] if s.startswith("v1,") else s for s in signature.split()]
        if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
            raise WebhookRejected("pollo webhook: signature mismatch")

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        self._verify(headers, body)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"pollo webhook: unreadable body: {exc}") from exc
        if not isinstance(data, dict):
            raise WebhookRejected("pollo webhook: expected a JSON object")
        data = _unwrap(data)
        try:
            task_id = self.parse(PolloTask, data, what="pollo webhook").taskId
            if not task_id:
                raise WebhookRejected("pollo webhook: no taskId")
            update = parse_task(data, task_id)
        except RetryLater as exc:
            raise WebhookRejected(f"pollo webhook: unreadable body: {exc}") from exc
        # One delivery per task and state: retries of the same event collapse, whatever their X-Webhook-Id.
        return WebhookEvent(delivery_id=f"{task_id}:{update.state.value}", update=update)

    async def health(self) -> HealthReport:
        """Pollo has no documented health or balance route; a status probe proves the key and host."""
        if not self.configured():
            return HealthReport(healthy=False, detail="not configured")
        try:
            response = await self.client.get(self.url("generation/health-probe/status"))
        except httpx.HTTPError as exc:
            return HealthReport(healthy=False, detail=f"unreachable ({type(exc).__name__})")
        if http.is_out_of_credit_text(response.text):
            return HealthReport(healthy=False, detail="out of credit", out_of_credit=True)
        if response.status_code in (401, 403):
            return HealthReport(healthy=False, detail="auth")
        if response.status_code >= 500:
            return HealthReport(healthy=False, detail=f"HTTP {response.status_code}")
        return HealthReport(healthy=True, detail="answers")
