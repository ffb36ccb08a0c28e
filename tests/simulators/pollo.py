"""A Pollo.ai platform simulator: per-model generation routes, task status, X-Webhook-* signed callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator

# Internal states to Pollo's generation status enum (docs/providers/pollo.md#status-values).
WIRE_STATUS = {"queued": "waiting", "running": "processing", "succeeded": "succeed", "failed": "failed"}


def sign(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The signature as we read docs/providers/pollo.md#webhooks: base64(HMAC-SHA256(key, "id.timestamp.body"));
    a `whsec_` key is base64."""
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    return base64.b64encode(
        hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()


class PolloSimulator(Simulator):
    """Routes per docs/providers/pollo.md#endpoints. `envelope = True` wraps answers as `{"code":"SUCCESS","data":{…}}`
    (docs/providers/pollo.md#endpoints)."""

    routes = [
        ("POST", r"/generation/[^/]+/[^/]+", "submit"),
        ("GET", r"/generation/[^/]+/status", "status"),
        ("GET", r"/files/[^/]+", "output"),
    ]
    # docs/providers/pollo.md#limits-and-errors: third-party code reports 403 with "Not enough credits" for an empty
    # account.
    out_of_credit_status = 403
    out_of_credit_body = {"code": "FORBIDDEN", "message": "Not enough credits, please recharge"}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("webhook_secret", "whsec_" + base64.b64encode(os.urandom(24)).decode())
        super().__init__(**kwargs)
        self.envelope = False

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/generation/{task_id}/status", self.status_route, methods=["GET"]),
                Route("/generation/{vendor}/{model}", self.create_route, methods=["POST"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    def sign_headers(self, msg_id: str, timestamp: int, body: bytes, corrupt: bool) -> dict[str, str]:
        assert self.webhook_secret is not None
        signature = sign("wrong-secret" if corrupt else self.webhook_secret, msg_id, str(timestamp), body)
        return {"X-Webhook-Id": msg_id, "X-Webhook-Timestamp": str(timestamp), "X-Webhook-Signature": signature}

    def _wrap(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"code": "SUCCESS", "message": "success", "data": body} if self.envelope else body

    def generation(self, job: Job) -> dict[str, Any]:
        stamp = datetime.now(UTC).isoformat()
        return {
            "id": f"gen-{job.id}",
            "status": WIRE_STATUS.get(job.state, "failed"),
            "failMsg": job.error if job.state in ("failed", "canceled") else None,
            "url": job.output if job.state == "succeeded" else None,
            "mediaType": "video",
            "createdDate": stamp,
            "updatedDate": stamp,
        }

    def wire(self, job: Job) -> dict[str, Any]:
        return {"taskId": job.id, "credit": 10, "generations": [self.generation(job)]}

    def on_transition(self, job: Job, previous: str) -> None:
        # docs/providers/pollo.md#webhooks: a callback when the task completes, carrying taskId and status
        # (succeed|failed).
        if job.state in ("succeeded", "failed"):
            body = {"taskId": job.id, "status": WIRE_STATUS[job.state], "generations": [self.generation(job)]}
            self.webhooks.send(job.webhook_url, WIRE_STATUS[job.state], json.dumps(body).encode())

    async def create_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"code": "UNAUTHORIZED", "message": "Invalid API key"}, status_code=401)
        if self.out_of_credit:
            return self.no_credit()
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"code": "BAD_REQUEST", "message": "invalid JSON"}, status_code=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("input"), dict):
            return JSONResponse({"code": "BAD_REQUEST", "message": "input is required"}, status_code=400)
        job = self.new_job(payload, payload.get("webhookUrl"), job_id=uuid.uuid4().hex[:24])
        job.extra["model"] = f"{request.path_params['vendor']}/{request.path_params['model']}"
        return JSONResponse(self._wrap({"taskId": job.id, "status": "waiting"}))

    async def status_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"code": "UNAUTHORIZED", "message": "Invalid API key"}, status_code=401)
        job = self.jobs.get(request.path_params["task_id"])
        if job is None:
            return JSONResponse({"code": "NOT_FOUND", "message": "Task not found"}, status_code=404)
        return JSONResponse(self._wrap(self.wire(job)))
