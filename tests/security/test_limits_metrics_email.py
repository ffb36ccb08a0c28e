"""Per-address limits on the studio and anonymous estimates, /metrics only to its token or on its own listener,
and email addresses checked by a maintained validator."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.domain.errors import ValidationFailed
from reelgate.services import accounts
from tests.conftest import METRICS_HEADERS, Running, make_account, make_settings, start_app

StartApp = Callable[..., AbstractAsyncContextManager[Running]]
ESTIMATE = {"model": "sandbox-t2v", "duration": 5}


@pytest.fixture
def start(tmp_path: Path) -> StartApp:
    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[Running]:
        async for running in start_app(make_settings(tmp_path / "data", None, **overrides)):
            yield running

    return run


def _from(address: str) -> dict[str, str]:
    """As the trusted proxy in front (the test client connects from 127.0.0.1) reports a client's address."""
    return {"X-Forwarded-For": address}


# --- studio ------------------------------------------------------------------------------------------------------


async def test_studio_requests_are_limited_per_client_address(start: StartApp) -> None:
    async with start(rate_limit_studio_per_address="5/minute") as running:
        client = running.client
        page = {"Accept": "text/html", **_from("203.0.113.7")}
        assert [(await client.get("/login", headers=page)).status_code for _ in range(5)] == [200] * 5
        refused = await client.get("/login", headers=page)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["content-type"].startswith("text/html") and "Too many requests" in refused.text
        assert refused.headers["x-frame-options"] == "DENY"  # still a page like any other
        # Sign-in attempts and htmx calls from that address are refused too; htmx gets the error shape.
        posted = await client.post("/login", data={"email": "a@example.com", "password": "x"}, headers=page)
        assert posted.status_code == 429
        htmx = await client.get("/studio/estimate", headers={"HX-Request": "true", **_from("203.0.113.7")})
        assert htmx.status_code == 429 and htmx.json()["error"]["code"] == "rate_limited"
        # Another address has its own count; the APIs are counted per key and account, not here.
        assert (await client.get("/login", headers={"Accept": "text/html", **_from("203.0.113.8")})).status_code == 200
        assert (await client.get("/api/v1/models", headers=_from("203.0.113.7"))).status_code == 200
        assert (await client.get("/static/studio.css", headers=_from("203.0.113.7"))).status_code == 200


async def test_untrusted_forwarded_addresses_do_not_buy_fresh_counts(start: StartApp) -> None:
    async with start(rate_limit_studio_per_address="3/minute", trusted_proxies="10.9.9.9") as running:
        statuses = [
            (await running.client.get("/login", headers=_from(f"198.51.100.{n}"))).status_code for n in range(4)
        ]
        assert statuses == [200, 200, 200, 429]  # all counted against the real peer, 127.0.0.1


# --- anonymous estimates -----------------------------------------------------------------------------------------


async def test_anonymous_estimates_are_limited_per_address(start: StartApp) -> None:
    async with start(rate_limit_estimate_per_address="3/minute") as running:
        client = running.client
        account = await make_account(running.ctx)
        anonymous = _from("203.0.113.20")
        for _ in range(3):
            assert (await client.post("/api/v1/estimate", json=ESTIMATE, headers=anonymous)).status_code == 200
        refused = await client.post("/api/v1/estimate", json=ESTIMATE, headers=anonymous)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and error["details"]["scope"] == "address"
        # A made-up key is still anonymous: random keys cannot buy fresh counts.
        fake = {**anonymous, "Authorization": "Bearer rg_made-up-key"}
        assert (await client.post("/api/v1/estimate", json=ESTIMATE, headers=fake)).status_code == 429
        # A real key is counted against its owner by the API's own limits instead.
        keyed = {**anonymous, **account.headers}
        assert (await client.post("/api/v1/estimate", json=ESTIMATE, headers=keyed)).status_code == 200
        other = _from("203.0.113.21")
        assert (await client.post("/api/v1/estimate", json=ESTIMATE, headers=other)).status_code == 200


# --- /metrics ----------------------------------------------------------------------------------------------------


async def test_metrics_are_not_served_without_a_token_or_a_listener(start: StartApp) -> None:
    async with start(metrics_token=None) as running:
        response = await running.client.get("/metrics")
        assert response.status_code == 404
        assert "reelgate_http_requests_total" not in response.text


async def test_metrics_need_the_token(start: StartApp) -> None:
    async with start() as running:  # the tests' settings carry a metrics token
        client = running.client
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert wrong.json()["error"]["code"] == "unauthorized"
        allowed = await client.get("/metrics", headers=METRICS_HEADERS)
        assert allowed.status_code == 200 and "reelgate_http_requests_total" in allowed.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_metrics_on_their_own_listener(start: StartApp) -> None:
    port = _free_port()
    async with start(metrics_token=None, metrics_port=port) as running:
        assert (await running.client.get("/metrics")).status_code == 404  # not on the public listener
        async with httpx.AsyncClient(timeout=10) as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
            assert scraped.status_code == 200, scraped.text
            assert "reelgate_credits_held" in scraped.text  # a database figure, read on the app's loop
            assert (await scraper.get(f"http://127.0.0.1:{port}/api/v1/models")).status_code == 404
    with pytest.raises(httpx.ConnectError):  # stopped with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


async def test_the_metrics_listener_can_demand_the_token_too(start: StartApp) -> None:
    port = _free_port()
    async with start(metrics_port=port):
        async with httpx.AsyncClient(timeout=10) as scraper:
            assert (await scraper.get(f"http://127.0.0.1:{port}/metrics")).status_code == 401
            allowed = await scraper.get(f"http://127.0.0.1:{port}/metrics", headers=METRICS_HEADERS)
            assert allowed.status_code == 200


# --- email addresses ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    ['"x<y>"@example.com', "x<y>@example.com", "a b@example.com", "a@[127.0.0.1]", "Name <a@example.com>", "a@@b.com"],
)
async def test_signup_refuses_addresses_that_are_not_plain_mailboxes(start: StartApp, email: str) -> None:
    async with start() as running:
        client = running.client
        token = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/signup")).text)
        assert token
        response = await client.post(
            "/signup", data={"email": email, "password": "correct horse battery", "csrf_token": token.group(1)}
        )
        assert response.status_code == 422, response.text[:300]
        assert "Enter a valid email address" in response.text
        assert await accounts.count_users(running.ctx) == 0


async def test_ordinary_and_lan_addresses_are_accepted(start: StartApp) -> None:
    async with start() as running:
        for email in ("Alice.Smith+video@Example.COM", "admin@reelgate.local", "zoë@例え.jp"):
            user = await accounts.create_user(running.ctx, email, "correct horse battery")
            assert user.email == email.lower()
        with pytest.raises(ValidationFailed):
            await accounts.create_user(running.ctx, "root@localhost", "correct horse battery")
