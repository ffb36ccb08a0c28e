"""ModelsLab adapter: v6 text2video/ultra/img2video and v7 video-fusion, `fetch` polling, unsigned webhooks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from reelgate.domain.jobs import ProviderState
from reelgate.providers import http, transfer
from reelgate.providers.base import (
    JobRequest,
    OutputRef,
    Provider,
    ProviderConfig,
    ProviderRejected,
    ProviderUpdate,
    RetryLater,
    SubmitOutcomeUnknown,
    SubmitResult,
    WebhookEvent,
    WebhookRejected,
)

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


def _message(body: Mapping[str, Any]) -> str:
    # Legacy endpoints spell it `messege` (docs/providers/modelslab.md#limits-and-errors).
    return str(body.get("message") or body.get("messege") or body.get("error") or body.get("status") or "")


def check_body(body: Mapping[str, Any], *, what: str) -> None:
    """Errors may arrive with HTTP 200 and `status: error` (docs/providers/modelslab.md#limits-and-errors, unverified):
    judge the body too."""
    if str(body.get("status")) not in ("error", "failed") or body.get("id"):
        return
    message = f"{what}: {_message(body)}"
    if http.is_out_of_credit_text(message):
        raise ProviderRejected(message, code=ProviderRejected.OUT_OF_CREDIT)
    if "rate limit" in message.lower() or "queued requests" in message.lower():
        raise RetryLater(message, after=_float(body.get("retry_after")))
    code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.BAD_INPUT
    raise ProviderRejected(message, code=code)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def raise_for_answer(response: httpx.Response, *, what: str) -> None:
    """docs/providers/modelslab.md#limits-and-errors: 429 carries `retry_after` in the body (no header); 402 is
    "Insufficient credits"."""
    if response.status_code == 429:
        try:
            after = _float(response.json().get("retry_after"))
        except (ValueError, AttributeError):
            after = None
        after = after if after is not None else http.parse_retry_after(response.headers.get("retry-after"))
        raise RetryLater(f"{what}: HTTP 429: {response.text[:300]}", after=after)
    http.raise_for_response(response, what=what)


def _first(*lists: Any) -> str | None:
    for value in lists:
        if isinstance(value, list) and value and isinstance(value[0], str):
            return value[0]
    return None


def parse_video(body: Mapping[str, Any], job_id: str | None = None) -> ProviderUpdate:
    """The `VideoResponse` of submit and fetch, or a webhook body (docs/providers/modelslab.md#endpoints)."""
    job_id = str(body.get("id") or job_id or "")
    status = str(body.get("status") or "")
    state = _STATES.get(status)
    if not job_id or state is None:
        raise RetryLater(f"modelslab: unreadable answer (id={job_id!r}, status={status!r})")
    raw = dict(body)
    if state is ProviderState.FAILED:
        message = _message(body) or status
        code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.FAILED
        return ProviderUpdate(job_id, state, error_code=code, error_message=message, raw=raw)
    if state is ProviderState.SUCCEEDED:
        # `future_links` become the output once the job is done (docs/providers/modelslab.md#progress), when `output` is
        # still empty.
        url = _first(body.get("output"), body.get("proxy_links"), body.get("future_links"))
        if url is None:
            return ProviderUpdate(job_id, ProviderState.RUNNING, raw=raw, poll_after_seconds=5.0)
        return ProviderUpdate(job_id, state, progress=100, output=OutputRef(url=url), raw=raw)
    # docs/providers/modelslab.md#progress: `eta` is the only progress signal: look again then. `future_links` stay in
    # `raw`.
    return ProviderUpdate(job_id, state, raw=raw, poll_after_seconds=_float(body.get("eta")))


class ModelsLabProvider(Provider):
    name = "modelslab"
    # docs/providers/modelslab.md#webhooks: generation webhooks carry no signature; the per-generation URL token is the
    # only proof.
    unsigned_webhooks = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._client = http.make_client()
        self._base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")

    async def _post(self, path: str, payload: dict[str, Any], *, what: str, creates_job: bool) -> dict[str, Any]:
        url = f"{self._base_url}/{path}"
        response = await transfer.send(self._client, "POST", url, what=what, creates_job=creates_job, json=payload)
        raise_for_answer(response, what=what)
        body = http.json_object(response, what=what, creates_job=creates_job)
        check_body(body, what=what)
        return body

    async def submit(self, request: JobRequest) -> SubmitResult:
        path, payload = build_payload(request, self.config.api_key)
        what = "modelslab submit"
        body = await self._post(path, payload, what=what, creates_job=True)
        if not body.get("id"):
            raise SubmitOutcomeUnknown(f"{what}: no id in {body!r}")
        return SubmitResult(provider_job_id=str(body["id"]), raw={k: v for k, v in body.items() if k != "key"})

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        """docs/providers/modelslab.md#status-values: `POST /v6/video/fetch/{id}` with the key in the body, for v6 and
        v7 jobs alike."""
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
            update = parse_video(data)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, RetryLater) as exc:
            raise WebhookRejected(f"modelslab webhook: unreadable body: {exc}") from exc
        # docs/providers/modelslab.md#webhooks: duplicates happen; one delivery per job and outcome.
        return WebhookEvent(delivery_id=f"{update.provider_job_id}:{data.get('status')}", update=update)

    async def aclose(self) -> None:
        await self._client.aclose()
