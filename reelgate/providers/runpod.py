"""RunPod serverless adapter: an LTX-2 worker and a Wan 2.2 worker, each on its own endpoint."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from reelgate.domain.jobs import ProviderState
from reelgate.providers import http
from reelgate.providers.base import (
    HealthReport,
    ImageTransport,
    JobRequest,
    OutputRef,
    ProviderConfig,
    ProviderRejected,
    ProviderUpdate,
    RetryLater,
    SubmitOutcomeUnknown,
    SubmitResult,
    WebhookEvent,
    WebhookRejected,
    file_fitting,
)
from reelgate.providers.http_provider import HTTPProvider
from reelgate.providers.wire import Text, WireModel

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
# docs/providers/runpod.md#limits-and-errors: a /run body may be at most 10 MB. The prompt and the other fields of
# the input need far less than the room kept here; the rest may hold the start image's base64.
RUN_BODY_LIMIT = 10_000_000
RUN_BODY_ROOM = 64 * 1024

# Job states, docs/providers/runpod.md#status-values (job-states.mdx). RUNNING is listed in the docs only.
_STATES = {
    "IN_QUEUE": ProviderState.QUEUED,
    "IN_PROGRESS": ProviderState.RUNNING,
    "RUNNING": ProviderState.RUNNING,
    "COMPLETED": ProviderState.SUCCEEDED,
    "FAILED": ProviderState.FAILED,
    "TIMED_OUT": ProviderState.FAILED,
    "CANCELLED": ProviderState.CANCELED,
}
# LTX-2 wants sizes divisible by 32, so 1080p is rendered as 1920x1088.
_LTX_SIZES = {"1080p": (1920, 1088), "720p": (1280, 720)}
# Wan 2.2 renders 16 frames per second; 81 frames (5 s) is its native clip length.
WAN_FPS = 16


@dataclass(frozen=True)
class Endpoint:
    """Where one worker answers; `local` is RunPod's own `--rp_serve_api` server (POST-only, no prefix)."""

    family: str
    url: str
    local: bool


def _family(model_ref: str) -> str:
    """Which worker runs a model: refs starting with "ltx" go to the LTX endpoint, "wan" to Wan."""
    ref = model_ref.lower()
    if ref.startswith("ltx"):
        return "ltx"
    if ref.startswith("wan"):
        return "wan"
    raise ProviderRejected(f"runpod: no endpoint for model {model_ref!r}", code=ProviderRejected.BAD_INPUT)


def ltx_size(request: JobRequest) -> tuple[int, int]:
    width, height = _LTX_SIZES.get(request.resolution, (request.width, request.height))
    if request.aspect_ratio == "9:16":
        width, height = height, width
    return width, height


def _image_fields(request: JobRequest, url_key: str, base64_key: str) -> dict[str, str]:
    image = request.start_image
    if image is None:
        return {}
    if image.url:
        return {url_key: image.url}
    return {base64_key: base64.b64encode(image.data).decode("ascii")}


def ltx_input(request: JobRequest) -> dict[str, Any]:
    """The LTX-2 handler's input, key by key as its handler contract defines it (docs/providers/runpod.md#quirks)."""
    width, height = ltx_size(request)
    is_i2v = request.start_image is not None or request.model_ref.endswith("i2v")
    payload: dict[str, Any] = {
        "prompt": request.prompt,
        "type": "i2v" if is_i2v else "t2v",
        # Anything but "pro" runs the fast pipeline.
        "mode": "pro" if request.options.get("mode") == "pro" else "fast",
        "width": width,
        "height": height,
        "duration": request.duration,
        "camera_lora": request.options.get("camera_lora") or "static",
    }
    if request.seed is not None:
        payload["seed"] = request.seed
    payload.update(_image_fields(request, "image_url", "image_base64"))
    return payload


def wan_input(request: JobRequest) -> dict[str, Any]:
    """Our Wan 2.2 worker contract (no published contract exists, so we define it):
    `prompt`, `negative_prompt`, `width`, `height`, `duration` (s) and `num_frames` (= duration x 16 + 1,
    Wan's frame count), `seed`, and for i2v `image_url` or `image_base64` as in the LTX contract."""
    payload: dict[str, Any] = {
        "prompt": request.prompt,
        "width": request.width,
        "height": request.height,
        "duration": request.duration,
        "num_frames": request.duration * WAN_FPS + 1,
    }
    if request.negative_prompt:
        payload["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        payload["seed"] = request.seed
    payload.update(_image_fields(request, "image_url", "image_base64"))
    return payload


def _output_ref(output: Any) -> OutputRef | str:
    """The LTX-2 contract's `{"video": base64}`, or a URL string / `{"video_url"}`; a str return is an error."""
    if isinstance(output, dict):
        if output.get("error"):
            return str(output["error"])
        for key in ("video_url", "url"):
            if isinstance(output.get(key), str):
                return OutputRef(url=output[key], content_type="video/mp4")
        output = output.get("video")
    if isinstance(output, str) and output:
        if output.startswith(("http://", "https://")):
            return OutputRef(url=output, content_type="video/mp4")
        if output.startswith("data:"):
            output = output.partition(",")[2]
        return OutputRef(base64_data=output, content_type="video/mp4")
    return "worker returned no video"


class RunPodJob(WireModel):
    """A `/status` answer, also the webhook body (docs/providers/runpod.md#status-values); `output` is whatever
    the worker returned."""

    id: Text = None
    status: Text = None
    output: Any = None
    error: Any = None


def parse_job(body: Mapping[str, Any], job_id: str) -> ProviderUpdate:
    """A /status body (also the webhook body) as a normalized update."""
    job = HTTPProvider.parse(RunPodJob, body, what="runpod job")
    status = (job.status or "").upper()
    state = _STATES.get(status)
    if state is None:
        raise RetryLater(f"runpod: unknown job status {status!r}")
    output = job.output
    raw = dict(body)
    if state is ProviderState.RUNNING:
        # progress_update() puts any value in `output` while IN_PROGRESS (docs/providers/runpod.md#progress).
        value = output.get("progress") if isinstance(output, dict) else output
        return ProviderUpdate(job_id, state, progress=http.clamp_percent(value), raw=raw)
    if state is ProviderState.SUCCEEDED:
        ref = _output_ref(output)
        if isinstance(ref, str):
            return ProviderUpdate(
                job_id, ProviderState.FAILED, error_code=ProviderRejected.FAILED, error_message=ref, raw=raw
            )
        return ProviderUpdate(job_id, state, progress=100, output=ref, raw=raw)
    if state is ProviderState.FAILED:
        message = str(job.error or status)
        code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.FAILED
        return ProviderUpdate(job_id, state, error_code=code, error_message=message, raw=raw)
    return ProviderUpdate(job_id, state, raw=raw)


class RunPodHealth(WireModel):
    workers: Any = None


class RunPodProvider(HTTPProvider):
    name = "runpod"
    default_base_url = DEFAULT_BASE_URL
    unsigned_webhooks = True
    # Our workers take `image_url` as well as `image_base64` (docs/providers/runpod.md#limits-and-errors).
    image_transport = ImageTransport.EITHER
    max_inline_image_bytes = file_fitting(RUN_BODY_LIMIT - RUN_BODY_ROOM)

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        # Which endpoint ran a job, so status/cancel need not probe; lost on restart (then we probe).
        self._job_endpoints: dict[str, Endpoint] = {}

    def _endpoint(self, family: str) -> Endpoint | None:
        override = self.config.extra.get(f"{family}_endpoint_url")
        if override:
            return Endpoint(family, override.rstrip("/"), local=True)
        endpoint_id = self.config.extra.get(f"{family}_endpoint_id")
        if endpoint_id:
            return Endpoint(family, self.url(endpoint_id), local=False)
        return None

    def _endpoints(self) -> list[Endpoint]:
        return [e for e in (self._endpoint("ltx"), self._endpoint("wan")) if e is not None]

    def api_urls(self) -> list[str]:
        return [e.url for e in self._endpoints()] or [self.base_url]

    def configured(self) -> bool:
        if not self._endpoints():
            return False
        # The local worker server needs no key; RunPod's API does.
        return bool(self.config.api_key) or all(e.local for e in self._endpoints())

    def _candidates(self, job_id: str, request: JobRequest | None) -> list[Endpoint]:
        if request is not None:
            endpoint = self._endpoint(_family(request.model_ref))
            return [endpoint] if endpoint else []
        known = self._job_endpoints.get(job_id)
        return [known] if known else self._endpoints()

    async def submit(self, request: JobRequest) -> SubmitResult:
        family = _family(request.model_ref)
        endpoint = self._endpoint(family)
        if endpoint is None:
            raise ProviderRejected(f"runpod: {family} endpoint is not configured", code=ProviderRejected.FAILED)
        payload: dict[str, Any] = {"input": ltx_input(request) if family == "ltx" else wan_input(request)}
        if request.webhook_url:
            payload["webhook"] = request.webhook_url
        what = "runpod submit"
        body = await self.call("POST", f"{endpoint.url}/run", what=what, creates_job=True, json=payload)
        job_id = body.get("id")  # the id must be text: a number would be another API
        if not isinstance(job_id, str) or not job_id:
            raise SubmitOutcomeUnknown(f"{what}: no job id in {body!r}")
        self._job_endpoints[job_id] = endpoint
        return SubmitResult(provider_job_id=job_id, raw=body)

    async def _status_at(self, endpoint: Endpoint, job_id: str) -> ProviderUpdate:
        # docs/providers/runpod.md#endpoints: the local worker server answers status only to POST (GET is 405); RunPod's
        # API uses GET.
        method = "POST" if endpoint.local else "GET"
        url = f"{endpoint.url}/status/{job_id}"
        what = "runpod status"
        # docs/providers/runpod.md#status-values: results are kept 30 min after /run; then /status is 404 (mapped to
        # NOT_FOUND).
        body = await self.call(method, url, what=what)
        job = self.parse(RunPodJob, body, what=what)
        if endpoint.local and job.error == "Job ID not found":
            # docs/providers/runpod.md#endpoints: the local server forgets a job after its first status answer.
            raise ProviderRejected(f"{what}: job {job_id} not found", code=ProviderRejected.NOT_FOUND)
        return parse_job(body, job.id or job_id)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        candidates = self._candidates(provider_job_id, request)
        if not candidates:
            raise ProviderRejected("runpod: no endpoint configured", code=ProviderRejected.FAILED)
        for index, endpoint in enumerate(candidates):
            try:
                update = await self._status_at(endpoint, provider_job_id)
            except ProviderRejected as exc:
                # Without the request we may ask the wrong endpoint first; 404 there means "try the next".
                if exc.code == ProviderRejected.NOT_FOUND and index + 1 < len(candidates):
                    continue
                raise
            self._job_endpoints[provider_job_id] = endpoint
            return update
        raise AssertionError("unreachable")  # pragma: no cover

    async def cancel(self, provider_job_id: str) -> None:
        """`POST /{eid}/cancel/{id}` (docs/providers/runpod.md#cancel); the local worker server has no cancel route."""
        for endpoint in self._candidates(provider_job_id, None):
            if endpoint.local:
                continue
            try:
                await self.call("POST", f"{endpoint.url}/cancel/{provider_job_id}", what="runpod cancel")
                return
            except ProviderRejected as exc:
                if exc.code != ProviderRejected.NOT_FOUND:
                    raise

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        """RunPod signs nothing (docs/providers/runpod.md#webhooks); the caller checks the per-generation token in the
        URL."""
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"runpod webhook: malformed JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise WebhookRejected("runpod webhook: expected a JSON object")
        job_id = query.get("job") or data.get("id")
        if not job_id:
            raise WebhookRejected("runpod webhook: no job id in query or body")
        if "status" not in data:
            # docs/providers/runpod.md#endpoints: the local worker server posts the handler's bare result `{"output":
            # …}`.
            data = {"id": job_id, "status": "FAILED" if data.get("error") else "COMPLETED", **data}
        try:
            update = parse_job(data, str(job_id))
        except RetryLater as exc:
            raise WebhookRejected(str(exc)) from exc
        return WebhookEvent(delivery_id=f"{job_id}:{str(data['status']).upper()}", update=update)

    async def _health_of(self, endpoint: Endpoint) -> tuple[bool, str]:
        try:
            response = await self.client.get(f"{endpoint.url}/health")
        except httpx.HTTPError as exc:
            return False, f"{endpoint.family}: unreachable ({type(exc).__name__})"
        if response.status_code in (401, 403):
            return False, f"{endpoint.family}: auth"
        if endpoint.local:
            # The local worker server has no /health (404); any answer means it is up.
            return response.status_code < 500, f"{endpoint.family}: local worker answers"
        if response.status_code != 200:
            return False, f"{endpoint.family}: HTTP {response.status_code}"
        try:
            workers = RunPodHealth.model_validate(response.json()).workers or {}
        except (ValueError, ValidationError):
            workers = {}
        return True, f"{endpoint.family}: workers {workers}"

    async def health(self) -> HealthReport:
        """`GET /{eid}/health` per endpoint (docs/providers/runpod.md#status-values); RunPod exposes no credit state
        (docs/providers/runpod.md#limits-and-errors unverified)."""
        endpoints = self._endpoints()
        if not endpoints:
            return HealthReport(healthy=False, detail="no endpoint configured")
        results = [await self._health_of(e) for e in endpoints]
        return HealthReport(healthy=all(ok for ok, _ in results), detail="; ".join(d for _, d in results))
