"""A Runway API simulator: text_to_video, image_to_video, task polling and DELETE, version header enforced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator

WIRE_STATUS = {
    "queued": "PENDING",
    "throttled": "THROTTLED",
    "running": "RUNNING",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "canceled": "CANCELLED",
}
API_VERSION = "2024-11-06"


class RunwaySimulator(Simulator):
    """Routes per docs/providers/runway.md#endpoints. A missing or wrong `X-Runway-Version` is a 400, as the real API
    answers."""

    routes = [
        ("POST", r"/v1/(text|image)_to_video", "submit"),
        ("GET", r"/v1/tasks/[^/]+", "status"),
        ("DELETE", r"/v1/tasks/[^/]+", "cancel"),
        ("GET", r"/files/[^/]+", "output"),
    ]
    # docs/providers/runway.md#limits-and-errors: out of credits is unverified (a third-party skill claims 402).
    out_of_credit_body = {"error": "You do not have enough credits to run this task."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failure_code = "INTERNAL.BAD_OUTPUT.CODE01"

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/text_to_video", self.create_route, methods=["POST"]),
                Route("/v1/image_to_video", self.create_route, methods=["POST"]),
                Route("/v1/tasks/{task_id}", self.get_route, methods=["GET"]),
                Route("/v1/tasks/{task_id}", self.delete_route, methods=["DELETE"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    def throttle(self, job_id: str) -> Job:
        return self._move(job_id, "throttled")

    def wire(self, job: Job) -> dict[str, Any]:
        body: dict[str, Any] = {"id": job.id, "status": WIRE_STATUS[job.state], "createdAt": job.extra["created_at"]}
        if job.state == "running":
            body["progress"] = (job.progress or 0) / 100
        elif job.state == "succeeded":
            body["output"] = [job.output]
        elif job.state == "failed":
            body.update(failure=job.error, failureCode=self.failure_code)
        return body

    def _check(self, request: Request) -> Response | None:
        if not self.authorized(request):
            return JSONResponse({"error": "Invalid API key"}, 401)
        if request.headers.get("x-runway-version") != API_VERSION:
            return JSONResponse({"error": "X-Runway-Version header is required and must be 2024-11-06"}, 400)
        return None

    async def create_route(self, request: Request) -> Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        if self.out_of_credit:
            return self.no_credit()
        payload = await request.json()
        image_route = request.url.path.endswith("image_to_video")
        if not payload.get("model") or not payload.get("ratio") or (image_route and not payload.get("promptImage")):
            return JSONResponse({"error": "Validation of body failed", "issues": ["model, ratio required"]}, 400)
        job = self.new_job(payload, None, job_id=str(uuid.uuid4()))
        job.extra.update(created_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"), route=request.url.path)
        return JSONResponse({"id": job.id})

    async def get_route(self, request: Request) -> Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        job = self.jobs.get(request.path_params["task_id"])
        if job is None or job.extra.get("deleted"):
            return JSONResponse({"error": "Task not found"}, 404)
        return JSONResponse(self.wire(job))

    async def delete_route(self, request: Request) -> Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        job = self.jobs.get(request.path_params["task_id"])
        if job is None or job.extra.get("deleted"):
            return JSONResponse({"error": "Task not found"}, 404)
        if job.state in ("queued", "throttled", "running"):
            self.cancel_job(job.id)
        else:
            job.extra["deleted"] = True
        return Response(status_code=204)
