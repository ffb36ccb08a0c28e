"""An OpenAI Videos API simulator (OpenAI, LiteLLM, new-api, Poe): multipart create, polling, /content."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator

# Internal states to docs/providers/openai-videos.md#status-values's status words.
WIRE_STATUS = {"queued": "queued", "running": "in_progress", "succeeded": "completed", "failed": "failed"}
# docs/providers/openai-videos.md#endpoints: the SDK's poll helper sleeps for this header; tests want it short.
POLL_AFTER_MS = "20"


def _error(message: str, status: int, type_: str = "invalid_request_error", code: str | None = None) -> Response:
    return JSONResponse({"error": {"message": message, "type": type_, "param": None, "code": code}}, status)


class OpenAIVideosSimulator(Simulator):
    """Routes per docs/providers/openai-videos.md#endpoints, under /v1. Canceled jobs (after DELETE) are reported as 404
    like a deleted video."""

    routes = [
        ("POST", r"/v1/videos", "submit"),
        ("GET", r"/v1/videos/[^/]+", "status"),
        ("GET", r"/v1/videos/[^/]+/content", "content"),
        ("DELETE", r"/v1/videos/[^/]+", "delete"),
        ("GET", r"/v1/models", "models"),
    ]
    # docs/providers/openai-videos.md#limits-and-errors: billing exhaustion is a 429 with type insufficient_quota,
    # distinguished from rate limits.
    out_of_credit_status = 429
    out_of_credit_body = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }

    def extra_routes(self) -> list[Route]:
        return []

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/videos", self.create_route, methods=["POST"]),
                Route("/v1/videos/{video_id}", self.get_route, methods=["GET"]),
                Route("/v1/videos/{video_id}", self.delete_route, methods=["DELETE"]),
                Route("/v1/videos/{video_id}/content", self.content_route, methods=["GET"]),
                Route("/v1/models", self.models_route, methods=["GET"]),
                *self.extra_routes(),
            ]
        )

    def wire(self, job: Job) -> dict[str, Any]:
        body = job.extra["fields"]
        progress = {"queued": 0, "succeeded": 100}.get(job.state, job.progress or 0)
        video: dict[str, Any] = {
            "id": job.id,
            "object": "video",
            "model": body.get("model", "sora-2"),
            "status": WIRE_STATUS.get(job.state, "failed"),
            "progress": progress,
            "created_at": job.extra["created_at"],
            "completed_at": job.extra.get("completed_at"),
            "expires_at": None,
            "prompt": body.get("prompt"),
            "remixed_from_video_id": None,
            "seconds": str(body.get("seconds", "4")),
            "size": body.get("size", "720x1280"),
            "error": {"code": "generation_failed", "message": job.error} if job.state == "failed" else None,
        }
        return video

    def on_transition(self, job: Job, previous: str) -> None:
        if job.state in ("succeeded", "failed"):
            job.extra["completed_at"] = int(time.time())

    def _json(self, body: Any, status: int = 200) -> Response:
        return JSONResponse(body, status, headers={"openai-poll-after-ms": POLL_AFTER_MS})

    async def create_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return _error("Incorrect API key provided", 401, code="invalid_api_key")
        if self.out_of_credit:
            return self.no_credit()
        fields: dict[str, Any] = {}
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form()
            for key, value in form.multi_items():
                if isinstance(value, str):
                    fields[key] = value
                else:
                    fields[key] = {"filename": value.filename, "size": len(await value.read())}
        else:  # Poe also takes JSON with a base64 `input_image` (docs/providers/poe.md#endpoints)
            fields = await request.json()
        if not fields.get("prompt"):
            return _error("Missing required parameter: 'prompt'.", 400)
        job = self.new_job(fields, None, job_id=f"video_{uuid.uuid4().hex[:24]}")
        job.extra.update(fields=fields, created_at=int(time.time()), content_type=request.headers.get("content-type"))
        return self._json(self.wire(job))

    async def get_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return _error("Incorrect API key provided", 401, code="invalid_api_key")
        job = self.jobs.get(request.path_params["video_id"])
        if job is None or job.state == "canceled":
            return _error("Video not found", 404)
        return self._json(self.wire(job))

    async def delete_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return _error("Incorrect API key provided", 401, code="invalid_api_key")
        job = self.jobs.get(request.path_params["video_id"])
        if job is None or job.state == "canceled":
            return _error("Video not found", 404)
        self.cancel_job(job.id)
        return self._json({"id": job.id, "deleted": True, "object": "video.deleted"})

    async def content_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return _error("Incorrect API key provided", 401, code="invalid_api_key")
        job = self.jobs.get(request.path_params["video_id"])
        if job is None or job.state != "succeeded":
            return _error("Video is not ready", 404)
        if self.expire_outputs:
            return _error("Video content expired", self.expire_outputs)
        return Response(self.video, media_type="video/mp4")

    async def models_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return _error("Incorrect API key provided", 401, code="invalid_api_key")
        return self._json({"object": "list", "data": [{"id": "sora-2", "object": "model", "owned_by": "sim"}]})
