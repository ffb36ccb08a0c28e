"""The OpenAI-compatible videos API (/v1/videos), so the official `openai` SDK works unchanged."""

from __future__ import annotations

from fastapi import FastAPI

from .routes import router


def mount(app: FastAPI) -> None:
    app.include_router(router)
