"""A RunPod serverless simulator: /{eid}/run, /status, /cancel, /health and unsigned completion webhooks; request
bodies capped as RunPod caps them, and a job's `image_url` fetched over HTTP as our worker fetches it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
import uuid
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator

# RunPod's status words for our internal states (docs/providers/runpod.md#status-values).
WIRE_STATUS = {
    "queued": "IN_QUEUE",
    "running": "IN_PROGRESS",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELLED",
    "timed_out": "TIMED_OUT",
}
TERMINAL = {"succeeded", "failed", "canceled", "timed_out"}
# docs/providers/runpod.md#limits-and-errors: request bodies of /run and /runsync.
BODY_LIMITS = {"run": 10_000_000, "runsync": 20_000_000}
# What examples/runpod_worker/handler.py accepts from `image_url`.
MAX_IMAGE_BYTES = 10 * 1024 * 1024


class RunPodSimulator(Simulator):
    """Routes per docs/providers/runpod.md#quirks. `output_mode` picks what a finished job returns: the LTX-2 contract's
    `{"video": base64}` ("base64"), a bare URL string ("url"), or `{"video_url": …}` ("video_url")."""

    routes = [
        ("POST", r"/[^/]+/run", "submit"),
        ("POST", r"/[^/]+/runsync", "runsync"),
        ("GET", r"/[^/]+/status/[^/]+", "status"),
        ("POST", r"/[^/]+/cancel/[^/]+", "cancel"),
        ("GET", r"/[^/]+/health", "health"),
        ("POST", r"/[^/]+/purge-queue", "purge"),
        ("GET", r"/files/[^/]+", "output"),
    ]
    # RunPod does not document its out-of-credit answer (docs/providers/runpod.md#limits-and-errors unverified); we use
    # 402 + a balance message.
    out_of_credit_body = {"error": "Insufficient balance: please add credits to your account"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_mode = "base64"
        self.workers = {"idle": 1, "running": 0}
        self._fetches: set[asyncio.Task[None]] = set()

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/{eid}/run", self.run_route, methods=["POST"]),
                Route("/{eid}/runsync", self.runsync_route, methods=["POST"]),
                Route("/{eid}/status/{job_id}", self.status_route, methods=["GET"]),
                Route("/{eid}/cancel/{job_id}", self.cancel_route, methods=["POST"]),
                Route("/{eid}/health", self.health_route, methods=["GET"]),
                Route("/{eid}/purge-queue", self.purge_route, methods=["POST"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    def wire(self, job: Job) -> dict[str, Any]:
        body: dict[str, Any] = {"id": job.id, "status": WIRE_STATUS[job.state], "delayTime": 12, "executionTime": 0}
        if job.state == "running" and job.progress is not None:
            # docs/providers/runpod.md#progress: progress_update() values show up as `output`
            body["output"] = job.progress
        elif job.state == "succeeded":
            body["output"] = job.output
            body["executionTime"] = 3391
        elif job.state in ("failed", "timed_out"):
            body["error"] = job.error or "job timed out"
        return body

    def default_output(self, job: Job) -> Any:
        url = self.output_url(job)
        if self.output_url_override or self.output_mode == "url":
            return url
        if self.output_mode == "video_url":
            return {"video_url": url}
        return {"video": base64.b64encode(self.video).decode("ascii")}

    def on_transition(self, job: Job, previous: str) -> None:
        # docs/providers/runpod.md#webhooks: only completion is posted, with the /status body and no signature.
        if job.state in TERMINAL:
            body = json.dumps(self.wire(job)).encode()
            self.webhooks.send(job.webhook_url, WIRE_STATUS[job.state], body)

    def time_out(self, job_id: str) -> Job:
        return self._move(job_id, "timed_out", error="execution timeout exceeded")

    def expire(self, job_id: str) -> None:
        """Forget a job, as RunPod does when its result TTL passes (docs/providers/runpod.md#status-values: /status then
        answers 404)."""
        with self.lock:
            self.jobs.pop(job_id, None)

    def _job(self, request: Request) -> Job | None:
        job = self.jobs.get(request.path_params["job_id"])
        if job is None or job.extra.get("endpoint") != request.path_params["eid"]:
            return None
        return job

    async def _create(self, request: Request, operation: str) -> Job | Response:
        if not self.authorized(request):
            return self.unauthorized()
        if self.out_of_credit:
            return self.no_credit()
        body = await request.body()
        if len(body) > BODY_LIMITS[operation]:
            # RunPod documents the caps but not its answer; 413 is HTTP's word for it.
            return JSONResponse({"error": "request body too large"}, status_code=413)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "invalid JSON"}, status_code=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("input"), dict):
            return JSONResponse({"error": "input is required"}, status_code=400)
        job = self.new_job(payload, payload.get("webhook"), job_id=f"{uuid.uuid4()}-u1")
        job.extra["endpoint"] = request.path_params["eid"]
        self._take_image(job, payload["input"])
        return job

    def _take_image(self, job: Job, job_input: dict[str, Any]) -> None:
        """The start image as the worker gets it: `image_base64` decoded, or `image_url` fetched (in the background,
        as a worker does once it picks the job up). `job.extra["image"]` holds the bytes; `image_ready` is set once
        they are there or the fetch failed (and with it the job, as the worker reports `{"error"}`)."""
        ready = job.extra["image_ready"] = threading.Event()
        if isinstance(job_input.get("image_base64"), str):
            try:
                job.extra["image"] = base64.b64decode(job_input["image_base64"], validate=True)
            except (binascii.Error, ValueError):
                pass
            ready.set()
        elif isinstance(job_input.get("image_url"), str):
            task = asyncio.get_running_loop().create_task(self._fetch_image(job, job_input["image_url"]))
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)
        else:
            ready.set()

    async def _fetch_image(self, job: Job, url: str) -> None:
        try:
            async with httpx.AsyncClient(timeout=30, follow_redirects=True) as client:
                response = await client.get(url)
            if response.status_code >= 400:
                raise ValueError(f"image_url answered {response.status_code}")
            if len(response.content) > MAX_IMAGE_BYTES:
                raise ValueError("image is larger than 10 MB")
            job.extra["image"] = response.content
            job.extra["image_content_type"] = response.headers.get("content-type")
        except (httpx.HTTPError, ValueError) as exc:
            job.extra["image_error"] = str(exc)
            if job.state not in TERMINAL:
                self.fail(job.id, error=f"image_url: {exc}")
        finally:
            job.extra["image_ready"].set()

    async def run_route(self, request: Request) -> Response:
        job = await self._create(request, "run")
        if isinstance(job, Response):
            return job
        return JSONResponse({"id": job.id, "status": "IN_QUEUE"})

    async def runsync_route(self, request: Request) -> Response:
        job = await self._create(request, "runsync")
        if isinstance(job, Response):
            return job
        self.complete(job.id)
        return JSONResponse(self.wire(job))

    async def status_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        job = self._job(request)
        if job is None:
            return JSONResponse({"error": "request does not exist"}, status_code=404)
        return JSONResponse(self.wire(job))

    async def cancel_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        job = self._job(request)
        if job is None:
            return JSONResponse({"error": "request does not exist"}, status_code=404)
        self.cancel_job(job.id)
        return JSONResponse({"id": job.id, "status": WIRE_STATUS[job.state]})

    async def health_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        states = [j.state for j in self.jobs.values()]
        jobs = {
            "completed": states.count("succeeded"),
            "failed": states.count("failed") + states.count("timed_out"),
            "inProgress": states.count("running"),
            "inQueue": states.count("queued"),
            "retried": 0,
        }
        return JSONResponse({"jobs": jobs, "workers": self.workers})

    async def purge_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        queued = [j.id for j in self.jobs.values() if j.state == "queued"]
        for job_id in queued:
            self.cancel_job(job_id)
        return JSONResponse({"removed": len(queued), "status": "completed"})
