"""ModelsLab adapter: v6 text2video/ultra/img2video and v7 video-fusion, `fetch` polling, unsigned webhooks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import ValidationError

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
from reelgate.providers.wire import Number, Text, Urls, WireModel, first

# One base for both API generations: v6 routes are `{base}/v6/video/...`, v7 `{base}/v7/video-fusion/...`
# (docs/providers/modelslab.md#endpoints; modelslab-py hard-codes "https://modelslab.com/api/" and appends "v6/video/"
# or "v7/...").
DEFAULT_BASE_URL = "https://modelslab.com/api"
# docs/providers/modelslab.md#endpoints: `error` (openapi) and `failed` (polling example, webhook body) both mean
# failure.
_STATES = {
    "processing": ProviderState.RUNNING,
    "queued": ProviderState.QUEUED,
    "success": ProviderState.SUCCEEDED,
    "error": ProviderState.FAILED,
    "failed": ProviderState.FAILED,
}
# Endpoint choice, per catalog `provider_model`:
# - `text2video_ultra` is its own v6 route (`/v6/video/text2video_ultra`);
# - provider-hosted models (Google Veo, ByteDance Seedance, Kling...) live under v7 video-fusion, named by
#   `model_id` as in modelslab-py's provider schemas (e.g. `seedance-t2v`); refs may also say "v7:<id>";
# - anything else is a v6 community model id (`wan2.2`, `ltx-2.3`, `cogvideox`) on `/v6/video/text2video`,
#   or `/v6/video/img2video` when a start image is given.
V7_MODELS = frozenset({"veo3", "veo2", "veo-3", "veo-2", "veo3-fast", "seedance-t2v", "seedance-i2v"})
ULTRA = "text2video_ultra"
# The v6 text2video schema counts frames, not seconds (docs/providers/modelslab.md#endpoints: `num_frames`, `fps`); 16
# fps is Wan's rate.
V6_FPS = 16


def route(model_ref: str, has_image: bool) -> tuple[str, str]:
    """(path below the base, model_id) for a catalog model reference."""
    ref = model_ref.removeprefix("v7:")
    if model_ref.startswith("v7:") or ref in V7_MODELS:
        return (f"v7/video-fusion/{'image' if has_image else 'text'}-to-video", ref)
    if ref == ULTRA:
        return ("v6/video/text2video_ultra", ref)
    return (f"v6/video/{'img2video' if has_image else 'text2video'}", ref)


def build_payload(request: JobRequest, api_key: str | None) -> tuple[str, dict[str, Any]]:
    path, model_id = route(request.model_ref, request.start_image is not None)
    payload: dict[str, Any] = {
        # docs/providers/modelslab.md#authentication: the key travels in the JSON body, never in a header
        "key": api_key,
        "model_id": model_id,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "init_image": transfer.image_ref(request.start_image),
        "webhook": request.webhook_url,
        "track_id": request.generation_id,  # echoed in webhooks (docs/providers/modelslab.md#webhooks)
    }
    if path.startswith("v7/"):
        payload.update(
            aspect_ratio=request.aspect_ratio,
            resolution=request.resolution,
            duration=request.duration,
            end_image=transfer.image_ref(request.end_image),
            generate_audio=request.audio or None,
        )
    else:
        payload.update(
            width=request.width,
            height=request.height,
            num_frames=request.duration * V6_FPS,
            fps=V6_FPS,
            output_type="mp4",  # docs/providers/modelslab.md#endpoints: the default is gif
        )
    payload.update({k: v for k, v in request.options.items() if isinstance(k, str)})
    return path, {k: v for k, v in payload.items() if v is not None}


class VideoResponse(WireModel):
    """The `VideoResponse` of submit and fetch, or a webhook body (docs/providers/modelslab.md#status-values)."""

    id: Text = None
    status: Text = None
    message: Text = None
    messege: Text = None  # legacy routes' spelling (docs/providers/modelslab.md#limits-and-errors)
    error: Text = None
    output: Urls = []
    proxy_links: Urls = []
    future_links: Urls = []
    eta: Number = None
    retry_after: Number = None

    def text(self) -> str:
        return self.message or self.messege or self.error or self.status or ""


def check_body(body: Mapping[str, Any], *, what: str) -> None:
    """Errors may arrive with HTTP 200 and `status: error` (docs/providers/modelslab.md#limits-and-errors): judge the
    body too."""
    answer = HTTPProvider.parse(VideoResponse, body, what=what)
    if answer.status not in ("error", "failed") or answer.id:
        return
    message = f"{what}: {answer.text()}"
    if http.is_out_of_credit_text(message):
        raise ProviderRejected(message, code=ProviderRejected.OUT_OF_CREDIT)
    if "rate limit" in message.lower() or "queued requests" in message.lower():
        raise RetryLater(message, after=answer.retry_after)
    code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.BAD_INPUT
    raise ProviderRejected(message, code=code)


def raise_for_answer(response: httpx.Response, *, what: str) -> None:
    """docs/providers/modelslab.md#limits-and-errors: 429 carries `retry_after` in the body (no header); 402 is
    "Insufficient credits"."""
    if response.status_code == 429:
        try:
            after = VideoResponse.model_validate(response.json()).retry_after
        except (ValueError, ValidationError):
            after = None
        after = after if after is not None else http.parse_retry_after(response.headers.get("retry-after"))
        raise RetryLater(f"{what}: HTTP 429: {response.text[:300]}", after=after)
    http.raise_for_response(response, what=what)


def parse_video(body: Mapping[str, Any], job_id: str | None = None) -> ProviderUpdate:
    answer = HTTPProvider.parse(VideoResponse, body, what="modelslab answer")
    job_id = answer.id or job_id or ""
    status = answer.status or ""
    state = _STATES.get(status)
    if not job_id or state is None:
        raise RetryLater(f"modelslab: unreadable answer (id={job_id!r}, status={status!r})")
    raw = dict(body)
    if state is ProviderState.FAILED:
        message = answer.text() or status
        code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.FAILED
        return ProviderUpdate(job_id, state, error_code=code, error_message=message, raw=raw)
    if state is ProviderState.SUCCEEDED:
        # `future_links` become the output once the job is done, when `output` is still empty
        # (docs/providers/modelslab.md#status-values).
        url = first(answer.output) or first(answer.proxy_links) or first(answer.future_links)
        if url is None:
            return ProviderUpdate(job_id, ProviderState.RUNNING, raw=raw, poll_after_seconds=5.0)
        return ProviderUpdate(job_id, state, progress=100, output=OutputRef(url=url), raw=raw)
    # `eta` is the only progress signal: look again then (docs/providers/modelslab.md#progress).
    return ProviderUpdate(job_id, state, raw=raw, poll_after_seconds=answer.eta)


class ModelsLabProvider(HTTPProvider):
    name = "modelslab"
    # docs/providers/modelslab.md#endpoints: `init_image` is a URL.
    image_transport = ImageTransport.URL
    default_base_url = DEFAULT_BASE_URL
    # Generation webhooks carry no signature; the per-generation URL token is the only proof
    # (docs/providers/modelslab.md#webhooks).
    unsigned_webhooks = True

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {}  # the key travels in the JSON body (docs/providers/modelslab.md#authentication)

    async def _post(self, path: str, payload: dict[str, Any], *, what: str, creates_job: bool) -> dict[str, Any]:
        response = await self.send("POST", path, what=what, creates_job=creates_job, json=payload)
        raise_for_answer(response, what=what)
        body = http.json_object(response, what=what, creates_job=creates_job)
        check_body(body, what=what)
        return body

    async def submit(self, request: JobRequest) -> SubmitResult:
        path, payload = build_payload(request, self.config.api_key)
        what = "modelslab submit"
        body = await self._post(path, payload, what=what, creates_job=True)
        job_id = self.parse(VideoResponse, body, what=what, creates_job=True).id
        if not job_id:
            raise SubmitOutcomeUnknown(f"{what}: no id in {body!r}")
        return SubmitResult(provider_job_id=job_id, raw={k: v for k, v in body.items() if k != "key"})

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        """`POST /v6/video/fetch/{id}` with the key in the body, for v6 and v7 jobs alike
        (docs/providers/modelslab.md#endpoints)."""
        what = "modelslab fetch"
        body = await self._post(
            f"v6/video/fetch/{provider_job_id}", {"key": self.config.api_key}, what=what, creates_job=False
        )
        return parse_video(body, provider_job_id)

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        """Unsigned (docs/providers/modelslab.md#webhooks): the caller has checked the URL token; we only parse."""
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise WebhookRejected("modelslab webhook: expected a JSON object")
            update = parse_video(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RetryLater) as exc:
            raise WebhookRejected(f"modelslab webhook: unreadable body: {exc}") from exc
        # Duplicates happen: one delivery per job and outcome (docs/providers/modelslab.md#webhooks).
        return WebhookEvent(delivery_id=f"{update.provider_job_id}:{data.get('status')}", update=update)
