"""Small helpers shared by tests: waiting for a generation, making images and checking the ledger."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from PIL import Image

from reelgate.db.queries import generations, users
from reelgate.db.queries.ledger import hold_credits, settle_hold
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.jobs import is_terminal
from reelgate.services import ledger, projects
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


async def make_admin(ctx: ServiceContext, user_id: str) -> None:
    await ctx.db.write(lambda tx: users.set_admin(tx, user_id, True))


async def generation_row(ctx: ServiceContext, generation_id: str) -> Generation:
    """The generation's row as stored (tests look past the API at columns it does not show)."""
    found = await ctx.db.read(lambda tx: generations.generation_by_id(tx, generation_id))
    assert found is not None, generation_id
    return found


def generation_record(**given: Any) -> Generation:
    """A Generation record with every column at the value a fresh submit would give it, then `given`."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {field.name: None for field in dataclasses.fields(Generation)}
    values.update(
        progress=0,
        prompt="",
        params={},
        quote_total=0,
        quote_breakdown={},
        credits_held=0,
        credits_charged=0,
        credits_refunded=0,
        provider_cost_micros=0,
        needs_review=False,
        favorite=False,
        output_meta={},
        submit_attempts=0,
        poll_count=0,
        transient_errors=0,
        raw_provider={},
        created_at=now,
        updated_at=now,
        deadline_at=now + timedelta(hours=1),
        webhook_token=secrets.token_hex(16),
    )
    values.update(given)
    values["account_id"] = values["account_id"] or values["user_id"]  # paid by its owner unless given
    return Generation(**values)


async def assert_ledger_ok(ctx: ServiceContext) -> None:
    problems = await ledger.check_ledger(ctx)
    assert problems == [], problems


async def credits(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, int]:
    response = await client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, int] = response.json()["credits"]
    return result


async def seed_finished_job(
    ctx: ServiceContext, user_id: str, model: str, params: dict[str, Any], price: int, status: str
) -> Generation:
    """A finished job written the way the pipeline writes one: a hold, then one capture or one release."""
    spec = ctx.catalog.get(model)
    now = datetime.now(UTC)
    generation = generation_record(
        id=f"gen_{secrets.token_hex(8)}",
        user_id=user_id,
        project_id=await projects.default_project_id(ctx, user_id),
        model=model,
        provider=spec.provider,
        provider_model=spec.provider_model,
        kind=spec.kind,
        status=status,
        params=params,
        quote_total=price,
        credits_held=price,
        credits_charged=price if status == "succeeded" else 0,
        webhook_token=secrets.token_hex(16),
        deadline_at=now + timedelta(hours=1),
        created_at=now - timedelta(seconds=40 + int(params.get("duration") or 0)),
        completed_at=now,
    )

    def record(tx: Tx) -> None:
        hold_credits(tx, user_id, price, generation_id=generation.id)
        generations.insert_generation(tx, generation)
        settle_hold(tx, user_id, price, generation_id=generation.id, capture=status == "succeeded")

    await ctx.db.write(record)
    return generation
