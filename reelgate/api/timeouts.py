"""A deadline for every JSON request, so a stalled dependency answers 503 instead of hanging the client."""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Media downloads may legitimately take minutes; they are streamed and bounded by the client instead.
_STREAMING_SUFFIXES = ("/content", "/thumbnail")


class RequestTimeoutMiddleware:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or self.seconds <= 0 or path.endswith(_STREAMING_SUFFIXES):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if started:
                raise
            body = json.dumps(
                {
                    "error": {
                        "code": "service_unavailable",
                        "details": {"timeout_seconds": self.seconds},
                        "message": "The server could not answer in time; try again.",
                    }
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", b"5")],
                }
            )
            await send({"type": "http.response.body", "body": body})
