"""An upstream of the OpenAI Videos shape on 127.0.0.1 (aiohttp), no artificial delay:
POST /v1/videos (JSON or multipart) → queued video object; GET /v1/videos/{id} → completed, progress 100;
GET /v1/videos/{id}/content → the same 1 MiB video/mp4 body (a real MP4 of noise, so it is incompressible
and also passes reelgate's magic-byte and decode checks)."""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from aiohttp import web


def video(video_id: str, status: str, model: str = "sora-2", prompt: str = "") -> dict[str, object]:
    return {
        "id": video_id,
        "object": "video",
        "model": model,
        "status": status,
        "progress": 100 if status == "completed" else 0,
        "created_at": int(time.time()),
        "completed_at": int(time.time()) if status == "completed" else None,
        "expires_at": None,
        "seconds": "4",
        "size": "1280x720",
        "prompt": prompt,
        "remixed_from_video_id": None,
        "error": None,
    }


def build(content: bytes) -> web.Application:
    async def create(request: web.Request) -> web.Response:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            model, prompt = str(form.get("model", "sora-2")), str(form.get("prompt", ""))
        else:
            body = await request.json() if request.can_read_body else {}
            model, prompt = str(body.get("model", "sora-2")), str(body.get("prompt", ""))
        return web.json_response(video(f"video_{uuid.uuid4().hex}", "queued", model, prompt))

    async def retrieve(request: web.Request) -> web.Response:
        return web.json_response(video(request.match_info["vid"], "completed"))

    async def download(request: web.Request) -> web.Response:
        return web.Response(body=content, content_type="video/mp4")

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/videos", create)
    app.router.add_get("/v1/videos/{vid}", retrieve)
    app.router.add_get("/v1/videos/{vid}/content", download)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--content", required=True)
    args = parser.parse_args()
    web.run_app(build(Path(args.content).read_bytes()), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
