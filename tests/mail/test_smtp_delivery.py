"""Emails through a real SMTP server in the test process: what each carries (headers, links, one-click
unsubscribe), preferences, exactly one email per event, and servers that refuse, stall or drop the connection."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from urllib.parse import urlsplit

import pytest

from reelgate.services import accounts, mail
from reelgate.services.context import ServiceContext
from tests.conftest import Account, Running, make_account
from tests.helpers import wait_for_terminal
from tests.mail.conftest import SMTP_USER, BadServer, Mailbox, outbox, pump

INJECTED_NAME = "Alice\r\nBcc: mallory@example.com"
INJECTED_PROMPT = "a red fox at dawn\r\nBcc: mallory@example.com\r\nSubject: free credits"


async def generate(running: Running, account: Account, prompt: str) -> dict[str, object]:
    body = {"model": "sandbox-t2v", "prompt": prompt, "duration": 1}
    created = await running.client.post("/api/v1/generations", headers=account.headers, json=body)
    assert created.status_code == 202, created.text
    return await wait_for_terminal(running.client, str(created.json()["id"]), account.headers)


def link(text: str, path: str) -> str:
    found = re.search(rf"http://testserver{re.escape(path)}\S*", text)
    assert found, f"no {path} link in:\n{text}"
    return found.group(0)


async def test_completion_and_failure_emails_with_one_click_unsubscribe(
    running: Running, alice: Account, mailbox: Mailbox
) -> None:
    ctx = running.ctx
    await accounts.update_profile(ctx, alice.id, display_name=INJECTED_NAME)
    done = await generate(running, alice, INJECTED_PROMPT)
    assert done["status"] == "succeeded"
    await pump(ctx, lambda: len(mailbox.to(alice.email)) == 1)

    got = mailbox.to(alice.email)[0]
    message = got.message
    # Sent to the account's address only, after logging in with the URL's (percent-decoded) credentials.
    assert got.recipients == [alice.email] and mailbox.logins == [SMTP_USER]
    assert message["X-Reelgate-Kind"] == "generation_completed"
    assert message["From"] == "reelgate <noreply@testserver>"
    # CR/LF in the name and in the prompt became spaces: no header was added through them.
    assert message["To"] == '"Alice Bcc: mallory@example.com" <alice@example.com>'
    assert message["Subject"] == "Your video is ready: a red fox at dawn Bcc: mallory@example.com Subject: free cre…"
    assert message["Bcc"] is None and len(message.get_all("Subject") or []) == 1
    assert re.fullmatch(r"<eml_[0-9a-z]{26}@testserver>", str(message["Message-ID"]))
    assert message.get_content_type() == "multipart/alternative"
    # RFC 8058: the link in List-Unsubscribe takes a POST of "List-Unsubscribe=One-Click".
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = str(message["List-Unsubscribe"]).strip("<>")
    assert unsubscribe_url.startswith("http://testserver/unsubscribe?token=")
    assert unsubscribe_url in got.text and unsubscribe_url.replace("&", "&amp;") in got.html
    assert link(got.text, "/gallery") == "http://testserver/gallery"
    assert 'href="http://testserver/gallery"' in got.html
    assert "Credits charged: 2" in got.text and "sandbox-t2v" in got.text

    # A forged or altered token changes nothing.
    parts = urlsplit(unsubscribe_url)
    forged = await running.client.post(f"{parts.path}?{parts.query}x", content=b"List-Unsubscribe=One-Click")
    assert forged.status_code == 404
    assert (await mail.preferences(ctx, alice.id))["generation_completed"] is True
    # Opened in a browser, the link asks before it acts.
    page = await running.client.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200 and "A video is ready" in page.text and 'method="post"' in page.text
    assert (await mail.preferences(ctx, alice.id))["generation_completed"] is True
    # One click, as a mail client makes it: no session, no CSRF token.
    clicked = await running.client.post(
        f"{parts.path}?{parts.query}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert clicked.status_code == 200 and "no longer receive" in clicked.text
    assert await mail.preferences(ctx, alice.id) == {
        "generation_completed": False,
        "generation_failed": True,
        "low_balance": True,
        "purchase_receipt": True,
    }

    second = await generate(running, alice, "a quiet lake")
    failed = await generate(running, alice, "a storm [fail]")
    assert second["status"] == "succeeded" and failed["status"] == "failed"
    await pump(ctx, lambda: len(mailbox.to(alice.email)) == 2)
    await asyncio.sleep(0.5)
    await mail.run_due(ctx)
    # The turned-off kind was skipped; the failure (with its refund) arrived, once.
    assert mailbox.kinds(alice.email) == ["generation_completed", "generation_failed"]
    failure = mailbox.to(alice.email)[1]
    assert failure.message["Subject"] == "Your video could not be made; 2 credits refunded"
    assert "the 2 credits held for it are back in your balance" in failure.text
    assert "[fail] in the prompt" in failure.text
    rows = {(row.kind, row.event_key): row for row in await outbox(ctx, alice.id)}
    assert rows[("generation_completed", second["id"])].status == "skipped"
    assert rows[("generation_failed", failed["id"])].status == "sent"
    assert rows[("generation_completed", done["id"])].attempts == 1


async def test_one_email_per_event_even_when_queued_again(running: Running, alice: Account, mailbox: Mailbox) -> None:
    ctx = running.ctx
    done = await generate(running, alice, "a lighthouse")
    await pump(ctx, lambda: len(mailbox.to(alice.email)) == 1)
    now = ctx.clock()
    again = await ctx.db.write(
        lambda tx: mail.queue(
            tx, user_id=alice.id, kind="generation_completed", event_key=str(done["id"]), payload={}, now=now
        )
    )
    assert again is False
    # Several senders at once (the embedded worker's job and these) still send it once.
    await asyncio.gather(*(mail.run_due(ctx) for _ in range(4)))
    await asyncio.sleep(0.3)
    assert len(mailbox.to(alice.email)) == 1


async def test_low_balance_email_once_when_the_balance_crosses_the_threshold(
    running: Running, mailbox: Mailbox
) -> None:
    ctx = running.ctx
    carol = await make_account(ctx, credits=21, email="carol@example.com")
    await mail.set_preferences(ctx, carol.id, {"low_balance"})  # only this kind
    await generate(running, carol, "a first small video")  # 21 -> 19: below 20
    await generate(running, carol, "a second small video")  # 19 -> 17: already below, nothing new
    await pump(ctx, lambda: len(mailbox.to(carol.email)) >= 1)
    await asyncio.sleep(0.3)
    await mail.run_due(ctx)
    assert mailbox.kinds(carol.email) == ["low_balance"]
    got = mailbox.to(carol.email)[0]
    assert got.message["Subject"] == "Your balance is low: 19 credits left"
    assert link(got.text, "/credits") == "http://testserver/credits"
    assert got.message["List-Unsubscribe"]


@pytest.mark.parametrize("bad_server", ["refuse", "stall", "drop"], indirect=True)
async def test_a_failing_smtp_server_delays_the_email_not_the_generation(
    running: Running, alice: Account, mailbox: Mailbox, bad_server: BadServer
) -> None:
    ctx: ServiceContext = running.ctx
    ctx.config = dataclasses.replace(ctx.config, smtp_url=bad_server.url)
    done = await generate(running, alice, "a fox in the snow")
    # The generation and the API are unaffected: finished, charged, answered.
    assert done["status"] == "succeeded" and done["credits_charged"] == 2

    async def tried() -> bool:
        rows = await outbox(ctx, alice.id)
        return bool(rows) and rows[0].attempts >= 1

    for _ in range(200):
        await mail.run_due(ctx)
        if await tried():
            break
        await asyncio.sleep(0.05)
    row = (await outbox(ctx, alice.id))[0]
    assert row.status == "pending" and row.last_error and row.next_attempt_at is not None
    assert row.next_attempt_at > row.created_at
    assert bad_server.connections >= 1
    status = await running.client.get(f"/api/v1/generations/{done['id']}", headers=alice.headers)
    assert status.status_code == 200 and status.json()["status"] == "succeeded"

    # The server comes back: the retry sends it, once.
    ctx.config = dataclasses.replace(ctx.config, smtp_url=mailbox.url())
    await pump(ctx, lambda: len(mailbox.to(alice.email)) == 1)
    await asyncio.sleep(0.5)
    await mail.run_due(ctx)
    assert len(mailbox.to(alice.email)) == 1
    row = (await outbox(ctx, alice.id))[0]
    assert row.status == "sent" and row.attempts >= 2 and row.sent_at is not None


@pytest.mark.parametrize("bad_server", ["refuse"], indirect=True)
async def test_retries_end_in_failed(running: Running, alice: Account, bad_server: BadServer) -> None:
    ctx = running.ctx
    ctx.config = dataclasses.replace(ctx.config, smtp_url=bad_server.url)
    await generate(running, alice, "never delivered")
    for _ in range(400):
        await mail.run_due(ctx)
        rows = await outbox(ctx, alice.id)
        if rows and rows[0].status != "pending":
            break
        await asyncio.sleep(0.05)
    row = (await outbox(ctx, alice.id))[0]
    assert row.status == "failed" and row.attempts == len(mail.RETRY_DELAYS) + 1
    assert bad_server.connections == row.attempts
