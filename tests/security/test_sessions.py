"""Studio sessions kept on the server, through HTTP on both databases: a cookie copied before sign-out, a
password change or "sign out everywhere" stops working at once; sessions expire when idle; a password
change revokes API keys unless asked not to; an old session confirms the password before minting a key."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from reelgate.services import accounts
from tests.conftest import Running

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


@dataclass
class Browser:
    """One browser: its own cookie jar, signed in to the studio."""

    client: httpx.AsyncClient
    csrf: str

    @property
    def cookie(self) -> str:
        return str(self.client.cookies["rg_session"])

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}


def _token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:400]
    return found.group(1)


async def sign_up(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    token = _token(await client.get("/signup"))
    return await client.post("/signup", data={"email": email, "password": password, "csrf_token": token})


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    token = _token(await client.get("/login"))
    return await client.post("/login", data={"email": email, "password": password, "csrf_token": token})


@pytest.fixture
async def browsers(running: Running) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Separate cookie jars on the same app, as separate browsers would be."""
    transport = httpx.ASGITransport(app=running.app)
    clients = [
        httpx.AsyncClient(transport=transport, base_url="http://testserver", headers={"User-Agent": agent})
        for agent in (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "curl/8.5",
        )
    ]
    yield clients
    for client in clients:
        await client.aclose()


async def open_browser(client: httpx.AsyncClient, email: str) -> Browser:
    response = await sign_in(client, email)
    assert response.status_code == 303, response.text
    studio = await client.get("/studio")
    found = re.search(r'data-csrf="([^"]+)"', studio.text)
    assert found, studio.text[:400]
    return Browser(client, found.group(1))


async def _user(running: Running, browsers: list[httpx.AsyncClient], email: str) -> None:
    assert (await sign_up(browsers[0], email)).status_code == 200


async def test_a_cookie_copied_before_sign_out_stops_working(
    running: Running, browsers: list[httpx.AsyncClient]
) -> None:
    await _user(running, browsers, "copied@example.com")
    browser = await open_browser(browsers[0], "copied@example.com")
    stolen = {"Cookie": f"rg_session={browser.cookie}"}
    assert (await running.client.get("/api/v1/me", headers=stolen)).status_code == 200
    signed_out = await browser.client.post("/logout", data={"csrf_token": browser.csrf})
    assert signed_out.status_code == 303
    assert (await running.client.get("/api/v1/me", headers=stolen)).status_code == 401
    minted = await running.client.post(
        "/api/v1/api-keys", json={"name": "thief"}, headers={**stolen, "X-CSRF-Token": browser.csrf}
    )
    assert minted.status_code == 401
    assert (await running.client.get("/settings", headers=stolen)).status_code == 303  # to the sign-in page


async def test_a_forged_or_old_style_cookie_signs_nobody_in(
    running: Running, browsers: list[httpx.AsyncClient]
) -> None:
    await _user(running, browsers, "forged@example.com")
    browser = await open_browser(browsers[0], "forged@example.com")
    for cookie in ("eyJ1IjoidXNyXzEyMyIsImMiOiJ4In0.Z0.sig", browser.cookie[:-2] + "AA", ""):
        response = await running.client.get("/api/v1/me", headers={"Cookie": f"rg_session={cookie}"})
        assert response.status_code == 401


async def test_a_password_change_ends_every_other_session_and_revokes_api_keys(
    running: Running, browsers: list[httpx.AsyncClient]
) -> None:
    await _user(running, browsers, "changer@example.com")
    here = await open_browser(browsers[0], "changer@example.com")
    elsewhere = await open_browser(browsers[1], "changer@example.com")
    user = await accounts.find_user_by_email(running.ctx, "changer@example.com")
    key = await accounts.create_api_key(running.ctx, user.id, "script")
    bearer = {"Authorization": f"Bearer {key.secret}"}
    assert (await running.client.get("/api/v1/me", headers=bearer)).status_code == 200

    changed = await here.client.post(
        "/settings/password",
        data={
            "csrf_token": here.csrf,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
            "revoke_api_keys": "yes",  # the checkbox, checked by default
        },
    )
    assert changed.status_code == 303
    assert (await here.client.get("/api/v1/me")).status_code == 200  # the session that changed it stays
    assert (await elsewhere.client.get("/api/v1/me")).status_code == 401
    assert (await running.client.get("/api/v1/me", headers=bearer)).status_code == 401
    minted = await running.client.post("/api/v1/api-keys", json={"name": "more"}, headers=bearer)
    assert minted.status_code == 401


async def test_keeping_api_keys_through_a_password_change_is_a_choice(
    running: Running, browsers: list[httpx.AsyncClient]
) -> None:
    await _user(running, browsers, "keeper@example.com")
    here = await open_browser(browsers[0], "keeper@example.com")
    user = await accounts.find_user_by_email(running.ctx, "keeper@example.com")
    key = await accounts.create_api_key(running.ctx, user.id, "script")
    bearer = {"Authorization": f"Bearer {key.secret}"}
    changed = await here.client.post(
        "/settings/password",
        data={
            "csrf_token": here.csrf,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },  # checkbox unchecked
    )
    assert changed.status_code == 303
    assert (await running.client.get("/api/v1/me", headers=bearer)).status_code == 200

    # The API: keys are revoked unless `revoke_api_keys` is false.
    kept = await running.client.post(
        "/api/v1/me/password",
        json={"current_password": NEW_PASSWORD, "new_password": PASSWORD, "revoke_api_keys": False},
        headers=bearer,
    )
    assert kept.status_code == 200 and kept.json()["api_keys_revoked"] == 0
    assert (await running.client.get("/api/v1/me", headers=bearer)).status_code == 200
    revoked = await running.client.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=bearer
    )
    assert revoked.status_code == 200 and revoked.json()["api_keys_revoked"] == 1
    assert (await running.client.get("/api/v1/me", headers=bearer)).status_code == 401
    assert (await here.client.get("/api/v1/me")).status_code == 401  # a key changed it: every session ended


async def test_sign_out_everywhere_and_revoking_one_session(
    running: Running, browsers: list[httpx.AsyncClient]
) -> None:
    await _user(running, browsers, "everywhere@example.com")
    first, second, third = [await open_browser(b, "everywhere@example.com") for b in browsers]
    settings = await first.client.get("/settings")
    assert settings.text.count("<tr data-session=") == 3
    assert "Chrome on Linux" in settings.text and "Firefox on Windows" in settings.text
    assert "(this browser)" in settings.text

    # Revoke the third one from the first; another user's session id is not ours to end.
    third_id = re.findall(r'<tr data-session="([0-9a-f]{64})">\s*<td>curl', settings.text)
    assert len(third_id) == 1, settings.text
    ended = await first.client.post(f"/settings/sessions/{third_id[0]}/revoke", data={"csrf_token": first.csrf})
    assert ended.status_code == 303
    assert (await third.client.get("/api/v1/me")).status_code == 401
    assert (await second.client.get("/api/v1/me")).status_code == 200

    everywhere = await second.client.post("/settings/sessions/end-all", data={"csrf_token": second.csrf})
    assert everywhere.status_code == 303 and everywhere.headers["location"] == "/login"
    assert (await first.client.get("/api/v1/me")).status_code == 401
    assert (await second.client.get("/api/v1/me")).status_code == 401


async def test_end_all_sessions_is_a_service_others_can_call(
    running: Running, browsers: list[httpx.AsyncClient]
) -> None:
    await _user(running, browsers, "service@example.com")
    browser = await open_browser(browsers[0], "service@example.com")
    user = await accounts.find_user_by_email(running.ctx, "service@example.com")
    assert await accounts.end_all_sessions(running.ctx, user.id) == 1
    assert (await browser.client.get("/api/v1/me")).status_code == 401


async def test_sessions_end_after_a_day_idle_or_a_week_in_all(
    running: Running, browsers: list[httpx.AsyncClient]
) -> None:
    await _user(running, browsers, "idle@example.com")
    browser = await open_browser(browsers[0], "idle@example.com")
    cookie = next(c for c in (await sign_in(browsers[1], "idle@example.com")).headers.get_list("set-cookie"))
    assert "Max-Age=604800" in cookie  # a week, not two
    real_clock = running.ctx.clock
    try:
        running.ctx.clock = lambda: real_clock() + timedelta(hours=23)
        assert (await browser.client.get("/api/v1/me")).status_code == 200  # used: the idle time starts again
        running.ctx.clock = lambda: real_clock() + timedelta(hours=23 + 25)
        assert (await browser.client.get("/api/v1/me")).status_code == 401
        assert (await browsers[1].get("/api/v1/me")).status_code == 401
    finally:
        running.ctx.clock = real_clock


async def test_an_old_session_confirms_the_password_before_minting_a_key(
    running: Running, browsers: list[httpx.AsyncClient]
) -> None:
    await _user(running, browsers, "minter@example.com")
    browser = await open_browser(browsers[0], "minter@example.com")
    fresh = await browser.client.post("/api/v1/api-keys", json={"name": "fresh"}, headers=browser.headers)
    assert fresh.status_code == 201
    real_clock = running.ctx.clock
    try:
        running.ctx.clock = lambda: real_clock() + timedelta(minutes=10)
        asked = await browser.client.post("/api/v1/api-keys", json={"name": "later"}, headers=browser.headers)
        assert asked.status_code == 403 and asked.json()["error"]["code"] == "password_required"
        wrong = await browser.client.post(
            "/api/v1/api-keys", json={"name": "later", "password": "guess guess"}, headers=browser.headers
        )
        assert wrong.status_code == 422
        right = await browser.client.post(
            "/api/v1/api-keys", json={"name": "later", "password": PASSWORD}, headers=browser.headers
        )
        assert right.status_code == 201
        # Confirmed just now: the next key needs no password for a few minutes.
        again = await browser.client.post("/api/v1/api-keys", json={"name": "again"}, headers=browser.headers)
        assert again.status_code == 201

        # The studio's form asks for it too.
        running.ctx.clock = lambda: real_clock() + timedelta(minutes=30)
        page = await browser.client.get("/settings")
        assert 'name="password"' in page.text
        refused = await browser.client.post("/settings/api-keys", data={"name": "x", "csrf_token": browser.csrf})
        assert refused.status_code == 303 and "rg_" not in refused.text
        made = await browser.client.post(
            "/settings/api-keys", data={"name": "x", "csrf_token": browser.csrf, "password": PASSWORD}
        )
        assert made.status_code == 200 and 'data-testid="new-api-key"' in made.text
    finally:
        running.ctx.clock = real_clock
    # An API key (no session) still creates keys without a password.
    user = await accounts.find_user_by_email(running.ctx, "minter@example.com")
    key = await accounts.create_api_key(running.ctx, user.id, "ci")
    by_key = await running.client.post(
        "/api/v1/api-keys", json={"name": "child"}, headers={"Authorization": f"Bearer {key.secret}"}
    )
    assert by_key.status_code == 201
