"""Luma Dream Machine adapter: video generations, polling, unsigned callbacks, and the credit balance."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import ValidationError

from reelgate.domain.jobs import ProviderState
from reelgate.providers import http, transfer
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
from reelgate.providers.wire import Maybe, Number, Text, WireModel

DEFAULT_BASE_URL = "https://api.lumalabs.ai/dream-machine/v1"
# Luma's generation states (docs/providers/luma.md#status-values).
_STATES = {
    "queued": ProviderState.QUEUED,
    "dreaming": ProviderState.RUNNING,
    "completed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
}
# docs/providers/luma.md#endpoints: durations are strings; ray-2 renders 5 s or 9 s.
_DURATIONS = (5, 9)


def build_body(request: JobRequest) -> dict[str, Any]:
    """docs/providers/luma.md#endpoints; Luma has no seed and no negative prompt, so neither is sent."""
    duration = min(_DURATIONS, key=lambda d: abs(d - request.duration))
    body: dict[str, Any] = {
        "model": request.model_ref,
        "prompt": request.prompt,
        "aspect_ratio": request.aspect_ratio,
        "duration": f"{duration}s",
        "resolution": request.resolution,
        "callback_url": request.webhook_url,
    }
    keyframes = {}
    for name, image in (("frame0", request.start_image), ("frame1", request.end_image)):
        if image is not None:
            keyframes[name] = {"type": "image", "url": transfer.image_ref(image)}
    if keyframes:
        body["keyframes"] = keyframes
    if "loop" in request.options:
        body["loop"] = bool(request.options["loop"])
    return {k: v for k, v in body.items() if v is not None}


class LumaAssets(WireModel):
    video: Text = None


class LumaGeneration(WireModel):
    """A Generation object (docs/providers/luma.md#endpoints), from GET or from a callback."""

    id: Text = None
    state: str = ""
    failure_reason: Text = None
    assets: Maybe[LumaAssets] = None


class LumaCredits(WireModel):
    credit_balance: Number = None


def parse_generation(body: Mapping[str, Any], job_id: str | None = None) -> ProviderUpdate:
    generation = HTTPProvider.parse(LumaGeneration, body, what="luma generation")
    job_id = generation.id or job_id or ""
    state = _STATES.get(generation.state)
    if not job_id or state is None:
        raise RetryLater(f"luma: unreadable generation (id={job_id!r}, state={generation.state!r})")
    raw = dict(body)
    if state is ProviderState.FAILED:
        message = generation.failure_reason or "failed"
        code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.FAILED
        return ProviderUpdate(job_id, state, error_code=code, error_message=message, raw=raw)
    if state is ProviderState.SUCCEEDED:
        url = generation.assets.video if generation.assets else None
        if not url:
            return ProviderUpdate(
                job_id, ProviderState.FAILED, error_code=ProviderRejected.FAILED, error_message="no video", raw=raw
            )
        return ProviderUpdate(job_id, state, progress=100, output=OutputRef(url=url), raw=raw)
    return ProviderUpdate(job_id, state, raw=raw)


class LumaProvider(HTTPProvider):
    name = "luma"
    # docs/providers/luma.md#endpoints: keyframes are images by `url`.
    image_transport = ImageTransport.URL
    default_base_url = DEFAULT_BASE_URL
    # Callbacks carry no signature; the per-generation URL token is the only proof (docs/providers/luma.md#webhooks).
    unsigned_webhooks = True

    async def submit(self, request: JobRequest) -> SubmitResult:
        what = "luma submit"
        body = await self.call("POST", "generations/video", what=what, creates_job=True, json=build_body(request))
        generation = self.parse(LumaGeneration, body, what=what, creates_job=True)
        if not generation.id:
            raise SubmitOutcomeUnknown(f"{what}: no generation id in {body!r}")
        return SubmitResult(provider_job_id=generation.id, raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        body = await self.call("GET", f"generations/{provider_job_id}", what="luma status")
        return parse_generation(body, provider_job_id)

    async def cancel(self, provider_job_id: str) -> None:
        """There is no cancel, and DELETE only deletes: we stop polling and leave the generation be
        (docs/providers/luma.md#cancel)."""
        return None

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        try:
            update = parse_generation(json.loads(body))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, RetryLater) as exc:
            raise WebhookRejected(f"luma webhook: unreadable body: {exc}") from exc
        # Sent when dreaming, completed or failed and retried 3 times (docs/providers/luma.md#webhooks): one
        # delivery per job and state.
        return WebhookEvent(delivery_id=f"{update.provider_job_id}:{update.state.value}", update=update)

    async def health(self) -> HealthReport:
        """`GET /credits`: an empty balance is reported before jobs fail (docs/providers/luma.md#limits-and-errors)."""
        if not self.configured():
            return HealthReport(healthy=False, detail="not configured")
        try:
            response = await self.client.get(self.url("credits"))
        except httpx.HTTPError as exc:
            return HealthReport(healthy=False, detail=f"unreachable ({type(exc).__name__})")
        if response.status_code in (401, 403):
            return HealthReport(healthy=False, detail="auth")
        if response.status_code >= 400:
            return HealthReport(healthy=False, detail=f"HTTP {response.status_code}")
        try:
            balance = LumaCredits.model_validate(response.json()).credit_balance
        except (ValueError, ValidationError):
            balance = None
        if balance is None:
            return HealthReport(healthy=True, detail="balance unknown")
        if balance <= 0:
            return HealthReport(healthy=False, detail="out of credit", out_of_credit=True)
        return HealthReport(healthy=True, detail=f"credit balance {balance:g}")
