"""fal.ai adapter: the queue API (submit, status, result, cancel) and Ed25519 webhooks verified with the JWKS."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from reelgate.domain.jobs import ProviderState
from reelgate.providers import http, transfer
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
)
from reelgate.providers.http_provider import HTTPProvider
from reelgate.providers.wire import Maybe, Text, WireModel

DEFAULT_BASE_URL = "https://queue.fal.run"
# docs/providers/fal.md#webhooks (partially unverified): the JWKS URL the public implementations use, a 24 h cache, ±300
# s leeway.
DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
JWKS_TTL_SECONDS = 24 * 3600
WEBHOOK_TOLERANCE_SECONDS = 300
# A forged webhook must not make us hammer the JWKS: refetch on an unknown key at most this often.
JWKS_MIN_REFRESH_SECONDS = 30.0
# Our job id is "<owner>/<alias>#<request_id>": status, result and cancel live under the app's path
# without its subpath (docs/providers/fal.md#status-values), and cancel gets no request to derive it from.
_SEP = "#"
# The webhook URL carries the app too, so a webhook can name the job exactly as submit stored it.
APP_QUERY = "fal_app"
_STATES = {"IN_QUEUE": ProviderState.QUEUED, "IN_PROGRESS": ProviderState.RUNNING}


def app_id(model_ref: str) -> str:
    """`fal-ai/kling-video/v1.6/pro/text-to-video` → `fal-ai/kling-video` (docs/providers/fal.md#status-values)."""
    parts = model_ref.strip("/").split("/")
    if len(parts) < 2:
        raise ProviderRejected(f"fal: bad model id {model_ref!r}", code=ProviderRejected.BAD_INPUT)
    return "/".join(parts[:2])


def build_input(request: JobRequest) -> dict[str, Any]:
    """docs/providers/fal.md#endpoints: inputs are per model; these are the common video names (kling, veo, wan, ltx on
    fal)."""
    image_key = "image_url"
    payload: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "duration": str(request.duration),  # kling takes "5" | "10"
        "aspect_ratio": request.aspect_ratio,
        "resolution": request.resolution,
        "seed": request.seed,
        image_key: transfer.image_ref(request.start_image),
        "tail_image_url": transfer.image_ref(request.end_image),
        "generate_audio": request.audio or None,
    }
    payload.update({k: v for k, v in request.options.items() if isinstance(k, str)})
    return {k: v for k, v in payload.items() if v is not None}


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class FalFile(WireModel):
    url: Text = None
    content_type: Text = None


class FalResult(WireModel):
    """A video app's output (docs/providers/fal.md#output): `{"video": {...}}`, or `{"videos": [...]}` or a bare
    `url` from some apps."""

    video: Maybe[FalFile] = None
    videos: Maybe[list[Maybe[FalFile]]] = None
    url: Text = None
    detail: Any = None

    def file(self) -> FalFile | None:
        if self.video is not None and self.video.url:
            return self.video
        if self.videos:
            return self.videos[0] if self.videos[0] and self.videos[0].url else None
        return FalFile(url=self.url) if self.url else None


class FalStatus(WireModel):
    """A queue status (docs/providers/fal.md#status-values); a failure is COMPLETED with `error`."""

    status: str = ""
    error: Any = None


class FalSubmitted(WireModel):
    request_id: Text = None


class FalWebhook(WireModel):
    """The callback body (docs/providers/fal.md#webhooks): `payload` is null with `payload_error` when the
    output was not JSON."""

    request_id: Text = None
    status: Text = None
    payload: Maybe[FalResult] = None
    error: Any = None
    payload_error: Any = None


class JWKSKey(WireModel):
    kty: Text = None
    crv: Text = None
    x: Text = None


class JWKS(WireModel):
    keys: Maybe[list[Maybe[JWKSKey]]] = None


def _failed(job_id: str, message: str, raw: Mapping[str, Any]) -> ProviderUpdate:
    code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.FAILED
    return ProviderUpdate(job_id, ProviderState.FAILED, error_code=code, error_message=message, raw=dict(raw))


def _succeeded(job_id: str, result: FalResult, raw: Mapping[str, Any]) -> ProviderUpdate:
    file = result.file()
    if file is None or not file.url:
        return _failed(job_id, "no video in the result", raw)
    content_type = result.video.content_type if result.video is not None else None
    output = OutputRef(url=file.url, content_type=content_type)
    return ProviderUpdate(job_id, ProviderState.SUCCEEDED, progress=100, output=output, raw=dict(raw))


class JWKSCache:
    """Ed25519 keys from the JWKS, cached for a TTL; an unknown signer triggers one (rate-limited) refetch."""

    def __init__(self, url: str, ttl: float = JWKS_TTL_SECONDS) -> None:
        self.url = url
        self.ttl = ttl
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at = float("-inf")
        # One fetch at a time: webhooks arriving together wait for it and then share its keys.
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.min_refresh = JWKS_MIN_REFRESH_SECONDS

    @staticmethod
    def parse(document: Any) -> list[Ed25519PublicKey]:
        keys = []
        jwks = JWKS.model_validate(document) if isinstance(document, Mapping) else JWKS()
        for jwk in jwks.keys or []:
            if jwk is None or jwk.kty != "OKP" or jwk.crv != "Ed25519" or not jwk.x:
                continue
            try:
                raw = base64.urlsafe_b64decode(jwk.x + "=" * (-len(jwk.x) % 4))
                keys.append(Ed25519PublicKey.from_public_bytes(raw))
            except (ValueError, binascii.Error):
                continue
        return keys

    async def _fetch(self) -> None:
        # Once a day or on a key rotation, with a short timeout, without blocking the event loop.
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            self._keys = self.parse(response.json())
        self._fetched_at = time.monotonic()
        self.fetches += 1

    async def keys(self, *, refresh: bool = False) -> list[Ed25519PublicKey]:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > self.ttl or (refresh and age >= self.min_refresh):
                try:
                    await self._fetch()
                except (httpx.HTTPError, ValueError) as exc:
                    if not self._keys:
                        raise WebhookRejected(f"fal webhook: cannot load the JWKS: {exc!r}") from exc
            return list(self._keys)

    def seed(self, keys: list[Ed25519PublicKey]) -> None:
        self._keys = list(keys)
        self._fetched_at = time.monotonic()


def webhook_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """docs/providers/fal.md#webhooks: the four lines fal signs."""
    return "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()


class FalProvider(HTTPProvider):
    name = "fal"
    # `image_url` takes a URL or a data URL; fal states no size limit for the latter.
    image_transport = ImageTransport.EITHER
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.jwks = JWKSCache(config.extra.get("jwks_url", DEFAULT_JWKS_URL))

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Key {api_key}"}

    def _split(self, provider_job_id: str) -> tuple[str, str]:
        app, sep, request_id = provider_job_id.rpartition(_SEP)
        if not sep:
            raise ProviderRejected(f"fal: job id without app: {provider_job_id!r}", code=ProviderRejected.NOT_FOUND)
        return app, request_id

    async def submit(self, request: JobRequest) -> SubmitResult:
        app = app_id(request.model_ref)
        params: dict[str, str] = {}
        if request.webhook_url:
            params["fal_webhook"] = _with_query(request.webhook_url, **{APP_QUERY: app})
        what = "fal submit"
        path = request.model_ref.strip("/")
        body = await self.call("POST", path, what=what, creates_job=True, json=build_input(request), params=params)
        submitted = self.parse(FalSubmitted, body, what=what, creates_job=True)
        if not submitted.request_id:
            raise SubmitOutcomeUnknown(f"{what}: no request_id in {body!r}")
        return SubmitResult(provider_job_id=f"{app}{_SEP}{submitted.request_id}", raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        app, request_id = self._split(provider_job_id)
        base = f"{app}/requests/{request_id}"
        body = await self.call("GET", f"{base}/status", what="fal status", params={"logs": "1"})
        status = self.parse(FalStatus, body, what="fal status")
        if status.status in _STATES:
            return ProviderUpdate(provider_job_id, _STATES[status.status], raw=body)
        if status.status != "COMPLETED":
            raise RetryLater(f"fal status: unknown status {status.status!r}")
        # There is no failed state: a failure is COMPLETED with `error` (docs/providers/fal.md#status-values).
        if status.error:
            return _failed(provider_job_id, str(status.error), body)
        try:
            result = await self.call("GET", base, what="fal result")
        except ProviderRejected as exc:
            # A failed run's result answers an HTTP error (docs/providers/fal.md#status-values).
            return _failed(provider_job_id, str(exc), body)
        output = self.parse(FalResult, result, what="fal result")
        return _succeeded(provider_job_id, output, {"status": body, "result": result})

    async def cancel(self, provider_job_id: str) -> None:
        app, request_id = self._split(provider_job_id)
        response = await self.send("PUT", f"{app}/requests/{request_id}/cancel", what="fal cancel")
        if response.status_code not in (400, 404, 409):  # already finished or unknown: nothing to stop
            http.raise_for_response(response, what="fal cancel")

    async def _verify(self, headers: Mapping[str, str], body: bytes) -> str:
        lower = {k.lower(): v for k, v in headers.items()}
        request_id = lower.get("x-fal-webhook-request-id", "")
        user_id = lower.get("x-fal-webhook-user-id", "")
        timestamp = lower.get("x-fal-webhook-timestamp", "")
        try:
            signature = bytes.fromhex(lower.get("x-fal-webhook-signature", ""))
            sent_at = int(timestamp)
        except ValueError as exc:
            raise WebhookRejected("fal webhook: bad signature or timestamp header") from exc
        if not (request_id and user_id and signature):
            raise WebhookRejected("fal webhook: missing X-Fal-Webhook-* headers")
        if abs(time.time() - sent_at) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookRejected("fal webhook: timestamp outside tolerance")
        message = webhook_message(request_id, user_id, timestamp, body)
        for refresh in (False, True):  # a rotated key: refetch the JWKS once and try again
            for key in await self.jwks.keys(refresh=refresh):
                try:
                    key.verify(signature, message)
                    return request_id
                except InvalidSignature:
                    continue
        raise WebhookRejected("fal webhook: no JWKS key matches the signature")

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        request_id = await self._verify(headers, body)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"fal webhook: unreadable body: {exc}") from exc
        try:
            hook = self.parse(FalWebhook, data, what="fal webhook")
        except RetryLater as exc:
            raise WebhookRejected(str(exc)) from exc
        app = query.get(APP_QUERY, "")
        job_id = f"{app}{_SEP}{hook.request_id or request_id}" if app else ""
        # `status` is OK or ERROR; `payload` is the output (docs/providers/fal.md#webhooks).
        if hook.status == "OK" and hook.payload is not None and hook.payload.model_dump(exclude_none=True):
            update = _succeeded(job_id, hook.payload, data)
        else:
            detail = hook.payload.detail if hook.payload is not None else None
            message = str(hook.error or hook.payload_error or detail or "failed")
            update = _failed(job_id, message, data)
        # Fires once per request, retried up to 10 times (docs/providers/fal.md#webhooks).
        return WebhookEvent(delivery_id=f"fal:{request_id}", update=update)

    async def health(self) -> HealthReport:
        return HealthReport(healthy=self.configured(), detail="ok" if self.configured() else "not configured")
