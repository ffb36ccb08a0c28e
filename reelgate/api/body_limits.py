"""Request body caps enforced before the body is read: a declared Content-Length over the cap is refused at
once, and a chunked body is cut off as soon as it passes the cap, so memory stays bounded."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_MiB = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive` while a route reads a chunked body. An HTTPException, so FastAPI's body parsing
    and the OpenAI-compatible routes pass it on as the 413 it is instead of "could not parse the body" (400)
    or an unexpected error (500); each API renders it in its own error shape."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, f"The request body exceeds {cap} bytes.")
        self.cap = cap


def cap_for(path: str, upload_cap: int) -> int:
    if path.startswith("/api/v1/uploads") or path.startswith("/v1/videos"):
        return upload_cap + _MiB  # multipart framing around the file
    if path.rstrip("/") == "/api/v1/videos":
        # OpenRouter's shape: up to two frame images as base64 data URLs inside the JSON (4/3 of their size).
        return 3 * upload_cap + _MiB
    if path.startswith("/webhooks/"):
        return 64 * _MiB  # RunPod may post a whole base64 video
    return _MiB


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, upload_cap: int) -> None:
        self.app = app
        self.upload_cap = upload_cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        cap = cap_for(path, self.upload_cap)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and (len(declared) > 18 or int(declared) > cap):
            await _refuse(send, cap, path)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise BodyTooLarge(cap)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, cap, path)


async def _refuse(send: Send, cap: int, path: str) -> None:
    """413 in the error shape of the API the path belongs to (OpenAI's on the /v1 routes, OpenRouter's on
    /api/v1/videos)."""
    message = f"The request body exceeds {cap} bytes."
    error: dict[str, object]
    if path.startswith("/api/v1/videos"):
        error = {"code": 413, "message": message, "metadata": {"reelgate_code": "payload_too_large"}}
    elif path.startswith("/v1/"):
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": "payload_too_large"}
    else:
        error = {"code": "payload_too_large", "message": message, "details": {"max_bytes": cap}}
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
