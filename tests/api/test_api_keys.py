"""API keys: created once-shown, listed without secrets, and refused immediately after revocation."""

from __future__ import annotations

from tests.conftest import Account, Running


async def test_revoked_key_stops_working_at_once(running: Running, alice: Account) -> None:
    made = await running.client.post("/api/v1/api-keys", headers=alice.headers, json={"name": "ci"})
    assert made.status_code == 201 and made.json()["key"].startswith("rg_")
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await running.client.get("/api/v1/me", headers=key)).status_code == 200  # now cached
    listed = (await running.client.get("/api/v1/api-keys", headers=alice.headers)).json()["data"]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    revoked = await running.client.delete(f"/api/v1/api-keys/{made.json()['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    refused = await running.client.get("/api/v1/me", headers=key)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert (await running.client.get("/api/v1/me", headers=alice.headers)).status_code == 200
