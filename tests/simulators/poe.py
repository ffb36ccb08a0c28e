"""A Poe API simulator: OpenAI-compatible chat completions for media and text bots, plus /v1/videos bots."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.openai_videos import OpenAIVideosSimulator, _error


class PoeSimulator(OpenAIVideosSimulator):
    """docs/providers/poe.md#endpoints: chat bots answer synchronously; a media bot's reply carries the video as a
    Markdown link.

    `media_bots` reply with `media_reply` (formatted with the file URL); other bots are text bots and reply
    with `text_reply` (formatted with the last user message). Every answer carries `usage` as Poe's does
    (docs/providers/poe.md#text-bots): here one token per whitespace-separated word, or `text_usage` when set.
    `text_error` (status, type, message) makes text bots answer with an error in Poe's shape."""

    routes = [
        *OpenAIVideosSimulator.routes,
        ("POST", r"/v1/chat/completions", "chat"),
        ("GET", r"/files/[^/]+", "output"),
    ]
    # Insufficient points: the status is unverified (docs/providers/poe.md#cancel-progress-webhooks); 402 with an
    # OpenAI-style body is our guess.
    out_of_credit_status = 402
    out_of_credit_body = {
        "error": {"message": "Insufficient points to run this bot", "type": "insufficient_credits", "code": None}
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.media_bots = {"Video-Generator-PRO"}
        self.media_reply = "Here is your video:\n\n[video.mp4]({url})\n"
        self.text_reply = "Cinematic dolly shot: {prompt}, golden hour light, shallow depth of field."
        self.chats: list[dict[str, Any]] = []
        self.text_usage: dict[str, int] | None = None
        self.text_error: tuple[int, str, str] | None = None

    def extra_routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.chat_route, methods=["POST"]),
            Route("/files/{name}", self.serve_file, methods=["GET"]),
        ]

    def chat_file_url(self, chat_id: str) -> str:
        return self.output_url_override or f"{self.url}/files/{chat_id}.mp4"

    async def chat_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return _error("Invalid API key", 401)
        if self.out_of_credit:
            return self.no_credit()
        body = await request.json()
        model = body.get("model")
        messages = body.get("messages") or []
        if not model or not messages:
            return _error("model and messages are required", 400)
        chat_id = f"chatcmpl-{uuid.uuid4().hex[:20]}"
        with self.lock:
            self.chats.append(body)
        prompt = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        if model in self.media_bots:
            content = self.media_reply.format(url=self.chat_file_url(chat_id))
        elif self.text_error is not None:
            status, type_, message = self.text_error
            return _error(message, status, type_)
        else:
            content = self.text_reply.format(prompt=prompt)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        usage = self.text_usage or {"prompt_tokens": prompt_tokens, "completion_tokens": len(content.split())}
        usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        return JSONResponse(
            {
                "id": chat_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": usage,
            }
        )
