"""A shop: the app served on loopback (so the Stripe simulator can post webhooks to it) plus the simulator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.app import create_app
from reelgate.services.context import ServiceContext
from tests.conftest import Account, make_account, make_settings
from tests.helpers import assert_ledger_ok, make_admin
from tests.simulators.base import listening_socket, serve_on_this_loop
from tests.simulators.stripe import StripeSimulator

# A small package so a test can spend most of it with a few sandbox jobs (10 credits each).
TEST_PACKAGES = [
    {"id": "starter", "credits": 1000, "bonus": 0, "price": 999, "currency": "usd"},
    {"id": "tiny", "credits": 40, "bonus": 10, "price": 100, "currency": "usd"},
]


@dataclass
class Shop:
    sim: StripeSimulator
    ctx: ServiceContext
    client: httpx.AsyncClient
    public_url: str

    async def account(self, credits: int = 0, *, admin: bool = False) -> Account:
        account = await make_account(self.ctx, credits=credits)
        if admin:
            await make_admin(self.ctx, account.id)
        return account

    async def checkout(self, account: Account, package: str = "starter") -> str:
        response = await self.client.post(
            "/api/v1/credits/checkout", json={"package": package}, headers=account.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["url"].startswith(self.sim.url)
        return str(body["id"])

    async def deliveries_done(self) -> list[Any]:
        return await asyncio.to_thread(self.sim.webhooks.wait_idle)

    async def post_event(self, event: dict[str, Any], *, secret: str | None = None, age: int = 0) -> httpx.Response:
        """Deliver an event directly (as a Stripe retry would), signed with `secret` (default: the real one)."""
        from tests.simulators.stripe import stripe_signature

        body = json.dumps(event).encode()
        signature = stripe_signature(secret or str(self.sim.webhook_secret), int(time.time()) - age, body)
        return await self.client.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": signature, "content-type": "application/json"},
        )

    async def balance(self, account: Account) -> dict[str, int]:
        response = await self.client.get("/api/v1/me", headers=account.headers)
        assert response.status_code == 200, response.text
        result: dict[str, int] = response.json()["credits"]
        return result

    async def check(self) -> None:
        await assert_ledger_ok(self.ctx)


StartShop = Callable[..., Awaitable[Shop]]


@pytest.fixture
async def start_shop(tmp_path: Path, database_url: str) -> AsyncIterator[StartShop]:
    """`await start_shop(**settings)` starts the Stripe simulator and the app (SQLite and PostgreSQL)."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Shop:
            sim = StripeSimulator()
            sim.start()
            stack.callback(sim.stop)
            sock = listening_socket()
            public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            values: dict[str, Any] = {
                "public_url": public_url,
                "stripe_secret_key": sim.api_key,
                "stripe_webhook_secret": sim.webhook_secret,
                "stripe_api_base": sim.url,
                "credit_packages": json.dumps(TEST_PACKAGES),
            }
            values.update(overrides)
            settings = make_settings(tmp_path / "data", database_url, **values)
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            await serve_on_this_loop(stack, app, sock)
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=public_url, timeout=30.0))
            sim.webhook_url = f"{public_url}/webhooks/stripe"
            return Shop(sim=sim, ctx=app.state.ctx, client=client, public_url=public_url)

        yield start


@pytest.fixture
async def shop(start_shop: StartShop) -> Shop:
    return await start_shop()
