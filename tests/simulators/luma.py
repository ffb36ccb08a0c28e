"""A Luma Dream Machine simulator: video generations, polling, credits, and unsigned Generation callbacks."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator

WIRE_STATE = {"queued": "queued", "running": "dreaming", "succeeded": "completed", "failed": "failed"}
PREFIX = "/dream-machine/v1"


class LumaSimulator(Simulator):
    """Routes per docs/providers/luma.md#endpoints under /dream-machine/v1; callbacks on dreaming, completed and failed
    (docs/providers/luma.md#webhooks)."""

    routes = [
        ("POST", rf"{PREFIX}/generations(/video)?", "submit"),
        ("GET", rf"{PREFIX}/generations/[^/]+", "status"),
        ("DELETE", rf"{PREFIX}/generations/[^/]+", "delete"),
        ("GET", rf"{PREFIX}/credits", "credits"),
        ("GET", r"/files/[^/]+", "output"),
    ]
    # docs/providers/luma.md#limits-and-errors: the no-credit status is unverified; 402 with a balance message is our
    # guess.
    out_of_credit_body = {"detail": "Insufficient credits"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credit_balance = 1500.0

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{PREFIX}/generations/video", self.create_route, methods=["POST"]),
                Route(f"{PREFIX}/generations", self.create_route, methods=["POST"]),
                Route(f"{PREFIX}/generations/{{gen_id}}", self.get_route, methods=["GET"]),
                Route(f"{PREFIX}/generations/{{gen_id}}", self.delete_route, methods=["DELETE"]),
                Route(f"{PREFIX}/credits", self.credits_route, methods=["GET"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    def wire(self, job: Job) -> dict[str, Any]:
        done = job.state == "succeeded"
        return {
            "id": job.id,
            "generation_type": "video",
            "state": WIRE_STATE.get(job.state, "failed"),
            "failure_reason": job.error if job.state == "failed" else None,
            "created_at": job.extra["created_at"],
            "assets": {"video": job.output if done else None, "image": None, "progress_video": None},
            "model": job.body.get("model", "ray-2"),
            "request": {k: v for k, v in job.body.items() if k != "callback_url"},
        }

    def on_transition(self, job: Job, previous: str) -> None:
        if job.state in ("running", "succeeded", "failed"):
            self.webhooks.send(job.webhook_url, WIRE_STATE[job.state], json.dumps(self.wire(job)).encode())

    async def create_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"detail": "Invalid API key"}, 401)
        if self.out_of_credit:
            return self.no_credit()
        payload = await request.json()
        if not payload.get("prompt") and not payload.get("keyframes"):
            return JSONResponse({"detail": "prompt is required"}, 400)
        job = self.new_job(payload, payload.get("callback_url"), job_id=str(uuid.uuid4()))
        job.extra["created_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return JSONResponse(self.wire(job), 201)

    async def get_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"detail": "Invalid API key"}, 401)
        job = self.jobs.get(request.path_params["gen_id"])
        if job is None or job.extra.get("deleted"):
            return JSONResponse({"detail": "Generation not found"}, 404)
        return JSONResponse(self.wire(job))

    async def delete_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"detail": "Invalid API key"}, 401)
        job = self.jobs.get(request.path_params["gen_id"])
        if job is None:
            return JSONResponse({"detail": "Generation not found"}, 404)
        job.extra["deleted"] = True
        return Response(status_code=204)

    async def credits_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"detail": "Invalid API key"}, 401)
        return JSONResponse({"credit_balance": 0.0 if self.out_of_credit else self.credit_balance})
