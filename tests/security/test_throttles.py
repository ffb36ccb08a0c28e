"""Throttles that follow the attacker, through HTTP on both databases: guesses at one account from many
addresses, one password tried on many accounts from one address, the site's failed sign-in budget, the
current password before a change, sign-ups per address (and their free credits), and the same answer to a
sign-up whether the email was taken or not. The Redis store is checked against a real Redis."""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.services import accounts
from tests.conftest import Running, make_settings, start_app

PASSWORD = "correct horse battery"
REDIS_URL = "redis://127.0.0.1:6379/0"
StartApp = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def start(tmp_path: Path, database_url: str) -> StartApp:
    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[Running]:
        async for running in start_app(make_settings(tmp_path / "data", database_url, **overrides)):
            yield running

    return run


def _from(address: str) -> dict[str, str]:
    """As the trusted proxy in front (the test client connects from 127.0.0.1) reports a client's address."""
    return {"X-Forwarded-For": address}


async def _token(client: httpx.AsyncClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/signup")).text)
    assert found
    return found.group(1)


async def _sign_in(client: httpx.AsyncClient, email: str, password: str, address: str) -> httpx.Response:
    token = await _token(client)
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}, headers=_from(address)
    )


async def _sign_up(client: httpx.AsyncClient, email: str, address: str) -> httpx.Response:
    token = await _token(client)
    return await client.post(
        "/signup", data={"email": email, "password": PASSWORD, "csrf_token": token}, headers=_from(address)
    )


async def test_guesses_at_one_account_from_many_addresses_are_slowed_down(start: StartApp) -> None:
    async with start() as running:
        await accounts.create_user(running.ctx, "target@example.com", PASSWORD)
        answers = [
            (await _sign_in(running.client, "target@example.com", f"guess {n}", f"198.51.100.{n}")).status_code
            for n in range(30)
        ]
        assert answers[:5] == [401] * 5
        assert set(answers[5:]) == {429}
        refused = await _sign_in(running.client, "target@example.com", PASSWORD, "198.51.100.200")
        assert refused.status_code == 429  # even the right password waits: guessing gives nothing away
        assert 1 <= int(refused.headers["Retry-After"]) <= 60  # the first tier; later tiers wait longer
        # An account nobody has is throttled the same way, so the answers say nothing of which exist.
        ghost = [
            (await _sign_in(running.client, "ghost@example.com", "guess", f"198.51.101.{n}")).status_code
            for n in range(6)
        ]
        assert ghost == [401] * 5 + [429]


async def test_the_owner_signing_in_clears_their_accounts_count(start: StartApp) -> None:
    async with start() as running:
        await accounts.create_user(running.ctx, "owner@example.com", PASSWORD)
        for _ in range(4):
            assert (await _sign_in(running.client, "owner@example.com", "typo typo", "192.0.2.1")).status_code == 401
        assert (await _sign_in(running.client, "owner@example.com", PASSWORD, "192.0.2.1")).status_code == 303
        assert (await _sign_in(running.client, "owner@example.com", "typo typo", "192.0.2.1")).status_code == 401


async def test_one_password_on_many_accounts_from_one_address_is_refused(start: StartApp) -> None:
    async with start(sign_in_limit_per_address="10/10 minutes") as running:
        answers = [
            (await _sign_in(running.client, f"user{n}@example.com", "Password1!", "203.0.113.9")).status_code
            for n in range(30)
        ]
        assert answers[:10] == [401] * 10
        assert set(answers[10:]) == {429}
        # Another address is not held back by this one.
        assert (await _sign_in(running.client, "user99@example.com", "x", "203.0.113.10")).status_code == 401


async def test_the_site_has_a_budget_of_failed_sign_ins(start: StartApp) -> None:
    async with start(sign_in_failures_global="12/10 minutes") as running:
        answers = [
            (await _sign_in(running.client, f"spray{n}@example.com", "x", f"10.1.{n}.1")).status_code for n in range(15)
        ]
        assert answers[:12] == [401] * 12
        assert set(answers[12:]) == {429}


async def test_the_current_password_check_is_throttled(start: StartApp) -> None:
    async with start() as running:
        await accounts.create_user(running.ctx, "changer@example.com", PASSWORD)
        client = running.client
        assert (await _sign_in(client, "changer@example.com", PASSWORD, "192.0.2.50")).status_code == 303
        csrf = re.search(r'data-csrf="([^"]+)"', (await client.get("/studio")).text)
        assert csrf
        guess = {"current_password": "guess", "new_password": "new password 123", "revoke_api_keys": False}
        headers = {"X-CSRF-Token": csrf.group(1)}
        answers = [
            (await client.post("/api/v1/me/password", json=guess, headers=headers)).status_code for _ in range(7)
        ]
        assert answers == [422] * 5 + [429] * 2
        right = {**guess, "current_password": PASSWORD}
        assert (await client.post("/api/v1/me/password", json=right, headers=headers)).status_code == 429
        # The studio's form is the same check.
        form = await client.post(
            "/settings/password",
            data={
                "csrf_token": csrf.group(1),
                "current_password": PASSWORD,
                "new_password": "new password 123",
                "confirm_password": "new password 123",
            },
        )
        assert form.status_code == 303
        assert "Too many failed sign-ins" in (await client.get("/settings")).text


async def test_sign_ups_are_limited_per_address_and_so_are_free_credits(start: StartApp) -> None:
    async with start(signup_credits=100) as running:
        emails = [f"farm{n}@example.com" for n in range(20)]
        answers = [(await _sign_up(running.client, email, "203.0.113.77")).status_code for email in emails]
        assert answers[:5] == [200] * 5
        assert set(answers[5:]) == {429}
        total = 0
        for email in emails[:5]:
            user = await accounts.find_user_by_email(running.ctx, email)
            key = await accounts.create_api_key(running.ctx, user.id, "t")
            me = await running.client.get("/api/v1/me", headers={"Authorization": f"Bearer {key.secret}"})
            total += me.json()["credits"]["available"]
        assert total == 300  # the first three accounts of the address get the free credits, no more
        for email in emails[5:]:
            with pytest.raises(Exception, match="No user"):
                await accounts.find_user_by_email(running.ctx, email)
        # Another address signs up as usual.
        assert (await _sign_up(running.client, "fresh@example.com", "203.0.113.78")).status_code == 200


async def test_sign_up_answers_the_same_whether_the_email_is_taken_or_not(start: StartApp) -> None:
    async with start() as running:
        await accounts.create_user(running.ctx, "taken@example.com", "another password")
        taken = await _sign_up(running.client, "taken@example.com", "192.0.2.9")
        free = await _sign_up(running.client, "free@example.com", "192.0.2.9")
        assert taken.status_code == free.status_code == 200
        assert "already exists" not in taken.text.lower()
        assert taken.text.replace("taken@example.com", "X") == free.text.replace("free@example.com", "X")
        assert [c.split("=")[0] for c in taken.headers.get_list("set-cookie")] == [
            c.split("=")[0] for c in free.headers.get_list("set-cookie")
        ]
        # The existing account keeps its password.
        assert (await _sign_in(running.client, "taken@example.com", PASSWORD, "192.0.2.9")).status_code == 401


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def test_processes_sharing_redis_count_the_same_guesses(tmp_path: Path, database_url: str) -> None:
    if not _redis_reachable():
        pytest.skip("Redis is not reachable at 127.0.0.1:6379: the shared-counter path is not tested here")
    victim = f"victim-{secrets.token_hex(6)}@example.com"  # fresh keys in a Redis other runs may share
    first_settings = make_settings(tmp_path / "data", database_url, redis_url=REDIS_URL)
    async for first in start_app(first_settings):
        await accounts.create_user(first.ctx, victim, PASSWORD)
        for n in range(3):
            assert (await _sign_in(first.client, victim, "guess", f"198.18.0.{n}")).status_code == 401
        # A second API process (its own memory) on the same database and Redis.
        async for second in start_app(make_settings(tmp_path / "data", database_url, redis_url=REDIS_URL)):
            answers = [(await _sign_in(second.client, victim, "guess", f"198.18.1.{n}")).status_code for n in range(3)]
            assert answers == [401, 401, 429]
            assert (await _sign_in(first.client, victim, PASSWORD, "198.18.2.1")).status_code == 429
