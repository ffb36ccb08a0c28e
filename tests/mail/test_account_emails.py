"""Password reset and address verification by email, through the studio's forms and the admin API, with a real
SMTP server in the test process; and embedded mode with no SMTP server (the mail folder and its admin page)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.queries import mail as mail_queries
from reelgate.services import accounts, mail
from reelgate.settings import Settings
from tests.conftest import Account, Running, make_account, make_settings, start_app
from tests.helpers import make_admin, wait_for_terminal
from tests.mail.conftest import Mailbox, outbox, pump

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def form_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def link_in(text: str, path: str) -> str:
    found = re.search(rf"http://testserver({re.escape(path)}\?token=[A-Za-z0-9_\-]+)", text)
    assert found, text
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    token = form_token(await client.get("/login"))
    return await client.post("/login", data={"email": email, "password": password, "csrf_token": token})


async def ask_reset(client: httpx.AsyncClient, email: str) -> httpx.Response:
    token = form_token(await client.get("/forgot-password"))
    response = await client.post("/forgot-password", data={"email": email, "csrf_token": token})
    assert response.status_code == 200
    return response


async def test_password_reset_by_email(running: Running, alice: Account, mailbox: Mailbox) -> None:
    ctx, client = running.ctx, running.client
    login_page = await client.get("/login")
    assert 'href="/forgot-password"' in login_page.text

    # The same answer whether or not the account exists; only the real one gets an email.
    unknown = await ask_reset(client, "nobody@example.com")
    known = await ask_reset(client, alice.email.upper())
    assert "If an account uses this address" in known.text
    assert unknown.text.replace("nobody@example.com", "") == known.text.replace(alice.email.upper(), "")
    await pump(ctx, lambda: len(mailbox.to(alice.email)) == 1)
    await asyncio.sleep(0.2)
    assert [r.recipients for r in mailbox.received] == [[alice.email]]

    got = mailbox.to(alice.email)[0]
    assert got.message["Subject"] == "Reset your password"
    # Always sent, so it offers no unsubscribe.
    assert got.message["List-Unsubscribe"] is None
    path = link_in(got.text, "/reset-password")
    assert f'href="http://testserver{path}"' in got.html
    secret = path.split("token=", 1)[1]
    # Only the token's hash is stored.
    stored = await ctx.db.read(
        lambda tx: mail_queries.token_by_hash(tx, hashlib.sha256(secret.encode()).hexdigest(), "password_reset")
    )
    assert stored is not None and stored.user_id == alice.id and stored.token_hash != secret

    page = await client.get(path)
    assert page.status_code == 200 and "Set a new password" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    fields = {"token": secret, "csrf_token": form_token(page)}
    mismatch = await client.post(
        "/reset-password", data={**fields, "new_password": NEW_PASSWORD, "confirm_password": "x"}
    )
    assert mismatch.status_code == 422
    short = await client.post("/reset-password", data={**fields, "new_password": "short", "confirm_password": "short"})
    assert short.status_code == 422 and "8 characters" in short.text
    done = await client.post(
        "/reset-password", data={**fields, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    )
    assert done.status_code == 303 and done.headers["location"] == "/login"

    # Single use: the link is spent.
    again = await client.post(
        "/reset-password",
        data={**fields, "new_password": "another one entirely", "confirm_password": "another one entirely"},
    )
    assert again.status_code == 404 and "does not work any more" in again.text
    assert (await client.get(path)).status_code == 404
    assert (await sign_in(client, alice.email, PASSWORD)).status_code == 401
    signed_in = await sign_in(client, alice.email, NEW_PASSWORD)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/studio"


async def test_reset_links_expire_and_requests_are_limited(running: Running, alice: Account, mailbox: Mailbox) -> None:
    ctx, client = running.ctx, running.client
    for _ in range(5):
        await ask_reset(client, alice.email)
    await pump(ctx, lambda: len(mailbox.to(alice.email)) == 3)
    await asyncio.sleep(0.3)
    await mail.run_due(ctx)
    assert len(mailbox.to(alice.email)) == 3  # at most three per quarter hour
    path = link_in(mailbox.to(alice.email)[-1].text, "/reset-password")
    real_clock = ctx.clock
    ctx.clock = lambda: real_clock() + timedelta(hours=1, seconds=1)
    try:
        page = await client.get(path)
        assert page.status_code == 404
    finally:
        ctx.clock = real_clock
    # Before it expired it worked; the other two links of the same account stop working once one is used.
    first = link_in(mailbox.to(alice.email)[0].text, "/reset-password")
    page = await client.get(first)
    fields = {"token": first.split("token=", 1)[1], "csrf_token": form_token(page)}
    used = await client.post(
        "/reset-password", data={**fields, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    )
    assert used.status_code == 303
    assert (await client.get(path)).status_code == 404


async def test_admin_sends_a_reset_link(running: Running, alice: Account, bob: Account, mailbox: Mailbox) -> None:
    ctx, client = running.ctx, running.client
    await make_admin(ctx, alice.id)
    refused = await client.post(f"/api/v1/admin/users/{alice.id}/password-reset", headers=bob.headers)
    assert refused.status_code == 403
    missing = await client.post("/api/v1/admin/users/usr_nobody/password-reset", headers=alice.headers)
    assert missing.status_code == 404
    sent = await client.post(f"/api/v1/admin/users/{bob.id}/password-reset", headers=alice.headers)
    assert sent.status_code == 202 and sent.json() == {"user_id": bob.id, "queued": True}
    await pump(ctx, lambda: len(mailbox.to(bob.email)) == 1)
    got = mailbox.to(bob.email)[0]
    assert "An administrator of testserver sent you a link" in got.text
    path = link_in(got.text, "/reset-password")
    assert (await client.get(path)).status_code == 200

    # The button on the admin users page does the same.
    assert (await sign_in(client, alice.email, PASSWORD)).status_code == 303
    admin_page = await client.get("/admin")
    assert f'action="/admin/users/{bob.id}/send-reset"' in admin_page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', admin_page.text)
    assert csrf
    clicked = await client.post(f"/admin/users/{bob.id}/send-reset", data={"csrf_token": csrf.group(1)})
    assert clicked.status_code == 303, clicked.text
    assert "error" not in clicked.headers["location"], clicked.headers["location"]
    await pump(ctx, lambda: len(mailbox.to(bob.email)) == 2)
    forged = await client.post(f"/admin/users/{bob.id}/send-reset", data={"csrf_token": "forged"})
    assert forged.status_code == 403


async def test_signup_credits_wait_for_the_address_to_be_verified(running: Running, mailbox: Mailbox) -> None:
    ctx, client = running.ctx, running.client
    token = form_token(await client.get("/signup"))
    email = "dana@example.com"
    response = await client.post("/signup", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 200 and "confirm the address" in response.text
    assert (await sign_in(client, email, PASSWORD)).status_code == 303
    user = await accounts.find_user_by_email(ctx, email)
    me = await accounts.create_api_key(ctx, user.id, "test")
    headers = {"Authorization": f"Bearer {me.secret}"}
    balance = await client.get("/api/v1/me", headers=headers)
    assert balance.json()["credits"]["available"] == 0

    await pump(ctx, lambda: len(mailbox.to(email)) == 1)
    got = mailbox.to(email)[0]
    assert got.message["Subject"] == "Confirm your email address"
    assert got.message["List-Unsubscribe"] is None
    assert "receive your 50 free credits" in got.text
    first = link_in(got.text, "/verify-email")

    # Lost the email? Settings says the address is unconfirmed and sends another.
    settings_page = await client.get("/settings")
    assert 'id="unverified"' in settings_page.text
    csrf = form_token(settings_page)
    resent = await client.post("/settings/verify-email", data={"csrf_token": csrf})
    assert resent.status_code == 303
    await pump(ctx, lambda: len(mailbox.to(email)) == 2)
    path = link_in(mailbox.to(email)[1].text, "/verify-email")
    assert path != first

    page = await client.get(path)  # opening the link (a mail scanner might) spends nothing
    assert page.status_code == 200
    assert (await client.get("/api/v1/me", headers=headers)).json()["credits"]["available"] == 0
    fields = {"token": path.split("token=", 1)[1], "csrf_token": form_token(page)}
    verified = await client.post("/verify-email", data=fields)
    assert verified.status_code == 303 and verified.headers["location"] == "/studio"
    assert (await client.get("/api/v1/me", headers=headers)).json()["credits"]["available"] == 50
    # Neither this link again nor the older one grants anything more.
    assert (await client.post("/verify-email", data=fields)).status_code == 404
    older = {**fields, "token": first.split("token=", 1)[1]}
    assert (await client.post("/verify-email", data=older)).status_code == 404
    assert (await client.get("/api/v1/me", headers=headers)).json()["credits"]["available"] == 50
    assert 'id="unverified"' not in (await client.get("/settings")).text
    assert (await client.post("/settings/verify-email", data={"csrf_token": csrf})).status_code == 303
    await asyncio.sleep(0.3)
    await mail.run_due(ctx)
    assert len(mailbox.to(email)) == 2


# ---------------------------------------------------------------- embedded mode, no SMTP server


@pytest.fixture
def folder_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, signup_credits=30)


@pytest.fixture
async def folder_app(folder_settings: Settings) -> AsyncIterator[Running]:
    async for value in start_app(folder_settings):
        yield value


async def test_without_smtp_emails_go_to_the_mail_folder_and_the_admin_page(
    folder_app: Running, folder_settings: Settings
) -> None:
    """Embedded mode (SQLite) writes .eml files an administrator reads in the studio; production mode
    (PostgreSQL) with no SMTP server sends nothing and marks its outbox rows skipped."""
    ctx, client = folder_app.ctx, folder_app.client
    embedded = folder_settings.embedded
    assert ctx.config.smtp_url is None and bool(ctx.config.mail_dir) is embedded
    erin = await make_account(ctx, credits=100, email="erin@example.com")
    await make_admin(ctx, erin.id)
    body = {"model": "sandbox-t2v", "prompt": "a paper boat", "duration": 1}
    created = await client.post("/api/v1/generations", headers=erin.headers, json=body)
    await wait_for_terminal(client, created.json()["id"], erin.headers)
    folder = folder_settings.data_dir / "mail"

    def files() -> list[Path]:
        return sorted(folder.glob("*.eml")) if folder.is_dir() else []

    async def settled() -> bool:
        return [row.status for row in await outbox(ctx, erin.id)] == ["sent" if embedded else "skipped"]

    for _ in range(200):
        await mail.run_due(ctx)
        if await settled():
            break
        await asyncio.sleep(0.05)
    assert await settled()
    assert len(files()) == (1 if embedded else 0)
    # Sign-up without SMTP is as before: the credits at once, no verification email.
    token = form_token(await client.get("/signup"))
    await client.post("/signup", data={"email": "fay@example.com", "password": PASSWORD, "csrf_token": token})
    fay = await accounts.find_user_by_email(ctx, "fay@example.com")
    assert await outbox(ctx, fay.id) == []
    assert (await ctx.db.read(lambda tx: ledger_queries.balance_of(tx, fay.id))).available == 30  # type: ignore[union-attr]
    client.cookies.clear()

    assert (await sign_in(client, erin.email, PASSWORD)).status_code == 303
    listing = await client.get("/admin/mail")
    assert listing.status_code == 200
    if not embedded:
        assert "this site sends no email" in listing.text
        return
    assert "Your video is ready: a paper boat" in listing.text
    name = files()[0].name
    shown = await client.get(f"/admin/mail/{name}")
    assert shown.status_code == 200 and "http://testserver/gallery" in shown.text
    assert (await client.get("/admin/mail/..%2Freelgate.db")).status_code == 404
    assert (await client.get("/admin/mail/nothing.eml")).status_code == 404


async def test_a_locked_account_is_unlocked_by_its_owner_through_an_emailed_link(
    running: Running, alice: Account, mailbox: Mailbox
) -> None:
    ctx, client = running.ctx, running.client
    # Someone guesses at alice's password until the account's lock answers 429.
    statuses = [(await sign_in(client, alice.email, f"guess {n}")).status_code for n in range(5)]
    assert statuses == [401] * 5
    locked = await sign_in(client, alice.email, "guess 5")
    assert locked.status_code == 429 and "lift this lock with the link we email" in locked.text
    # An account that does not exist answers the same words, and nobody gets an email for it.
    for n in range(6):
        nobody = await sign_in(client, "nobody@example.com", f"guess {n}")
    assert nobody.status_code == 429 and "lift this lock with the link we email" in nobody.text
    again = await sign_in(client, alice.email, PASSWORD)  # even the right password waits while locked
    assert again.status_code == 429

    await pump(ctx, lambda: len(mailbox.to(alice.email)) == 1)
    got = mailbox.to(alice.email)[0]
    assert got.message["Subject"] == "Sign-in to your account was locked"
    assert got.message["List-Unsubscribe"] is None  # always sent: it answers a lock on the account
    path = link_in(got.text, "/unlock-account")
    await asyncio.sleep(0.3)
    await mail.run_due(ctx)
    assert len(mailbox.to(alice.email)) == 1  # one email per lock, however many guesses it refused
    assert mailbox.to("nobody@example.com") == []

    page = await client.get(path)  # opening the link (a mail scanner might) lifts nothing
    assert page.status_code == 200
    assert (await sign_in(client, alice.email, PASSWORD)).status_code == 429
    fields = {"token": path.split("token=", 1)[1], "csrf_token": form_token(page)}
    assert (await client.post("/unlock-account", data={**fields, "csrf_token": "forged"})).status_code == 403
    lifted = await client.post("/unlock-account", data=fields)
    assert lifted.status_code == 303 and lifted.headers["location"] == "/login"
    assert (await sign_in(client, alice.email, PASSWORD)).status_code == 303
    # Once only, and a made-up token does nothing.
    assert (await client.post("/unlock-account", data=fields)).status_code == 404
    made_up = {**fields, "token": "x" * 43}
    assert (await client.post("/unlock-account", data=made_up)).status_code == 404
