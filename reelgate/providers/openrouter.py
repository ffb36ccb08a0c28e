"""OpenRouter's video API: JSON submit, polling, signed completion webhooks, and the output by signed URL.

The protocol facts are in docs/providers/openrouter.md; each use below names its section.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from reelgate.domain.jobs import ProviderState
from reelgate.providers import http, transfer
from reelgate.providers.base import (
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
from reelgate.providers.wire import Maybe, Text, Urls, WireModel, first

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
# docs/providers/openrouter.md#status-values
_STATES = {
    "pending": ProviderState.QUEUED,
    "in_progress": ProviderState.RUNNING,
    "completed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "cancelled": ProviderState.CANCELED,
    "expired": ProviderState.FAILED,
}
# docs/providers/openrouter.md#webhooks: signatures older than this are refused (replays).
WEBHOOK_TOLERANCE_SECONDS = 300
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
# reelgate's catalog spells 4K in lower case; OpenRouter's enum in capitals.
_RESOLUTIONS = {"4k": "4K"}


def build_body(request: JobRequest, callback_url: str | None) -> dict[str, Any]:
    """docs/providers/openrouter.md#submit: the catalog's `provider_model` is OpenRouter's model slug."""
    body: dict[str, Any] = {
        "model": request.model_ref,
        "prompt": request.prompt,
        "duration": request.duration,
        "resolution": _RESOLUTIONS.get(request.resolution, request.resolution),
        "aspect_ratio": request.aspect_ratio,
        "seed": request.seed,
        "generate_audio": request.audio,
        "callback_url": callback_url,
    }
    frames = [
        {"type": "image_url", "image_url": {"url": transfer.image_ref(image)}, "frame_type": frame_type}
        for frame_type, image in (("first_frame", request.start_image), ("last_frame", request.end_image))
        if image is not None
    ]
    if frames:
        body["frame_images"] = frames
    return {k: v for k, v in body.items() if v is not None}


class VideoJob(WireModel):
    """The job object of submit and poll (docs/providers/openrouter.md#poll)."""

    id: Text = None
    status: str = ""
    error: Text = None
    urls: Urls = []
    unsigned_urls: Urls = []


class WebhookEnvelope(WireModel):
    """docs/providers/openrouter.md#webhooks"""

    type: Text = None
    data: Maybe[VideoJob] = None


def parse_job(body: Mapping[str, Any], job_id: str | None = None) -> tuple[ProviderUpdate, VideoJob]:
    job = HTTPProvider.parse(VideoJob, body, what="openrouter status")
    state = _STATES.get(job.status)
    job_id = job.id or job_id or ""
    if not job_id or state is None:
        raise RetryLater(f"openrouter: unreadable job (id={job_id!r}, status={job.status!r})")
    raw = dict(body)
    if job.status == "expired":
        message = job.error or "The job expired at OpenRouter before its output was fetched."
        return ProviderUpdate(job_id, state, error_code=ProviderRejected.FAILED, error_message=message, raw=raw), job
    if state is ProviderState.FAILED:
        message = job.error or "failed"
        code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.FAILED
        return ProviderUpdate(job_id, state, error_code=code, error_message=message, raw=raw), job
    if state is ProviderState.CANCELED:
        return ProviderUpdate(job_id, state, error_message=job.error or "cancelled at OpenRouter", raw=raw), job
    return ProviderUpdate(job_id, state, progress=100 if state is ProviderState.SUCCEEDED else None, raw=raw), job


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """docs/providers/openrouter.md#webhooks: hex HMAC-SHA256 of `<timestamp>,<raw body>`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"," + body, hashlib.sha256).hexdigest()


class OpenRouterProvider(HTTPProvider):
    name = "openrouter"
    # docs/providers/openrouter.md: frame images are https or base64 data URLs, no size limit stated.
    image_transport = ImageTransport.EITHER
    default_base_url = DEFAULT_BASE_URL

    async def submit(self, request: JobRequest) -> SubmitResult:
        what = "openrouter submit"
        # Completion webhooks are asked for only when their signing secret is configured; otherwise we poll.
        callback = request.webhook_url if self.config.webhook_secret else None
        body = await self.call("POST", "videos", what=what, creates_job=True, json=build_body(request, callback))
        job = self.parse(VideoJob, body, what=what, creates_job=True)
        if not job.id:
            raise SubmitOutcomeUnknown(f"{what}: no job id in {body!r}")
        return SubmitResult(provider_job_id=job.id, raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        body = await self.call("GET", f"videos/{provider_job_id}", what="openrouter status")
        update, job = parse_job(body, provider_job_id)
        if update.state is not ProviderState.SUCCEEDED:
            return update
        return await self._with_output(update, job, provider_job_id)

    async def _with_output(self, update: ProviderUpdate, job: VideoJob, job_id: str) -> ProviderUpdate:
        """docs/providers/openrouter.md#download: the signed URL needs no key, so the services fetch it through the
        SSRF guard; without one, the content endpoint is read with the key into the spool."""
        signed = first(job.urls)
        if signed:
            return ProviderUpdate(job_id, update.state, progress=100, output=OutputRef(url=signed), raw=update.raw)
        name = _SAFE_NAME.sub("_", job_id)
        dest = transfer.spool_dir(self.config.extra, self.name) / f"{name}.mp4"
        path = await transfer.spool(
            self.client,
            self.url(f"videos/{job_id}/content?index=0"),
            dest,
            what="openrouter content",
            max_bytes=transfer.max_bytes(self.config.extra),
        )
        output = OutputRef(path=str(path), content_type="video/mp4")
        return ProviderUpdate(job_id, update.state, progress=100, output=output, raw=update.raw)

    async def cancel(self, provider_job_id: str) -> None:
        """docs/providers/openrouter.md#cancel: there is no cancel endpoint; we stop polling."""
        return None

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        secret = self.config.webhook_secret
        if not secret:
            raise WebhookRejected("openrouter webhook: no signing secret configured")
        lower = {k.lower(): v for k, v in headers.items()}
        fields = dict(part.split("=", 1) for part in lower.get("x-openrouter-signature", "").split(",") if "=" in part)
        timestamp, sent = fields.get("t", ""), fields.get("v1", "")
        if not timestamp or not sent:
            raise WebhookRejected("openrouter webhook: missing X-OpenRouter-Signature")
        try:
            sent_at = float(timestamp)
        except ValueError as exc:
            raise WebhookRejected("openrouter webhook: bad timestamp") from exc
        if abs(time.time() - sent_at) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookRejected("openrouter webhook: timestamp outside tolerance")
        if not hmac.compare_digest(signature(secret, timestamp, body), sent):
            raise WebhookRejected("openrouter webhook: signature mismatch")

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        self._verify(headers, body)
        try:
            envelope = WebhookEnvelope.model_validate(json.loads(body))
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"openrouter webhook: unreadable body: {exc}") from exc
        data = envelope.data
        if data is None or not data.id:
            raise WebhookRejected("openrouter webhook: no job id")
        try:
            update, job = parse_job(data.model_dump(), data.id)
            if update.state is ProviderState.SUCCEEDED:
                # docs/providers/openrouter.md#webhooks: the event carries only the keyed content URLs, so the
                # video is read from the configured API host with our key (the host in the event is not used).
                update = await self._with_output(update, job.model_copy(update={"urls": []}), data.id)
        except (RetryLater, ProviderRejected) as exc:
            raise WebhookRejected(f"openrouter webhook: {exc}") from exc
        lower = {k.lower(): v for k, v in headers.items()}
        delivery = lower.get("x-openrouter-idempotency-key") or f"{data.id}-{data.status}"
        return WebhookEvent(delivery_id=delivery, update=update)
