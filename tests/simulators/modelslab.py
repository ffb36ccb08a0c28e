"""A ModelsLab simulator: v6 text2video/ultra/img2video, v7 video-fusion, fetch, queue limit, unsigned webhooks."""

from __future__ import annotations

import itertools
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator

# docs/providers/modelslab.md#limits-and-errors: the per-account limit on queued requests (pay-as-you-go).
QUEUE_LIMIT = 5


class ModelsLabSimulator(Simulator):
    """Routes per docs/providers/modelslab.md#endpoints under /api. The key is checked in the JSON body
    (docs/providers/modelslab.md#authentication), never in a header."""

    routes = [
        ("POST", r"/api/v6/video/(text2video|text2video_ultra|img2video)", "submit"),
        ("POST", r"/api/v7/video-fusion/(text|image)-to-video", "submit"),
        ("POST", r"/api/v6/video/fetch/[^/]+", "status"),
        ("GET", r"/files/[^/]+", "output"),
    ]
    out_of_credit_body = {"status": "error", "message": "Insufficient credits. Please top up your wallet."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queue_limit = QUEUE_LIMIT
        self.eta = 12
        self._ids = itertools.count(90_000_001)
        # docs/providers/modelslab.md#limits-and-errors (unverified): some errors come back as HTTP 200 with `status:
        # error`.
        self.soft_errors = False

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v6/video/fetch/{job_id}", self.fetch_route, methods=["POST"]),
                Route("/api/v6/video/{endpoint}", self.create_route, methods=["POST"]),
                Route("/api/v7/video-fusion/{endpoint}", self.create_route, methods=["POST"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    def _error(self, message: str, status: int, **extra: Any) -> Response:
        return JSONResponse({"status": "error", "message": message, **extra}, 200 if self.soft_errors else status)

    def wire(self, job: Job) -> dict[str, Any]:
        url = self.output_url(job)
        if job.state == "succeeded":
            return {
                "status": "success",
                "id": int(job.id),
                "output": [job.output],
                "proxy_links": [job.output],
                "generationTime": 41.2,
                "meta": {"model_id": job.body.get("model_id"), "prompt": job.body.get("prompt")},
            }
        if job.state in ("failed", "canceled"):
            return {"status": "error", "id": int(job.id), "message": job.error or "canceled"}
        return {
            "status": "processing",
            "id": int(job.id),
            "eta": self.eta,
            "message": "Your request is being processed",
            "future_links": [url],
            "fetch_result": f"{self.url}/api/v6/video/fetch/{job.id}",
            "tip": "Use the fetch endpoint to get the result",
        }

    def on_transition(self, job: Job, previous: str) -> None:
        # docs/providers/modelslab.md#webhooks: a webhook on success or failure, best effort, no signature.
        track = job.body.get("track_id")
        if job.state == "succeeded":
            body = {**self.wire(job), "track_id": track}
        elif job.state == "failed":
            body = {"status": "failed", "id": int(job.id), "message": job.error, "track_id": track}
        else:
            return
        self.webhooks.send(job.webhook_url, body["status"], json.dumps(body).encode())

    def _active(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state in ("queued", "running"))

    async def create_route(self, request: Request) -> Response:
        try:
            payload = await request.json()
        except ValueError:
            return self._error("invalid JSON", 400)
        if self.api_key is not None and payload.get("key") != self.api_key:
            return self._error("Invalid API key", 401)
        if self.out_of_credit:
            return JSONResponse(self.out_of_credit_body, 200 if self.soft_errors else 402)
        if self._active() >= self.queue_limit:
            message = f"Rate limit exceeded. Maximum {self.queue_limit} queued requests allowed."
            return self._error(message, 429, retry_after=30)
        if not payload.get("prompt") or not payload.get("model_id"):
            return self._error("prompt and model_id are required", 400)
        endpoint = request.path_params["endpoint"]
        if endpoint in ("img2video", "image-to-video") and not payload.get("init_image"):
            return self._error("init_image is required", 400)
        job = self.new_job(payload, payload.get("webhook"), job_id=str(next(self._ids)))
        job.extra.update(path=request.url.path)
        return JSONResponse(self.wire(job))

    async def fetch_route(self, request: Request) -> Response:
        payload = await request.json()
        if self.api_key is not None and payload.get("key") != self.api_key:
            return self._error("Invalid API key", 401)
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return self._error("Request not found", 404)
        return JSONResponse(self.wire(job))
