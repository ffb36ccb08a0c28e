"""A route class that renders every error of its routes in another API's shape (OpenAI's, OpenRouter's), while
the rest of the app keeps reelgate's own."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def route_rendering_errors_with(render: Callable[[Exception], Response], name: str) -> type[APIRoute]:
    """An APIRoute subclass whose handler answers any exception with `render(exc)` (translated, not swallowed:
    `render` logs what it does not know)."""

    class ErrorShapeRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:  # noqa: BLE001 - translated into the API's error shape
                    return render(exc)

            return handle

    ErrorShapeRoute.__name__ = ErrorShapeRoute.__qualname__ = name
    return ErrorShapeRoute
