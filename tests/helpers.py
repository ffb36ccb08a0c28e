"""Small helpers shared by tests: waiting for a generation, making images and checking the ledger."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import httpx
from PIL import Image

from reelgate.domain.jobs import is_terminal
from reelgate.services import ledger
from reelgate.services.context import ServiceContext


async def wait_for_terminal(
    client: httpx.AsyncClient, generation_id: str, headers: dict[str, str], *, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/api/v1/generations/{generation_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if is_terminal(body["status"]):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"generation {generation_id} still {body['status']} after {timeout}s")
        await asyncio.sleep(0.1)


def png_bytes(
    width: int = 640, height: int = 360, color: tuple[int, int, int] = (200, 40, 40), fmt: str = "PNG"
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt)
    return buffer.getvalue()


async def assert_ledger_ok(ctx: ServiceContext) -> None:
    async with ctx.db.snapshot() as session:
        problems = await ledger.check_ledger(session)
    assert problems == [], problems


async def credits(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, int]:
    response = await client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, int] = response.json()["credits"]
    return result
