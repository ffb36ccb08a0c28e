"""An OpenRouter video API simulator: submit, poll, content, models, and signed completion webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator

PREFIX = "/api/v1"
# docs/providers/openrouter.md#status-values
WIRE_STATE = {
    "queued": "pending",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "cancelled",
    "expired": "expired",
}
TERMINAL = {"completed", "failed", "cancelled", "expired"}
MODELS = [
    {
        "id": "google/veo-3.1",
        "canonical_slug": "google/veo-3.1",
        "name": "Google: Veo 3.1",
        "created": 1760000000,
        "supported_resolutions": ["720p", "1080p"],
        "supported_aspect_ratios": ["16:9", "9:16"],
        "supported_sizes": ["1280x720", "720x1280", "1920x1080", "1080x1920"],
        "supported_durations": [4, 6, 8],
        "supported_frame_images": ["first_frame", "last_frame"],
        "generate_audio": True,
        "seed": True,
        "creativity": None,
        "upscale_factor": None,
        "pricing_skus": {"per-video-second": "0.40"},
        "allowed_passthrough_parameters": [],
    }
]


def error(status: int, message: str) -> JSONResponse:
    """docs/providers/openrouter.md#errors"""
    return JSONResponse({"error": {"code": status, "message": message}}, status_code=status)


class OpenRouterSimulator(Simulator):
    """Routes per docs/providers/openrouter.md under /api/v1; a terminal job sends one signed webhook to its
    callback_url (docs/providers/openrouter.md#webhooks). `signed_urls` False leaves out `urls`, so the content
    endpoint is the only way to the video."""

    routes = [
        ("POST", rf"{PREFIX}/videos", "submit"),
        ("GET", rf"{PREFIX}/videos/models", "models"),
        ("GET", rf"{PREFIX}/videos/[^/]+", "status"),
        ("GET", rf"{PREFIX}/videos/[^/]+/content", "content"),
        ("GET", r"/files/[^/]+", "output"),
    ]
    out_of_credit_body = {"error": {"code": 402, "message": "Insufficient credits. Add more using /credits."}}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.signed_urls = True

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{PREFIX}/videos", self.create_route, methods=["POST"]),
                Route(f"{PREFIX}/videos/models", self.models_route, methods=["GET"]),
                Route(f"{PREFIX}/videos/{{job_id}}", self.get_route, methods=["GET"]),
                Route(f"{PREFIX}/videos/{{job_id}}/content", self.content_route, methods=["GET"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    def expire(self, job_id: str) -> Job:
        return self._move(job_id, "expired", error="The job expired before its output was downloaded.")

    def wire(self, job: Job) -> dict[str, Any]:
        status = WIRE_STATE.get(job.state, "failed")
        out: dict[str, Any] = {"id": job.id, "polling_url": f"{self.url}{PREFIX}/videos/{job.id}", "status": status}
        if status == "completed":
            out["generation_id"] = f"gen-{job.id}"
            out["unsigned_urls"] = [f"{self.url}{PREFIX}/videos/{job.id}/content?index=0"]
            if self.signed_urls:
                out["urls"] = [job.output]
                out["expires_at"] = int(time.time()) + 3600
            out["usage"] = {"cost": 0.4 * int(job.body.get("duration") or 8), "is_byok": False}
        elif status in TERMINAL and job.error:
            out["error"] = job.error
        return out

    def default_output(self, job: Job) -> Any:
        return self.output_url_override or f"{self.url}/files/{job.id}.mp4?signature={secrets.token_hex(8)}"

    def on_transition(self, job: Job, previous: str) -> None:
        status = WIRE_STATE.get(job.state, "failed")
        if status not in TERMINAL or not job.webhook_url:
            return
        data = {**self.wire(job), "model": job.body.get("model")}
        data.pop("polling_url", None)
        event = {"type": f"video.generation.{status}", "created_at": datetime.now(UTC).isoformat(), "data": data}
        self.webhooks.send(job.webhook_url, status, json.dumps(event).encode(), msg_id=f"{job.id}-{status}")

    def sign_headers(self, msg_id: str, timestamp: int, body: bytes, corrupt: bool) -> dict[str, str]:
        headers = {"X-OpenRouter-Idempotency-Key": msg_id}
        if self.webhook_secret:
            digest = hmac.new(self.webhook_secret.encode(), f"{timestamp},".encode() + body, hashlib.sha256)
            value = digest.hexdigest()
            if corrupt:
                value = ("0" if value[0] != "0" else "1") + value[1:]
            headers["X-OpenRouter-Signature"] = f"t={timestamp},v1={value}"
        return headers

    async def create_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return error(401, "No auth credentials found")
        if self.out_of_credit:
            return self.no_credit()
        payload = await request.json()
        if not isinstance(payload.get("model"), str) or not payload["model"]:
            return error(400, "model is required")
        if not payload.get("prompt") and not payload.get("frame_images"):
            return error(400, "prompt is required for this model")
        job_id = f"gen-vid-{int(time.time())}-{secrets.token_hex(10)}"
        job = self.new_job(payload, payload.get("callback_url"), job_id=job_id)
        return JSONResponse(self.wire(job), status_code=202)

    async def models_route(self, request: Request) -> Response:
        return JSONResponse({"data": MODELS})

    async def get_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return error(401, "No auth credentials found")
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return error(404, "Video generation job not found")
        return JSONResponse(self.wire(job))

    async def content_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return error(401, "No auth credentials found")
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return error(404, "Video generation job not found")
        if WIRE_STATE.get(job.state) != "completed":
            return error(409, "Video generation is not completed")
        if request.query_params.get("index", "0") != "0":
            return error(404, "No output at that index")
        if self.expire_outputs:
            return error(self.expire_outputs, "Output no longer available")
        return Response(self.video, media_type="video/mp4")
