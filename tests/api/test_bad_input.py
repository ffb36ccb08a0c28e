"""Bad input answers in the contract's error shape and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Account, Running
from tests.helpers import assert_ledger_ok, credits, png_bytes, wait_for_terminal


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def test_unknown_model(running: Running, alice: Account) -> None:
    r = await running.client.post(
        "/api/v1/generations", headers=alice.headers, json={"model": "no-such-model", "prompt": "a red fox in snow"}
    )
    _error(r, 404, "not_found")


async def test_duration_and_resolution_not_offered_name_what_is_allowed(running: Running, alice: Account) -> None:
    r = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "a red fox in snow", "duration": 11},
    )
    err = _error(r, 422, "validation_error")
    assert err["details"]["field"] == "duration" and 5 in err["details"]["allowed"]
    r = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "a red fox in snow", "resolution": "8k"},
    )
    err = _error(r, 422, "validation_error")
    assert err["details"]["field"] == "resolution" and "720p" in err["details"]["allowed"]


async def test_too_few_credits(running: Running, alice: Account) -> None:
    r = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "a very long fox movie", "duration": 10, "resolution": "1080p"},
    )
    assert r.status_code == 202
    for _ in range(10):
        r = await running.client.post(
            "/api/v1/generations",
            headers=alice.headers,
            json={
                "model": "sandbox-t2v",
                "prompt": "[hang] a very long fox movie",
                "duration": 10,
                "resolution": "1080p",
            },
        )
        if r.status_code == 402:
            break
    err = _error(r, 402, "insufficient_credits")
    assert err["details"]["required"] == 30 and err["details"]["available"] < 30
    balance = await credits(running.client, alice.headers)
    assert balance["available"] == err["details"]["available"]


async def test_fake_and_oversized_images(running: Running, alice: Account) -> None:
    fake = await running.client.post(
        "/api/v1/uploads",
        headers=alice.headers,
        files={"file": ("cat.png", b"this is not an image at all" * 10, "image/png")},
    )
    _error(fake, 415, "unsupported_media_type")
    big = png_bytes()[:100] + b"\0" * (11 * 1024 * 1024)
    oversized = await running.client.post(
        "/api/v1/uploads", headers=alice.headers, files={"file": ("big.png", big, "image/png")}
    )
    _error(oversized, 413, "payload_too_large")


async def test_another_users_generation_is_not_found(running: Running, alice: Account, bob: Account) -> None:
    r = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "alice's private fox video"},
    )
    gid = r.json()["id"]
    for method, path in [
        ("GET", ""),
        ("GET", "/content"),
        ("GET", "/thumbnail"),
        ("POST", "/cancel"),
        ("POST", "/retry"),
    ]:
        response = await running.client.request(method, f"/api/v1/generations/{gid}{path}", headers=bob.headers)
        _error(response, 404, "not_found")
    assert (await running.client.get("/api/v1/generations", headers=bob.headers)).json()["data"] == []
    final = await wait_for_terminal(running.client, gid, alice.headers)
    assert final["status"] == "succeeded"


@pytest.mark.parametrize(
    "field,value", [("status", "succeeded"), ("credits_charged", 0), ("user_id", "usr_x"), ("credits_held", 0)]
)
async def test_server_owned_fields_are_rejected(running: Running, alice: Account, field: str, value: object) -> None:
    r = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "a red fox in snow", field: value},
    )
    err = _error(r, 422, "validation_error")
    assert err["details"]["field"] == field
    assert (await credits(running.client, alice.headers))["held"] == 0


async def test_idempotency_key_replays_and_conflicts(running: Running, alice: Account) -> None:
    body = {"model": "sandbox-t2v", "prompt": "[hang] one fox only please"}
    headers = {**alice.headers, "Idempotency-Key": "order-42"}
    first = await running.client.post("/api/v1/generations", headers=headers, json=body)
    second = await running.client.post("/api/v1/generations", headers=headers, json=body)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"] and second.headers["idempotent-replayed"] == "true"
    assert (await credits(running.client, alice.headers))["held"] == first.json()["credits_held"]
    other = await running.client.post("/api/v1/generations", headers=headers, json={**body, "duration": 2})
    _error(other, 422, "idempotency_key_reused")
    await running.client.post(f"/api/v1/generations/{first.json()['id']}/cancel", headers=alice.headers)
    await assert_ledger_ok(running.ctx)


async def test_no_credentials(running: Running) -> None:
    _error(await running.client.get("/api/v1/me"), 401, "unauthorized")
    _error(await running.client.get("/api/v1/me", headers={"Authorization": "Bearer rg_wrong"}), 401, "unauthorized")


async def test_unavailable_model_is_refused_without_charge(running: Running, alice: Account) -> None:
    r = await running.client.post(
        "/api/v1/generations", headers=alice.headers, json={"model": "ltx-2-t2v", "prompt": "a red fox in snow"}
    )
    _error(r, 422, "model_unavailable")
    assert (await credits(running.client, alice.headers)) == {"available": 100, "held": 0}
