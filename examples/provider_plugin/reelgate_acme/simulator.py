"""A loopback Acme Motion server: jobs finish after a short delay, then a signed callback is posted.

`python -m reelgate_acme.simulator --port 8601` runs it; tests start it the same way. A prompt containing
"[fail]" makes the job end in error. The video is a real one-second MP4, made with PyAV.
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reelgate_acme.adapter import signature

API_KEY = "acme-test-key"


def make_video() -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(12):
            container.mux(stream.encode(_frame(i)))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _frame(i: int) -> Any:
    """A flat frame whose brightness changes with `i` (YUV 4:2:0 planes filled directly)."""
    import av

    frame = av.VideoFrame(64, 64, "yuv420p")
    for plane, value in zip(frame.planes, (40 + i * 15, 128, 160), strict=True):
        plane.update(bytes([value]) * plane.buffer_size)
    return frame


class Acme:
    def __init__(self, port: int, webhook_secret: str, delay: float = 0.5) -> None:
        self.webhook_secret = webhook_secret
        self.delay = delay
        self.video = make_video()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), type("AcmeHandler", (Handler,), {"acme": self}))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def create(self, payload: dict[str, Any]) -> dict[str, Any]:
        job_id = "acme_" + secrets.token_hex(8)
        with self.lock:
            self.jobs[job_id] = {"id": job_id, "state": "pending", "prompt": str(payload.get("prompt", ""))}
        threading.Thread(target=self._finish, args=(job_id, payload.get("callback_url")), daemon=True).start()
        return self.view(job_id) or {}

    def view(self, job_id: str) -> dict[str, Any] | None:
        """A job as the API shows it (the prompt stays inside)."""
        with self.lock:
            job = self.jobs.get(job_id)
            return {k: v for k, v in job.items() if k != "prompt"} if job else None

    def _finish(self, job_id: str, callback: str | None) -> None:
        time.sleep(self.delay)
        with self.lock:
            job = self.jobs[job_id]
            if "[fail]" in job.pop("prompt"):
                job.update(state="error", error="Acme could not render this prompt")
            else:
                job.update(state="ready", progress=100, video_url=f"{self.url}/files/{job_id}.mp4")
            body = json.dumps(job).encode()
        if callback:
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "Acme-Signature": f"t={timestamp},v1={signature(self.webhook_secret, timestamp, body)}",
            }
            request = urllib.request.Request(callback, data=body, headers=headers, method="POST")  # noqa: S310
            try:
                urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - a loopback URL from the test
            except OSError:
                pass  # polling still finds the job


class Handler(BaseHTTPRequestHandler):
    """Acme's routes; `acme` is the server's state, set on a subclass made per server."""

    acme: Acme

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        return None

    def _answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._answer(401, {"error": "bad API key"})
            return False
        return True

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path != "/v1/videos":
            self._answer(404, {"error": "no such route"})
        elif self._authorized():
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            self._answer(201, self.acme.create(payload))

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.startswith("/files/"):
            self._answer(200, self.acme.video, "video/mp4")
        elif not self.path.startswith("/v1/videos/"):
            self._answer(404, {"error": "no such route"})
        elif self._authorized():
            answer = self.acme.view(self.path.rsplit("/", 1)[1])
            self._answer(404, {"error": "no such job"}) if answer is None else self._answer(200, answer)


def main() -> None:
    parser = argparse.ArgumentParser(description="A loopback Acme Motion server")
    parser.add_argument("--port", type=int, default=8601)
    parser.add_argument("--webhook-secret", default=None)
    args = parser.parse_args()
    acme = Acme(args.port, args.webhook_secret or secrets.token_hex(16))
    print(f"acme simulator on {acme.url}, API key {API_KEY}, webhook secret {acme.webhook_secret}", flush=True)
    acme.server.serve_forever()


if __name__ == "__main__":
    main()
