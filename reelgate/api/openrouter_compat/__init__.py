"""OpenRouter's video API (/api/v1/videos), so the official `openrouter` SDKs work unchanged."""

from __future__ import annotations

from fastapi import FastAPI

from .routes import router


def mount(app: FastAPI) -> None:
    app.include_router(router)
