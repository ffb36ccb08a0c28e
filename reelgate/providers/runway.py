"""Runway adapter: text_to_video and image_to_video tasks, task polling and DELETE to cancel (no webhooks)."""

from __future__ import annotations

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
    file_fitting,
)
from reelgate.providers.http_provider import HTTPProvider
from reelgate.providers.wire import Number, Text, Urls, WireModel, first

DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
# docs/providers/runway.md#authentication: every request names the API version; the SDK's default.
API_VERSION = "2024-11-06"
# Task states (docs/providers/runway.md#status-values); THROTTLED is queued behind the account's concurrency limit.
_STATES = {
    "PENDING": ProviderState.QUEUED,
    "THROTTLED": ProviderState.QUEUED,
    "RUNNING": ProviderState.RUNNING,
    "SUCCEEDED": ProviderState.SUCCEEDED,
    "FAILED": ProviderState.FAILED,
    "CANCELLED": ProviderState.CANCELED,
}
# docs/providers/runway.md#endpoints: ratios are "W:H" pixel pairs; these are the ones gen4.5/gen4_turbo/veo3.1 accept
# per aspect.
_RATIOS = {
    ("16:9", "720p"): "1280:720",
    ("9:16", "720p"): "720:1280",
    ("16:9", "1080p"): "1920:1080",
    ("9:16", "1080p"): "1080:1920",
    ("1:1", "720p"): "960:960",
    ("4:3", "720p"): "1104:832",
    ("3:4", "720p"): "832:1104",
    ("21:9", "720p"): "1584:672",
}
# Failure codes Runway documents for moderation (`failureCode` starts with SAFETY).
_SAFETY = "SAFETY"


def ratio(request: JobRequest) -> str:
    explicit = request.options.get("ratio")
    if isinstance(explicit, str):
        return explicit
    return _RATIOS.get((request.aspect_ratio, request.resolution)) or f"{request.width}:{request.height}"


def build_body(request: JobRequest) -> tuple[str, dict[str, Any]]:
    """docs/providers/runway.md#endpoints: image_to_video when a start image is given (with `last` for an end frame),
    else text_to_video."""
    body: dict[str, Any] = {
        "model": request.model_ref,
        "promptText": request.prompt,
        "ratio": ratio(request),
        "duration": request.duration,
        "seed": request.seed,
    }
    if request.negative_prompt:
        body["negativePrompt"] = request.negative_prompt  # veo3.1 models only (docs/providers/runway.md#endpoints)
    if request.audio:
        body["audio"] = True
    body.update({k: v for k, v in request.options.items() if k != "ratio"})
    if request.start_image is None:
        path = "v1/text_to_video"
    else:
        path = "v1/image_to_video"
        first = transfer.image_ref(request.start_image)
        if request.end_image is None:
            body["promptImage"] = first
        else:
            body["promptImage"] = [
                {"uri": first, "position": "first"},
                {"uri": transfer.image_ref(request.end_image), "position": "last"},
            ]
    return path, {k: v for k, v in body.items() if v is not None}


class RunwayTask(WireModel):
    """`GET /v1/tasks/{id}` (docs/providers/runway.md#status-values)."""

    id: Text = None
    status: str = ""
    progress: Number = None
    output: Urls = []
    failure: Text = None
    failureCode: Text = None  # noqa: N815 - the vendor's field name


def parse_task(body: Mapping[str, Any], job_id: str) -> ProviderUpdate:
    task = HTTPProvider.parse(RunwayTask, body, what="runway status")
    state = _STATES.get(task.status)
    if state is None:
        raise RetryLater(f"runway: unknown task status {task.status!r}")
    raw = dict(body)
    if state is ProviderState.RUNNING:
        progress = task.progress
        # A float on an undocumented scale, read as 0..1 (1.0 = done) (docs/providers/runway.md#progress).
        if progress is not None and progress <= 1:
            progress = progress * 100
        return ProviderUpdate(job_id, state, progress=http.clamp_percent(progress), raw=raw)
    if state is ProviderState.SUCCEEDED:
        url = first(task.output)
        if url is None:
            return ProviderUpdate(
                job_id, ProviderState.FAILED, error_code=ProviderRejected.FAILED, error_message="no output", raw=raw
            )
        return ProviderUpdate(job_id, state, progress=100, output=OutputRef(url=url), raw=raw)
    if state is ProviderState.FAILED:
        message = task.failure or "failed"
        policy = (task.failureCode or "").startswith(_SAFETY) or http.is_content_policy_text(message)
        code = ProviderRejected.CONTENT_POLICY if policy else ProviderRejected.FAILED
        return ProviderUpdate(job_id, state, error_code=code, error_message=message, raw=raw)
    return ProviderUpdate(job_id, state, raw=raw)


class RunwayProvider(HTTPProvider):
    name = "runway"
    # docs/providers/runway.md#endpoints: a URL, or a data URI of up to 5 MB (64 bytes for its `data:...;base64,`).
    image_transport = ImageTransport.EITHER
    max_inline_image_bytes = file_fitting(5_000_000 - 64)
    default_base_url = DEFAULT_BASE_URL

    def fixed_headers(self) -> dict[str, str]:
        return {"X-Runway-Version": self.config.extra.get("runway_version", API_VERSION)}

    async def submit(self, request: JobRequest) -> SubmitResult:
        path, payload = build_body(request)
        what = "runway submit"
        body = await self.call("POST", path, what=what, creates_job=True, json=payload)
        task = self.parse(RunwayTask, body, what=what, creates_job=True)
        if not task.id:
            raise SubmitOutcomeUnknown(f"{what}: no task id in {body!r}")
        return SubmitResult(provider_job_id=task.id, raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        return parse_task(await self.call("GET", f"v1/tasks/{provider_job_id}", what="runway status"), provider_job_id)

    async def cancel(self, provider_job_id: str) -> None:
        """DELETE cancels a pending or running task and deletes a finished one (docs/providers/runway.md#cancel)."""
        response = await self.send("DELETE", f"v1/tasks/{provider_job_id}", what="runway cancel")
        if response.status_code != 404:
            http.raise_for_response(response, what="runway cancel")
