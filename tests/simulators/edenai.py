"""An EdenAI v3 simulator: universal-ai async video jobs, polling, and RSA-signed webhooks signed as EdenAI does."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator

WIRE_STATUS = {"queued": "processing", "running": "processing", "succeeded": "success", "failed": "fail"}
MODEL_PREFIX = "video/generation_async/"


def eden_canonical(obj: Any) -> bytes:
    """What EdenAI hashes (docs/providers/edenai.md#webhooks): orjson with OPT_INDENT_2 | OPT_SORT_KEYS, exactly as its
    docs do."""
    import orjson  # a test dependency: the simulator signs with the vendor's own serializer

    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def eden_sign(private_key: rsa.RSAPrivateKey, body: bytes) -> str:
    digest = hashlib.sha256(eden_canonical(json.loads(body))).hexdigest().encode()
    return private_key.sign(digest, padding.PKCS1v15(), hashes.SHA256()).hex()


def public_pem(private_key: rsa.RSAPrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


class EdenAISimulator(Simulator):
    """Routes per docs/providers/edenai.md#endpoints under /v3. Webhook bodies carry small floats (`cost`) and non-ASCII
    text on purpose: that is where json.dumps and orjson could disagree."""

    routes = [
        ("POST", r"/v3/universal-ai/async", "submit"),
        ("GET", r"/v3/universal-ai/async/[^/]+", "status"),
        ("GET", r"/files/[^/]+", "output"),
    ]
    # docs/providers/edenai.md#limits-and-errors: the out-of-credit status is unverified; 402 with a balance message is
    # our guess.
    out_of_credit_body = {"error": {"type": "insufficient_credits", "message": "Insufficient credits"}}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.base64_output = False

    @property
    def public_key_pem(self) -> str:
        return public_pem(self.private_key)

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v3/universal-ai/async", self.create_route, methods=["POST"]),
                Route("/v3/universal-ai/async/{job_id}", self.get_route, methods=["GET"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    def sign_headers(self, msg_id: str, timestamp: int, body: bytes, corrupt: bool) -> dict[str, str]:
        key = self.other_key if corrupt else self.private_key
        return {
            "User-Agent": "EdenAI/Ai-Features",
            "X-Edenai-Webhook": "true",
            "X-Edenai-Signature": eden_sign(key, body),
            "X-Edenai-Hash-Algorithm": "SHA256",
        }

    def _output(self, job: Job) -> dict[str, Any]:
        if self.base64_output:
            import base64

            return {"video": base64.b64encode(self.video).decode(), "usage": {"seconds": 6}}
        return {"video": job.output, "video_resource_url": job.output, "usage": {"seconds": 6.0}}

    def wire(self, job: Job) -> dict[str, Any]:
        provider, _, model = job.extra["model"].removeprefix(MODEL_PREFIX).partition("/")
        return {
            "public_id": job.id,
            "status": WIRE_STATUS.get(job.state, "fail"),
            "feature": "video",
            "subfeature": "generation_async",
            "provider": provider,
            "model": model,
            "created_at": job.extra["created_at"],
            "output": self._output(job) if job.state == "succeeded" else None,
            "error": {"message": job.error} if job.state == "failed" else None,
            "cost": 0.000012 if job.state == "succeeded" else 0.0,
        }

    def on_transition(self, job: Job, previous: str) -> None:
        if job.state not in ("succeeded", "failed"):
            return
        wire = self.wire(job)
        body = {
            "event": "async_job_completed",
            "job_id": job.id,
            "status": wire["status"],
            "feature": "video",
            "subfeature": "generation_async",
            "provider": wire["provider"],
            "model": wire["model"],
            "created_at": wire["created_at"],
            "finished_at": _now(),
            "output": wire["output"],
            "error": wire["error"],
            "cost": 1e-05,
            "user_parameters": job.body.get("user_webhook_parameters") or {},
            "note": "vidéo prête ✓",
        }
        self.webhooks.send(job.webhook_url, wire["status"], json.dumps(body, ensure_ascii=False).encode())

    async def create_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"error": {"type": "authentication", "message": "Invalid token"}}, 401)
        if self.out_of_credit:
            return self.no_credit()
        payload = await request.json()
        model = str(payload.get("model") or "")
        text = (payload.get("input") or {}).get("text")
        if not model.startswith(MODEL_PREFIX) or not text:
            return JSONResponse({"error": {"type": "validation", "message": "model and input.text required"}}, 422)
        job = self.new_job(payload, payload.get("webhook_receiver"), job_id=str(uuid.uuid4()))
        job.extra.update(model=model, created_at=_now())
        return JSONResponse({"public_id": job.id, "status": "processing", "model": model, "cost": 0.0})

    async def get_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"error": {"type": "authentication", "message": "Invalid token"}}, 401)
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"error": {"type": "not_found", "message": "Job not found"}}, 404)
        return JSONResponse(self.wire(job))
