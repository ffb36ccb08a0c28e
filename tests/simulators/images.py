"""A loopback image host: a PNG at /start.png and something that is not an image at /not-an-image.png, for
images given by URL (the SSRF guard allows it only through `fetch_allow_hosts`)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from tests.helpers import png_bytes


class Images:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/start.png":
            await Response(png_bytes(640, 360, color=(20, 160, 40)), media_type="image/png")(scope, receive, send)
        else:
            await Response(b"<html>nope</html>", media_type="image/png")(scope, receive, send)
