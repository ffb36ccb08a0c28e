"""EdenAI adapter: v3 universal-ai async video jobs, polling, and the RSA-signed webhook scheme."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reelgate.domain.jobs import ProviderState
from reelgate.providers import http, transfer
from reelgate.providers.base import (
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

DEFAULT_BASE_URL = "https://api.edenai.run/v3"
MODEL_PREFIX = "video/generation_async/"
# Polling and webhook states (docs/providers/edenai.md#status-values, docs/providers/edenai.md#webhooks).
_STATES = {
    "processing": ProviderState.RUNNING,
    "pending": ProviderState.QUEUED,
    "success": ProviderState.SUCCEEDED,
    "finished": ProviderState.SUCCEEDED,
    "fail": ProviderState.FAILED,
    "failed": ProviderState.FAILED,
}
MAX_SEED = 2147483646  # the largest seed EdenAI takes (docs/providers/edenai.md#endpoints)


def _orjson_float(value: float) -> str:
    """A float as orjson writes it: Python's shortest repr, except that orjson spells exponent -5 out
    (`0.00001`, Python `1e-05`) and drops the exponent's leading zero (`1e-6`, Python `1e-06`); NaN and
    infinities become null."""
    if not math.isfinite(value):
        return "null"
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if not e or not exponent.startswith("-"):
        return text
    power = int(exponent)
    if power != -5:
        return f"{mantissa}e-{-power}"
    sign, digits = ("-", mantissa[1:]) if mantissa.startswith("-") else ("", mantissa)
    return f"{sign}0.{'0' * (-power - 1)}{digits.replace('.', '')}"


def _encode(value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = indent + "  "
        items = sorted(value.items())
        out.append("{")
        for i, (key, item) in enumerate(items):
            out.append(("," if i else "") + "\n" + inner + json.dumps(str(key), ensure_ascii=False) + ": ")
            _encode(item, inner, out)
        out.append("\n" + indent + "}")
    elif isinstance(value, list):
        if not value:
            out.append("[]")
            return
        inner = indent + "  "
        out.append("[")
        for i, item in enumerate(value):
            out.append(("," if i else "") + "\n" + inner)
            _encode(item, inner, out)
        out.append("\n" + indent + "]")
    elif isinstance(value, float):
        out.append(_orjson_float(value))
    else:
        out.append(json.dumps(value, ensure_ascii=False))


def canonical_json(obj: Any) -> bytes:
    """EdenAI's canonical form (docs/providers/edenai.md#webhooks): `orjson.dumps(obj, option=OPT_INDENT_2 |
    OPT_SORT_KEYS)`.

    Without floats below 1e-4 this equals `json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False,
    separators=(",", ": "))`; the two differ in small floats (Python `1e-05`/`1e-06`, orjson `0.00001`/`1e-6`)
    and NaN, so the encoder is written out here. orjson is not a runtime dependency; a test compares the
    output with it byte for byte.
    """
    out: list[str] = []
    _encode(obj, "", out)
    return "".join(out).encode("utf-8")


def signed_digest(body: bytes) -> bytes:
    """What EdenAI signs: the hex sha256 of the canonical JSON, as UTF-8 bytes (docs/providers/edenai.md#webhooks)."""
    return hashlib.sha256(canonical_json(json.loads(body))).hexdigest().encode("ascii")


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the EdenAI webhook key must be an RSA public key")
    return key


def build_input(request: JobRequest) -> dict[str, Any]:
    """The submit's `input` (docs/providers/edenai.md#endpoints); EdenAI has no negative prompt and no end
    frame, so those are not sent."""
    payload: dict[str, Any] = {
        "text": request.prompt,
        "duration": request.duration,
        "dimension": f"{request.width}x{request.height}",
        "seed": request.seed % (MAX_SEED + 1) if request.seed is not None else None,
        # A URL or an /v3/upload file id (docs/providers/edenai.md#endpoints); without a public URL a data URL is sent
        # (unverified).
        "file": transfer.image_ref(request.start_image),
    }
    return {k: v for k, v in payload.items() if v is not None}


class EdenError(WireModel):
    message: Text = None


class EdenOutput(WireModel):
    video: Text = None
    video_resource_url: Text = None


class EdenJob(WireModel):
    """A polled job (`public_id`, docs/providers/edenai.md#status-values) or a webhook body (`job_id`,
    docs/providers/edenai.md#webhooks): the same id."""

    public_id: Text = None
    job_id: Text = None
    id: Text = None
    status: Text = None
    error: Any = None
    output: Maybe[EdenOutput] = None

    def any_id(self) -> str | None:
        return self.public_id or self.job_id or self.id

    def error_message(self) -> str:
        if isinstance(self.error, Mapping):
            return str(EdenError.model_validate(self.error).message)
        return str(self.error or "failed")


def parse_job(body: Mapping[str, Any], job_id: str | None = None) -> ProviderUpdate:
    job = HTTPProvider.parse(EdenJob, body, what="edenai job")
    job_id = job.any_id() or job_id or ""
    status = job.status or ""
    state = _STATES.get(status)
    if not job_id or state is None:
        raise RetryLater(f"edenai: unreadable job (id={job_id!r}, status={status!r})")
    raw = dict(body)
    if state is ProviderState.FAILED:
        message = job.error_message()
        code = ProviderRejected.CONTENT_POLICY if http.is_content_policy_text(message) else ProviderRejected.FAILED
        return ProviderUpdate(job_id, state, error_code=code, error_message=message, raw=raw)
    if state is ProviderState.SUCCEEDED:
        output = job.output or EdenOutput()
        # Prefer `video_resource_url`; `video` may be a URL or base64 (docs/providers/edenai.md#output).
        url, video = output.video_resource_url, output.video
        if url:
            ref = OutputRef(url=url)
        elif video and video.startswith(("https://", "http://")):
            ref = OutputRef(url=video)
        elif video:
            ref = OutputRef(base64_data=video, content_type="video/mp4")
        else:
            return ProviderUpdate(
                job_id, ProviderState.FAILED, error_code=ProviderRejected.FAILED, error_message="no output", raw=raw
            )
        return ProviderUpdate(job_id, state, progress=100, output=ref, raw=_trim(raw))
    return ProviderUpdate(job_id, state, raw=raw)


def _trim(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep a base64 video out of the stored raw payload."""
    output = raw.get("output")
    if isinstance(output, Mapping) and isinstance(output.get("video"), str) and len(output["video"]) > 2048:
        raw = {**raw, "output": {**output, "video": f"<{len(output['video'])} characters>"}}
    return raw


class EdenAIProvider(HTTPProvider):
    name = "edenai"
    # docs/providers/edenai.md#endpoints: `file` is a URL or an uploaded file's id.
    image_transport = ImageTransport.URL
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        pem = config.extra.get("webhook_public_key")
        self._public_key = load_public_key(pem) if pem else None

    async def submit(self, request: JobRequest) -> SubmitResult:
        payload: dict[str, Any] = {
            "model": request.model_ref if request.model_ref.startswith("video/") else MODEL_PREFIX + request.model_ref,
            "input": build_input(request),
        }
        if request.webhook_url:
            payload["webhook_receiver"] = request.webhook_url
            payload["user_webhook_parameters"] = {"generation_id": request.generation_id}
        what = "edenai submit"
        body = await self.call("POST", "universal-ai/async", what=what, creates_job=True, json=payload)
        job_id = self.parse(EdenJob, body, what=what, creates_job=True).any_id()
        if not job_id:
            raise SubmitOutcomeUnknown(f"{what}: no public_id in {body!r}")
        return SubmitResult(provider_job_id=job_id, raw=body)

    async def status(self, provider_job_id: str, request: JobRequest | None = None) -> ProviderUpdate:
        body = await self.call("GET", f"universal-ai/async/{provider_job_id}", what="edenai status")
        return parse_job(body, provider_job_id)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """docs/providers/edenai.md#webhooks: RSA PKCS#1 v1.5 / SHA-256 over the hex digest of the canonical JSON; hex
        signature."""
        if self._public_key is None:
            raise WebhookRejected("edenai webhook: no public key configured (extra webhook_public_key)")
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            signature = bytes.fromhex(lower.get("x-edenai-signature", ""))
            digest = signed_digest(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"edenai webhook: unreadable signature or body: {exc}") from exc
        if not signature:
            raise WebhookRejected("edenai webhook: missing X-Edenai-Signature")
        try:
            self._public_key.verify(signature, digest, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise WebhookRejected("edenai webhook: signature mismatch") from exc

    async def verify_and_parse_webhook(
        self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> WebhookEvent:
        self.verify(headers, body)
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise WebhookRejected("edenai webhook: expected a JSON object")
            update = parse_job(data)
        except (json.JSONDecodeError, RetryLater) as exc:
            raise WebhookRejected(f"edenai webhook: unreadable body: {exc}") from exc
        # No timestamp and retries up to 3 times (docs/providers/edenai.md#webhooks): one delivery per job and outcome.
        return WebhookEvent(delivery_id=f"{update.provider_job_id}:{data.get('status')}", update=update)
