"""A Replicate API simulator: predictions by model or version, cancel, account, Standard Webhooks deliveries."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from typing import Any

import standardwebhooks
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Job, Simulator

# Internal states to the lifecycle words of docs/providers/replicate.md#status-values.
WIRE_STATUS = {
    "queued": "starting",
    "running": "processing",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "aborted": "aborted",
}
TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
# Returned as `version` for predictions made by model name (the SDK's pydantic model requires one).
MODEL_VERSION = "a" * 64


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def tqdm_line(percent: int) -> str:
    """A tqdm progress bar line like the ones Cog models print (docs/providers/replicate.md#progress)."""
    bar = "#" * (percent // 10)
    return f"{percent:3d}%|{bar:<10}| {percent}/100 [00:05<00:05,  9.50it/s]"


class ReplicateSimulator(Simulator):
    """Routes per docs/providers/replicate.md#endpoints; webhooks honour `webhook_events_filter` (`start`, `logs`,
    `completed`)."""

    routes = [
        ("POST", r"/v1/models/[^/]+/[^/]+/predictions", "submit"),
        ("POST", r"/v1/predictions", "submit"),
        ("GET", r"/v1/predictions/[^/]+", "status"),
        ("POST", r"/v1/predictions/[^/]+/cancel", "cancel"),
        ("GET", r"/v1/webhooks/default/secret", "secret"),
        ("GET", r"/v1/account", "account"),
        ("GET", r"/files/[^/]+", "output"),
    ]
    # The 402 body Replicate answers for an empty prepaid balance (docs/providers/replicate.md#limits-and-errors; the
    # status itself is unverified).
    out_of_credit_body = {
        "title": "Insufficient credit",
        "detail": "You have insufficient credit to run this model. Go to https://replicate.com/account/billing "
        "to purchase credit.",
        "status": 402,
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("webhook_secret", "whsec_" + base64.b64encode(os.urandom(24)).decode())
        super().__init__(**kwargs)

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models/{owner}/{name}/predictions", self.create_route, methods=["POST"]),
                Route("/v1/predictions", self.create_route, methods=["POST"]),
                Route("/v1/predictions/{job_id}", self.get_route, methods=["GET"]),
                Route("/v1/predictions/{job_id}/cancel", self.cancel_route, methods=["POST"]),
                Route("/v1/webhooks/default/secret", self.secret_route, methods=["GET"]),
                Route("/v1/account", self.account_route, methods=["GET"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
            ]
        )

    def sign_headers(self, msg_id: str, timestamp: int, body: bytes, corrupt: bool) -> dict[str, str]:
        # docs/providers/replicate.md#webhooks: sign exactly the bytes sent, with the standardwebhooks library.
        secret = "whsec_" + base64.b64encode(b"not-the-secret-at-all!").decode() if corrupt else self.webhook_secret
        signature = standardwebhooks.Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
        return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}

    def wire(self, job: Job) -> dict[str, Any]:
        logs = job.extra.get("logs")
        if logs is None and job.progress is not None:
            logs = "\n".join(tqdm_line(p) for p in sorted({0, job.progress}))
        prediction_url = f"{self.url}/v1/predictions/{job.id}"
        return {
            "id": job.id,
            "model": job.extra["model"],
            "version": job.extra["version"],
            "input": job.body.get("input", {}),
            "output": job.output if job.state == "succeeded" else None,
            "logs": logs or "",
            "error": job.error if job.state in ("failed", "aborted") else None,
            "status": WIRE_STATUS[job.state],
            "created_at": job.extra["created_at"],
            "started_at": job.extra.get("started_at"),
            "completed_at": job.extra.get("completed_at"),
            "data_removed": False,
            "metrics": {"predict_time": 1.5} if job.state == "succeeded" else {},
            "urls": {"get": prediction_url, "cancel": f"{prediction_url}/cancel", "web": f"{self.url}/p/{job.id}"},
        }

    def default_output(self, job: Job) -> Any:
        return self.output_url(job)

    def set_logs(self, job_id: str, logs: str) -> None:
        with self.lock:
            self.jobs[job_id].extra["logs"] = logs

    def abort(self, job_id: str, error: str | None = None) -> Job:
        """`aborted`: the deadline passed before the prediction started (docs/providers/replicate.md#status-values)."""
        return self._move(job_id, "aborted", error=error)

    def _event(self, job: Job, event: str) -> None:
        events = job.body.get("webhook_events_filter") or ["start", "output", "logs", "completed"]
        if event in events:
            self.webhooks.send(job.webhook_url, event, json.dumps(self.wire(job)).encode())

    def on_transition(self, job: Job, previous: str) -> None:
        if job.state == "running":
            job.extra.setdefault("started_at", _now())
            self._event(job, "logs")
        elif job.state in TERMINAL:
            job.extra["completed_at"] = _now()
            self._event(job, "completed")

    async def create_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        if self.out_of_credit:
            return self.no_credit()
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"detail": "invalid JSON", "status": 400}, status_code=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("input"), dict):
            return JSONResponse({"detail": "input is required", "status": 422}, status_code=422)
        owner, name = request.path_params.get("owner"), request.path_params.get("name")
        if owner is None and not payload.get("version"):
            return JSONResponse({"detail": "version is required", "status": 422}, status_code=422)
        job = self.new_job(payload, payload.get("webhook"))
        job.extra.update(
            model=f"{owner}/{name}" if owner else "sim/versioned",
            version=MODEL_VERSION if owner else str(payload["version"]).rpartition(":")[2],
            created_at=_now(),
        )
        self._event(job, "start")
        return JSONResponse(self.wire(job), status_code=201)

    async def get_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"detail": "Not found.", "status": 404}, status_code=404)
        return JSONResponse(self.wire(job))

    async def cancel_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"detail": "Not found.", "status": 404}, status_code=404)
        self.cancel_job(job.id)
        return JSONResponse(self.wire(job))

    async def secret_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        return JSONResponse({"key": self.webhook_secret})

    async def account_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        if self.out_of_credit:  # simulator choice: lets health checks see an empty balance
            return self.no_credit()
        return JSONResponse({"type": "user", "username": "simulator", "name": "Simulator", "github_url": None})
