"""A fal.ai queue simulator: submit, status, result, cancel, a JWKS, Ed25519-signed webhooks, optional TLS."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import AppServer, Job, Simulator, listening_socket

WIRE_STATUS = {"queued": "IN_QUEUE", "running": "IN_PROGRESS"}
USER_ID = "sim-user-1"


def jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), "use": "sig"}


def loopback_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (CA:true, so it can be its own trust anchor)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class TlsAppServer(AppServer):
    """AppServer over https with a throwaway loopback certificate (fal-client hard-codes https,
    docs/providers/fal.md#quirks)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self._dir = tempfile.TemporaryDirectory(prefix="fal-sim-tls-")
        self.cert_file, self.key_file = loopback_certificate(Path(self._dir.name))

    def start(self, timeout: float = 10.0) -> str:
        sock = listening_socket(self.host)
        config = uvicorn.Config(
            self.app,
            log_level="critical",
            lifespan="off",
            interface="asgi3",
            access_log=False,
            ws="none",
            ssl_certfile=str(self.cert_file),
            ssl_keyfile=str(self.key_file),
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("TLS simulator server did not start")
            time.sleep(0.01)
        self.url = f"https://{self.host}:{sock.getsockname()[1]}"
        return self.url

    def stop(self) -> None:
        super().stop()
        self._dir.cleanup()


class FalSimulator(Simulator):
    """Routes per docs/providers/fal.md#endpoints. `rotate()` starts signing with a new key; `serve_old_keys` keeps old
    ones in the JWKS."""

    routes = [
        ("GET", r"/\.well-known/jwks\.json", "jwks"),
        ("GET", r"/[^/]+/[^/]+/requests/[^/]+/status", "status"),
        ("PUT", r"/[^/]+/[^/]+/requests/[^/]+/cancel", "cancel"),
        ("GET", r"/[^/]+/[^/]+/requests/[^/]+", "result"),
        ("GET", r"/files/[^/]+", "output"),
        ("POST", r"/.+", "submit"),
    ]
    # docs/providers/fal.md#limits-and-errors: user reports of an exhausted balance.
    out_of_credit_status = 403
    out_of_credit_body = {
        "detail": "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing"
    }

    def __init__(self, *, tls: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keys = [Ed25519PrivateKey.generate()]
        self.serve_old_keys = True
        if tls:
            self.server = TlsAppServer(self._asgi)
            self.webhooks.server = self.server

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self.keys[-1]

    def rotate(self) -> Ed25519PrivateKey:
        self.keys.append(Ed25519PrivateKey.generate())
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        keys = self.keys if self.serve_old_keys else self.keys[-1:]
        return {"keys": [jwk(k) for k in keys]}

    def authorized(self, request: Request) -> bool:
        return self.api_key is None or request.headers.get("authorization", "") == f"Key {self.api_key}"

    def build_app(self) -> Starlette:
        base = "/{owner}/{alias}/requests/{request_id}"
        return Starlette(
            routes=[
                Route("/.well-known/jwks.json", self.jwks_route, methods=["GET"]),
                Route("/files/{name}", self.serve_file, methods=["GET"]),
                Route(base + "/status", self.status_route, methods=["GET"]),
                Route(base + "/cancel", self.cancel_route, methods=["PUT"]),
                Route(base, self.result_route, methods=["GET"]),
                Route("/{app:path}", self.submit_route, methods=["POST"]),
            ]
        )

    def sign_headers(self, msg_id: str, timestamp: int, body: bytes, corrupt: bool) -> dict[str, str]:
        # docs/providers/fal.md#webhooks: "\n".join([request_id, user_id, timestamp, sha256(body).hex()]), Ed25519, hex
        # signature.
        request_id = json.loads(body).get("request_id", msg_id)
        message = "\n".join([request_id, USER_ID, str(timestamp), hashlib.sha256(body).hexdigest()]).encode()
        key = Ed25519PrivateKey.generate() if corrupt else self.signing_key
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": USER_ID,
            "X-Fal-Webhook-Timestamp": str(timestamp),
            "X-Fal-Webhook-Signature": key.sign(message).hex(),
        }

    def _urls(self, job: Job) -> dict[str, str]:
        base = f"{self.url}/{job.extra['app']}/requests/{job.id}"
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    def result(self, job: Job) -> dict[str, Any]:
        return {"video": {"url": job.output, "content_type": "video/mp4", "file_name": "out.mp4", "file_size": 42}}

    def wire(self, job: Job) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": job.id, **self._urls(job)}
        if job.state == "queued":
            return {**body, "status": "IN_QUEUE", "queue_position": 0}
        logs = [{"timestamp": "2026-11-21T00:00:00Z", "level": "INFO", "source": "user", "message": "step"}]
        if job.state == "running":
            return {**body, "status": "IN_PROGRESS", "logs": logs}
        body.update(status="COMPLETED", logs=logs, metrics={"inference_time": 1.5})
        if job.state in ("failed", "canceled"):
            body.update(error=job.error or "Request was cancelled", error_type="runner_error")
        return body

    def on_transition(self, job: Job, previous: str) -> None:
        if job.state not in ("succeeded", "failed"):
            return
        ok = job.state == "succeeded"
        body = {
            "request_id": job.id,
            "gateway_request_id": job.id,
            "status": "OK" if ok else "ERROR",
            "payload": self.result(job) if ok else {"detail": [{"msg": job.error, "type": "runner_error"}]},
        }
        if not ok:
            body["error"] = f"Invalid status code: 422 ({job.error})"
        self.webhooks.send(job.webhook_url, body["status"], json.dumps(body).encode())

    async def jwks_route(self, request: Request) -> Response:
        return JSONResponse(self.jwks())

    async def submit_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"detail": "Unauthorized"}, 401)
        if self.out_of_credit:
            return self.no_credit()
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"detail": "invalid JSON"}, 422)
        app = request.path_params["app"]
        if app.count("/") < 1 or not payload.get("prompt"):
            return JSONResponse({"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}, 422)
        job = self.new_job(payload, request.query_params.get("fal_webhook"), job_id=str(uuid.uuid4()))
        job.extra.update(app="/".join(app.split("/")[:2]), endpoint=app)
        return JSONResponse({**self._urls(job), "request_id": job.id, "gateway_request_id": job.id})

    def _job(self, request: Request) -> Job | None:
        job = self.jobs.get(request.path_params["request_id"])
        app = f"{request.path_params['owner']}/{request.path_params['alias']}"
        return job if job is not None and job.extra["app"] == app else None

    async def status_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"detail": "Unauthorized"}, 401)
        job = self._job(request)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        return JSONResponse(self.wire(job), 200 if job.state != "queued" else 202)

    async def result_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"detail": "Unauthorized"}, 401)
        job = self._job(request)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        if job.state in ("queued", "running"):
            return JSONResponse({"detail": "Request is still in progress"}, 400)
        if job.state != "succeeded":
            return JSONResponse({"detail": [{"msg": job.error, "type": "runner_error"}]}, 422)
        return JSONResponse(self.result(job))

    async def cancel_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return JSONResponse({"detail": "Unauthorized"}, 401)
        job = self._job(request)
        if job is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        if job.state in ("succeeded", "failed", "canceled"):
            return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
        self._move(job.id, "canceled", error="Request was cancelled")
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)
