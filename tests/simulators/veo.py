"""A Gemini API (Veo) simulator: predictLongRunning operations, operation polling and file downloads."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator


def _google_error(code: int, status: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, code)


class VeoSimulator(Simulator):
    """Routes per docs/providers/veo.md#endpoints. `filtered` makes finished operations return no samples and a RAI
    reason;
    `inline` returns `encodedVideo` instead of a file URI."""

    # The API answers under v1beta (what docs/providers/veo.md documents) and v1 (google-genai 3.x polls there).
    routes = [
        ("POST", r"/v1(beta)?/models/[^/]+:predictLongRunning", "submit"),
        ("GET", r"/v1(beta)?/models/[^/]+/operations/[^/]+", "status"),
        ("GET", r"/v1(beta)?/files/[^/]+:download", "download"),
    ]
    # docs/providers/veo.md#limits-and-errors: quota errors are 429 RESOURCE_EXHAUSTED (unverified for Veo itself).
    out_of_credit_status = 429
    out_of_credit_body = {
        "error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED"}
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filtered = False
        self.inline = False

    def authorized(self, request: Request) -> bool:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        return self.api_key is None or key == self.api_key

    def build_app(self) -> Starlette:
        routes = []
        for version in ("v1beta", "v1"):
            routes += [
                Route(f"/{version}/models/{{model}}:predictLongRunning", self.create_route, methods=["POST"]),
                Route(f"/{version}/models/{{model}}/operations/{{op_id}}", self.get_route, methods=["GET"]),
                Route(f"/{version}/files/{{file_id}}:download", self.download_route, methods=["GET"]),
            ]
        return Starlette(routes=routes)

    def wire(self, job: Job) -> dict[str, Any]:
        body: dict[str, Any] = {"name": job.extra["name"]}
        if job.state in ("queued", "running"):
            return {**body, "done": False, "metadata": {}}
        body["done"] = True
        if job.state != "succeeded":
            body["error"] = {"code": 13, "message": job.error or "canceled", "status": "INTERNAL"}
        elif self.filtered:
            body["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                "generateVideoResponse": {
                    "raiMediaFilteredCount": 1,
                    "raiMediaFilteredReasons": ["The prompt was blocked by our safety filters."],
                },
            }
        else:
            video = (
                {"encodedVideo": base64.b64encode(self.video).decode(), "encoding": "video/mp4"}
                if self.inline
                # docs/providers/veo.md#endpoints: the URI's host is never used by the SDK; only the lowercase-alnum id
                # matters.
                else {"uri": f"https://x/v1beta/files/{job.extra['file_id']}:download?alt=media"}
            )
            body["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                "generateVideoResponse": {"generatedSamples": [{"video": video}]},
            }
        return body

    async def create_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return _google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        if self.out_of_credit:
            return self.no_credit()
        payload = await request.json()
        instances = payload.get("instances") or []
        if not instances or not instances[0].get("prompt"):
            return _google_error(400, "INVALID_ARGUMENT", "instances[0].prompt is required")
        if "seed" in (payload.get("parameters") or {}):
            return _google_error(400, "INVALID_ARGUMENT", "seed is not supported in the Gemini API")
        model = request.path_params["model"]
        op_id = uuid.uuid4().hex[:12]
        job = self.new_job(payload, None, job_id=op_id)
        job.extra.update(name=f"models/{model}/operations/{op_id}", file_id=uuid.uuid4().hex[:16], model=model)
        return JSONResponse(self.wire(job))

    async def get_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return _google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        job = self.jobs.get(request.path_params["op_id"])
        if job is None or job.extra["model"] != request.path_params["model"]:
            return _google_error(404, "NOT_FOUND", "Operation not found")
        return JSONResponse(self.wire(job))

    async def download_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return _google_error(403, "PERMISSION_DENIED", "Missing API key")
        file_id = request.path_params["file_id"]
        if not any(j.extra.get("file_id") == file_id and j.state == "succeeded" for j in self.jobs.values()):
            return _google_error(404, "NOT_FOUND", "File not found")
        if self.expire_outputs:
            return _google_error(self.expire_outputs, "NOT_FOUND", "File expired")
        return Response(self.video, media_type="video/mp4")
