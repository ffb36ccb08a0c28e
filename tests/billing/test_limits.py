"""Request rate limits (429 + Retry-After), the in-flight cap (429) and the daily spend caps (402)."""

from __future__ import annotations

from typing import Any

from tests.billing.conftest import StartShop

ORDER = {"model": "sandbox-t2v", "prompt": "a paper boat on a rainy street", "duration": 5}  # 10 credits


def _assert_error(body: dict[str, Any], code: str) -> dict[str, Any]:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    details: dict[str, Any] = body["error"]["details"]
    return details


async def test_rate_limit_per_key_and_per_user(start_shop: StartShop) -> None:
    shop = await start_shop(rate_limit_per_key="3/minute", rate_limit_per_user="5/minute")
    user = await shop.account(credits=0)
    for _ in range(3):
        assert (await shop.client.get("/api/v1/me", headers=user.headers)).status_code == 200
    limited = await shop.client.get("/api/v1/me", headers=user.headers)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    details = _assert_error(limited.json(), "rate_limited")
    assert details["scope"] == "key" and details["retry_after"] == int(limited.headers["Retry-After"])

    # A second key of the same user has its own key budget but shares the user's (5, of which 3 are used;
    # a refused request does not count).
    from reelgate.services import accounts

    second = (await accounts.create_api_key(shop.ctx, user.id, "second")).secret
    headers = {"Authorization": f"Bearer {second}"}
    for _ in range(2):
        assert (await shop.client.get("/api/v1/me", headers=headers)).status_code == 200
    over = await shop.client.get("/api/v1/me", headers=headers)
    assert over.status_code == 429 and _assert_error(over.json(), "rate_limited")["scope"] == "user"
    # Other users, and unauthenticated endpoints such as webhooks, are not affected.
    other = await shop.account(credits=0)
    assert (await shop.client.get("/api/v1/me", headers=other.headers)).status_code == 200
    assert (await shop.client.get("/healthz")).status_code == 200


async def test_in_flight_cap(start_shop: StartShop) -> None:
    shop = await start_shop(max_in_flight=2, sandbox_delay_seconds=30)
    user = await shop.account(credits=100)
    for _ in range(2):
        assert (await shop.client.post("/api/v1/generations", json=ORDER, headers=user.headers)).status_code == 202
    refused = await shop.client.post("/api/v1/generations", json=ORDER, headers=user.headers)
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert _assert_error(refused.json(), "rate_limited")["in_flight"] == 2
    assert await shop.balance(user) == {"available": 80, "held": 20}  # the refused one held nothing
    await shop.check()


async def test_daily_spend_caps(start_shop: StartShop) -> None:
    shop = await start_shop(daily_spend_cap_user=25, daily_spend_cap_global=35, sandbox_delay_seconds=0.1)
    alice, bob = await shop.account(credits=100), await shop.account(credits=100)
    for _ in range(2):
        assert (await shop.client.post("/api/v1/generations", json=ORDER, headers=alice.headers)).status_code == 202
    third = await shop.client.post("/api/v1/generations", json=ORDER, headers=alice.headers)
    assert third.status_code == 402
    details = _assert_error(third.json(), "spend_cap_reached")
    assert details == {"scope": "user", "cap": 25, "spent": 20, "required": 10}
    assert "midnight UTC" in third.json()["error"]["message"]

    assert (await shop.client.post("/api/v1/generations", json=ORDER, headers=bob.headers)).status_code == 202
    # Bob is within his own cap (10 of 25) but everyone together has spent 30 of 35.
    refused = await shop.client.post("/api/v1/generations", json=ORDER, headers=bob.headers)
    assert refused.status_code == 402
    assert _assert_error(refused.json(), "spend_cap_reached") == {
        "scope": "global",
        "cap": 35,
        "spent": 30,
        "required": 10,
    }
    await shop.check()


async def test_refunded_jobs_do_not_count_towards_the_cap(start_shop: StartShop) -> None:
    from tests.helpers import wait_for_terminal

    shop = await start_shop(daily_spend_cap_user=10, sandbox_delay_seconds=0.1)
    user = await shop.account(credits=100)
    failing = dict(ORDER, prompt="a storm over the sea [fail]")
    created = await shop.client.post("/api/v1/generations", json=failing, headers=user.headers)
    assert created.status_code == 202
    assert (await wait_for_terminal(shop.client, created.json()["id"], user.headers))["status"] == "failed"
    assert (await shop.client.post("/api/v1/generations", json=ORDER, headers=user.headers)).status_code == 202
    await shop.check()


async def test_generate_limit_counts_new_generations_only(start_shop: StartShop) -> None:
    """REELGATE_GENERATE_LIMIT: 3 generations per window; reads, polling, refused requests and replays of an
    idempotent request never count, and every way of starting a generation shares the one budget."""
    shop = await start_shop(generate_limit="3/15 minutes", sandbox_delay_seconds=30, max_in_flight=50)
    user = await shop.account(credits=200)
    keyed = {**user.headers, "Idempotency-Key": "first-order"}
    first = await shop.client.post("/api/v1/generations", json=ORDER, headers=keyed)
    assert first.status_code == 202
    # Invalid or unaffordable requests are refused before anything is counted.
    invalid = await shop.client.post("/api/v1/generations", json={**ORDER, "resolution": "9999p"}, headers=user.headers)
    assert invalid.status_code == 422
    poor = await shop.account(credits=0)
    assert (await shop.client.post("/api/v1/generations", json=ORDER, headers=poor.headers)).status_code == 402
    # The OpenAI-compatible API starts a generation too: it counts against the same budget.
    video = await shop.client.post(
        "/v1/videos", json={"model": "sandbox-t2v", "prompt": ORDER["prompt"], "seconds": "5"}, headers=user.headers
    )
    assert video.status_code == 200, video.text
    assert (await shop.client.post("/api/v1/generations", json=ORDER, headers=user.headers)).status_code == 202

    limited = await shop.client.post("/api/v1/generations", json=ORDER, headers=user.headers)
    assert limited.status_code == 429
    details = _assert_error(limited.json(), "rate_limited")
    assert details["scope"] == "generate" and details["limit"] == "3 per 15 minute"
    assert 60 < int(limited.headers["Retry-After"]) <= 15 * 60
    # Nothing was held for the refused one: 3 × 10 credits are on hold.
    assert await shop.balance(user) == {"available": 170, "held": 30}
    # Reading the balance and polling the jobs still work, and a replay of the first request answers as before.
    assert (await shop.client.get("/api/v1/generations", headers=user.headers)).status_code == 200
    replay = await shop.client.post("/api/v1/generations", json=ORDER, headers=keyed)
    assert replay.status_code == 202 and replay.json()["id"] == first.json()["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    # Another user has a budget of their own.
    other = await shop.account(credits=20)
    assert (await shop.client.post("/api/v1/generations", json=ORDER, headers=other.headers)).status_code == 202
