"""Replicate adapter: predictions for Wan, Zeroscope and Flux Schnell, Standard Webhooks verification."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import standardwebhooks

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
from reelgate.providers.wire import Text, WireModel

DEFAULT_BASE_URL = "https://api.replicate.com"

# Lifecycle states, docs/providers/replicate.md#status-values. The v1 SDK's pydantic model lacks `aborted`, so we parse
# raw JSON ourselves (docs/providers/replicate.md#quirks cross-cutting warnings).
_STATES = {
    "starting": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "succeeded": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "canceled": ProviderState.CANCELED,
    "aborted": ProviderState.FAILED,
}
ABORTED = "provider_aborted"
# docs/providers/replicate.md#progress: the v1 SDK's tqdm parser (replicate/prediction.py `Progress.parse`).
_TQDM = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)")
_VERSION = re.compile(r"^[0-9a-f]{64}$")
# Version hashes the default catalog pins; a bare hash says nothing about its model, so we know these by heart.
KNOWN_VERSIONS = {
    "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637": "flux",
    "9f747673945c62801b13b84701c783929c0ee784e4748ec062204894dda1a351": "zeroscope",
}
# Wan 2.x on Replicate generates at 16 fps and accepts 81..121 frames (wan-video/wan-2.2-*-fast schema).
WAN_FPS, WAN_MIN_FRAMES, WAN_MAX_FRAMES = 16, 81, 121


def parse_progress(logs: str | None) -> int | None:
    """Percent from the last tqdm line in `logs`, as the v1 SDK computes it (current / total)."""
    for line in reversed((logs or "").splitlines()):
        match = _TQDM.match(line)
        if match:
            current, total = int(match.group(2)), int(match.group(3))
            return http.clamp_percent(100 * current // total) if total else int(match.group(1))
    return None


def _image_value(request: JobRequest) -> str | None:
    """File inputs are URLs or data URLs (docs/providers/replicate.md#endpoints: data URLs are meant for files up to 256
    kB)."""
    image = request.start_image
    if image is None:
        return None
    if image.url:
        return image.url
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def wan_input(request: JobRequest) -> dict[str, Any]:
    """Wan 2.x (t2v/i2v at 480p/720p): keys from the wan-video/wan-2.2-*-fast input schema."""
    frames = max(WAN_MIN_FRAMES, min(WAN_MAX_FRAMES, request.duration * WAN_FPS + 1))
    payload: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "resolution": request.resolution,  # "480p" | "720p"
        "aspect_ratio": request.aspect_ratio,
        "num_frames": frames,
        "frames_per_second": WAN_FPS,
        "image": _image_value(request),  # i2v only; None is dropped before sending
    }
    return payload


def zeroscope_input(request: JobRequest) -> dict[str, Any]:
    """Zeroscope v2 XL (15 seconds at 24 fps by default): num_frames = duration x fps."""
    fps = int(request.options.get("fps", 24))
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "num_frames": request.duration * fps,
        "fps": fps,
        "width": request.width,
        "height": request.height,
        "seed": request.seed,
    }


def flux_input(request: JobRequest) -> dict[str, Any]:
    """Flux Schnell (an image model): one image, webp unless the options ask for png."""
    fmt = "png" if request.options.get("output_format") == "png" else "webp"
    return {
        "prompt": request.prompt,
        "aspect_ratio": request.aspect_ratio,
        "output_format": fmt,
        "num_outputs": 1,
        "seed": request.seed,
    }


def generic_input(request: JobRequest) -> dict[str, Any]:
    return {"prompt": request.prompt, "negative_prompt": request.negative_prompt, "seed": request.seed}


_BUILDERS: dict[str, Callable[[JobRequest], dict[str, Any]]] = {
    "wan": wan_input,
    "zeroscope": zeroscope_input,
    "flux": flux_input,
    "generic": generic_input,
}


def model_family(model_ref: str, kind: str = "") -> str:
    ref = model_ref.lower()
    known = KNOWN_VERSIONS.get(ref.rpartition(":")[2])
    if known:
        return known
    for family in ("zeroscope", "flux", "wan"):
        if family in ref:
            return family
    return "flux" if kind == "image" else "generic"


def build_input(request: JobRequest) -> dict[str, Any]:
    payload = _BUILDERS[model_family(request.model_ref, request.kind)](request)
    return {k: v for k, v in payload.items() if v is not None}


class Prediction(WireModel):
    """A prediction object: `GET /v1/predictions/{id}` and the webhook body (docs/providers/replicate.md#endpoints)."""

    id: Text = None
    status: str = ""
    logs: Text = None
    output: Any = None
    error: Text = None

    def first_url(self) -> str | None:
        output = self.output
        if isinstance(output, list):
            output = output[0] if output else None
        return output if isinstance(output, str) and output else None


def parse_prediction(body: Mapping[str, Any]) -> ProviderUpdate:
    prediction = HTTPProvider.parse(Prediction, body, what="replicate prediction")
    job_id, status = prediction.id or "", prediction.status
    state = _STATES.get(status)
    if not job_id or state is None:
        raise RetryLater(f"replicate: unreadable prediction (id={job_id!r}, status={status!r})")
    raw = dict(body)
    if state is ProviderState.RUNNING:
        return ProviderUpdate(job_id, state, progress=parse_progress(prediction.logs), raw=raw)
    if state is ProviderState.SUCCEEDED:
        url = prediction.first_url()
        if url is None:
            return ProviderUpdate(
                job_id, ProviderState.FAILED, error_code=ProviderRejected.FAILED, error_message="no output", raw=raw
            )
        return ProviderUpdate(job_id, state, progress=100, output=OutputRef(url=url), raw=raw)
    if state is ProviderState.FAILED:
        message = prediction.error or status
        if status == "aborted":
            code = ABORTED
        elif http.is_content_policy_text(message):
            code = ProviderRejected.CONTENT_POLICY
        else:
            code = ProviderRejected.FAILED
        return ProviderUpdate(job_id, state, error_code=code, error_message=message, raw=raw)
    return ProviderUpdate(job_id, state, raw=raw)


class ReplicateProvider(HTTPProvider):
    name = "replicate"
    # docs/providers/replicate.md#endpoints: file inputs are URLs or data URLs, the latter meant for files up to 256 kB.
    image_transport = ImageTransport.EITHER
    max_inline_image_bytes = 256_000
    default_base_url = DEFAULT_BASE_URL

    def _url(self, path: str) -> str:
        return self.url(f"v1/{path}")

    def _create_target(self, model_ref: str) -> tuple[str, dict[str, Any]]:
        """docs/providers/replicate.md#endpoints: official models by name; pinned versions (64 hex, or
        "owner/name:hash") by version."""
        name, _, version = model_ref.partition(":")
        if _VERSION.match(model_ref):
            return self._url("predictions"), {"version": model_ref}
        if version:
            return self._url("predictions"), {"version": version}
        if name.count("/") == 1:
            return self._url(f"models/{name}/predictions"), {}
        raise ProviderRejected(f"replicate: bad model reference {model_ref!r}", code=ProviderRejected.BAD_INPUT)

    async def submit(self, request: JobRequest) -> SubmitResult:
        url, payload = self._create_target(request.model_ref)
        payload["input"] = build_input(request)
        if request.webhook_url:
            payload["webhook"] = request.webhook_url
            # docs/providers/replicate.md#webhooks: `start` and `completed` are all we act on; `output`/`logs` would
            # only add noise.
            payload["webhook_events_filter"] = ["start", "completed"]
        what = "replicate submit"
        body = await self.call("POST", url, what=what, creates_job=True, json=payload)
        prediction = self.parse(Prediction, body, what=what, creates_job=True)
        if not prediction.id:
            raise SubmitOutcomeUnknown(f"{what}: no prediction id in {body!r}")
        return SubmitResult(provider_job_id=prediction.id, raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        return parse_prediction(
            await self.call("GET", self._url(f"predictions/{provider_job_id}"), what="replicate status")
        )

    async def cancel(self, provider_job_id: str) -> None:
        await self.call("POST", self._url(f"predictions/{provider_job_id}/cancel"), what="replicate cancel")

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        """Standard Webhooks (docs/providers/replicate.md#webhooks), ±5 min tolerance built into the library."""
        if not self.config.webhook_secret:
            raise WebhookRejected("replicate webhook: no webhook secret configured")
        try:
            verifier = standardwebhooks.Webhook(self.config.webhook_secret)
            verifier.verify(body, dict(headers), json_parse=False)
        except Exception as exc:  # the library also raises ValueError/binascii.Error on garbled headers
            raise WebhookRejected(f"replicate webhook: {exc}") from exc
        try:
            data = json.loads(body)
            update = parse_prediction(data)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, RetryLater) as exc:
            raise WebhookRejected(f"replicate webhook: unreadable body: {exc}") from exc
        webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        # webhook-id stays the same across retries of one event; `start` and `completed` are different
        # events, and the status suffix keeps them apart even if an id were reused.
        return WebhookEvent(delivery_id=f"{webhook_id}:{data['status']}", update=update)

    async def health(self) -> HealthReport:
        """`GET /v1/account`: 200 healthy, 401 bad token, 402 an empty prepaid balance
        (docs/providers/replicate.md#limits-and-errors)."""
        if not self.configured():
            return HealthReport(healthy=False, detail="not configured")
        try:
            response = await self.client.get(self._url("account"))
        except httpx.HTTPError as exc:
            return HealthReport(healthy=False, detail=f"unreachable ({type(exc).__name__})")
        if response.status_code == 200:
            return HealthReport(healthy=True, detail="ok")
        if response.status_code in (401, 403):
            return HealthReport(healthy=False, detail="auth")
        if response.status_code == 402 or http.is_out_of_credit_text(response.text):
            return HealthReport(healthy=False, detail="out of credit", out_of_credit=True)
        return HealthReport(healthy=False, detail=f"HTTP {response.status_code}")
