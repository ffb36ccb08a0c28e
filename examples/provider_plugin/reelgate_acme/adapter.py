"""The Acme Motion adapter: submit, poll, and verify Acme's signed callbacks.

Acme's API, as this example defines it: `POST /v1/videos` `{"model", "prompt", "seconds", "size",
"callback_url"}` answers a job; `GET /v1/videos/{id}` reads it; states are pending, running, ready (with
`video_url`) and error (with `error`). Callbacks carry the job and `Acme-Signature: t=<unix>,v1=<hex>`, an
HMAC-SHA256 of "<t>.<body>" keyed with the webhook secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import (
    JobRequest,
    OutputRef,
    ProviderRejected,
    ProviderUpdate,
    RetryLater,
    SubmitResult,
    WebhookEvent,
    WebhookRejected,
)
from reelgate.providers.http_provider import HTTPProvider

TOLERANCE_SECONDS = 300
_STATES = {
    "pending": ProviderState.QUEUED,
    "running": ProviderState.RUNNING,
    "ready": ProviderState.SUCCEEDED,
    "error": ProviderState.FAILED,
}


class AcmeJob(BaseModel):
    id: str
    state: Literal["pending", "running", "ready", "error"]
    progress: int | None = None
    video_url: str | None = None
    error: str | None = None

    def update(self) -> ProviderUpdate:
        state = _STATES[self.state]
        raw = self.model_dump(exclude_none=True)
        if state is ProviderState.SUCCEEDED:
            if not self.video_url:
                return ProviderUpdate(self.id, ProviderState.FAILED, error_code=ProviderRejected.FAILED, raw=raw)
            return ProviderUpdate(self.id, state, progress=100, output=OutputRef(url=self.video_url), raw=raw)
        if state is ProviderState.FAILED:
            return ProviderUpdate(
                self.id, state, error_code=ProviderRejected.FAILED, error_message=self.error or "failed", raw=raw
            )
        return ProviderUpdate(self.id, state, progress=self.progress, raw=raw)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class AcmeProvider(HTTPProvider):
    name = "acme"
    default_base_url = "https://api.acme-motion.example"

    async def submit(self, request: JobRequest) -> SubmitResult:
        body = {
            "model": request.model_ref,
            "prompt": request.prompt,
            "seconds": request.duration,
            "size": f"{request.width}x{request.height}",
            "callback_url": request.webhook_url,
        }
        what = "acme submit"
        answer = await self.call("POST", "v1/videos", what=what, creates_job=True, json=body)
        job = self.parse(AcmeJob, answer, what=what, creates_job=True)
        return SubmitResult(provider_job_id=job.id, raw=answer)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        what = "acme status"
        answer = await self.call("GET", f"v1/videos/{provider_job_id}", what=what)
        return self.parse(AcmeJob, answer, what=what).update()

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        if not self.config.webhook_secret:
            raise WebhookRejected("acme webhook: no webhook secret configured")
        lower = {k.lower(): v for k, v in headers.items()}
        parts = dict(p.split("=", 1) for p in lower.get("acme-signature", "").split(",") if "=" in p)
        timestamp, sent = parts.get("t", ""), parts.get("v1", "")
        if not (timestamp.isdigit() and abs(time.time() - int(timestamp)) <= TOLERANCE_SECONDS):
            raise WebhookRejected("acme webhook: missing or stale timestamp")
        if not hmac.compare_digest(signature(self.config.webhook_secret, timestamp, body), sent):
            raise WebhookRejected("acme webhook: signature mismatch")
        try:
            job = self.parse(AcmeJob, _json(body), what="acme webhook")
        except RetryLater as exc:
            raise WebhookRejected(str(exc)) from exc
        return WebhookEvent(delivery_id=f"{job.id}:{job.state}", update=job.update())


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected(f"acme webhook: not JSON: {exc}") from exc
