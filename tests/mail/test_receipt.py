"""A purchase receipt, queued by the Stripe event that grants the credits: one email however often Stripe
delivers the event."""

from __future__ import annotations

import asyncio
import re

from reelgate.services import mail
from tests.billing.conftest import StartShop, start_shop  # noqa: F401 - the fixture, used by name
from tests.mail.conftest import Mailbox, outbox, pump


async def test_purchase_receipt_once_under_duplicate_deliveries(start_shop: StartShop, mailbox: Mailbox) -> None:  # noqa: F811
    shop = await start_shop(smtp_url=mailbox.url(), smtp_timeout_seconds=1.0)
    buyer = await shop.account(credits=0)
    session_id = await shop.checkout(buyer, "starter")
    shop.sim.webhooks.controls.duplicate = 3
    completed = shop.sim.complete(session_id)
    await shop.deliveries_done()
    assert (await shop.post_event(completed)).json() == {"result": "duplicate"}
    await pump(shop.ctx, lambda: len(mailbox.to(buyer.email)) == 1)
    await asyncio.sleep(0.3)
    await mail.run_due(shop.ctx)

    assert mailbox.kinds(buyer.email) == ["purchase_receipt"]
    got = mailbox.to(buyer.email)[0]
    assert got.message["Subject"] == "Receipt: 1000 credits"
    assert "Amount paid: 9.99 USD" in got.text and "Package: starter" in got.text
    assert re.search(r"Payment: pay_\w+", got.text)
    assert f"{shop.public_url}/credits" in got.text
    assert str(got.message["List-Unsubscribe"]).startswith(f"<{shop.public_url}/unsubscribe?token=")
    rows = await outbox(shop.ctx, buyer.id)
    assert [(row.kind, row.status) for row in rows] == [("purchase_receipt", "sent")]
    await shop.check()
