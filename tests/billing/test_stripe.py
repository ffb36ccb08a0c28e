"""Purchases through the Stripe simulator: granted exactly once however events arrive; refunds never overdraw."""

from __future__ import annotations

import asyncio
import json

from reelgate.db.queries.payments import payment_for_session
from reelgate.db.queries.users import user_by_id
from tests.billing.conftest import Shop, StartShop
from tests.helpers import wait_for_terminal


async def _purchases(shop: Shop, account_headers: dict[str, str]) -> list[dict[str, object]]:
    response = await shop.client.get(
        "/api/v1/credits/transactions", params={"kind": "purchase"}, headers=account_headers
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, object]] = response.json()["data"]
    return data


async def test_purchase_end_to_end_is_granted_once_under_duplicates(shop: Shop) -> None:
    buyer = await shop.account(credits=0)
    session_id = await shop.checkout(buyer, "starter")
    sent = shop.sim.sessions[session_id]
    # What Stripe was asked for: the starter package's price, our metadata, one line item.
    assert sent["amount_total"] == 999 and sent["currency"] == "usd"
    assert sent["metadata"]["user_id"] == buyer.id and sent["metadata"]["credits"] == "1000"
    assert sent["client_reference_id"] == buyer.id

    shop.sim.webhooks.controls.duplicate = 3  # Stripe may deliver the same event several times
    completed = shop.sim.complete(session_id)
    deliveries = await shop.deliveries_done()
    assert [d.status for d in deliveries] == [200] * 4
    assert await shop.balance(buyer) == {"available": 1000, "held": 0}

    # A late retry of the same event, and a second "paid" event for the session, change nothing.
    assert (await shop.post_event(completed)).json() == {"result": "duplicate"}
    assert (await shop.post_event(shop.sim.async_result(session_id, send=False))).json() == {
        "result": "already_granted"
    }
    assert await shop.balance(buyer) == {"available": 1000, "held": 0}
    purchases = await _purchases(shop, buyer.headers)
    assert len(purchases) == 1 and purchases[0]["amount"] == 1000 and purchases[0]["payment_id"]
    await shop.check()


async def test_delayed_payment_reordered_and_duplicated(shop: Shop) -> None:
    buyer = await shop.account(credits=5)
    session_id = await shop.checkout(buyer, "tiny")
    controls = shop.sim.webhooks.controls
    controls.hold, controls.duplicate = True, 1
    shop.sim.complete(session_id, paid=False)  # a bank debit: complete but unpaid
    shop.sim.async_result(session_id, succeeded=True)
    shop.sim.webhooks.release(reverse=True)  # the money arrives "before" the completion
    await shop.deliveries_done()
    assert await shop.balance(buyer) == {"available": 55, "held": 0}
    payment = await shop.ctx.db.read(lambda tx: payment_for_session(tx, session_id))
    assert payment is not None
    assert payment.status == "paid"  # the late "unpaid completion" did not undo it
    await shop.check()


async def test_unpaid_failed_and_expired_sessions_grant_nothing(shop: Shop) -> None:
    buyer = await shop.account(credits=0)
    failed = await shop.checkout(buyer, "tiny")
    shop.sim.complete(failed, paid=False)
    shop.sim.async_result(failed, succeeded=False)
    expired = await shop.checkout(buyer, "tiny")
    shop.sim.expire(expired)
    await shop.deliveries_done()
    assert await shop.balance(buyer) == {"available": 0, "held": 0}
    await shop.check()


async def test_forged_stale_and_tampered_webhooks_are_refused(shop: Shop) -> None:
    buyer = await shop.account(credits=0)
    session_id = await shop.checkout(buyer, "starter")
    shop.sim.webhooks.controls.bad_signature = True
    shop.sim.complete(session_id)
    deliveries = await shop.deliveries_done()
    assert deliveries[-1].status == 400
    event = shop.sim.sent_events[-1]
    stale = await shop.post_event(event, age=3600)
    assert stale.status_code == 400 and stale.json()["error"]["code"] == "invalid_signature"
    forged = await shop.post_event(event, secret="whsec_someone_else")
    assert forged.status_code == 400
    # A valid signature over one body does not vouch for another.
    signed_for = json.dumps(event).encode()
    tampered = dict(event, data={"object": dict(event["data"]["object"], metadata={"credits": "999999"})})
    headers = shop.sim.webhooks.build(signed_for)
    response = await shop.client.post("/webhooks/stripe", content=json.dumps(tampered).encode(), headers=headers)
    assert response.status_code == 400
    unsigned = await shop.client.post("/webhooks/stripe", content=signed_for)
    assert unsigned.status_code == 400
    assert await shop.balance(buyer) == {"available": 0, "held": 0}
    # The genuine event still works afterwards: a refused delivery recorded nothing.
    assert (await shop.post_event(event)).json() == {"result": "granted"}
    assert await shop.balance(buyer) == {"available": 1000, "held": 0}
    await shop.check()


async def test_refund_after_spending_never_goes_negative_and_flags(start_shop: StartShop) -> None:
    shop = await start_shop(sandbox_delay_seconds=0.1)
    buyer = await shop.account(credits=0)
    session_id = await shop.checkout(buyer, "tiny")  # 50 credits
    shop.sim.complete(session_id)
    await shop.deliveries_done()
    for _ in range(3):  # spend 30 of them
        created = await shop.client.post(
            "/api/v1/generations",
            json={"model": "sandbox-t2v", "prompt": "a lighthouse at dusk, waves", "duration": 5},
            headers=buyer.headers,
        )
        assert created.status_code == 202, created.text
        assert (await wait_for_terminal(shop.client, created.json()["id"], buyer.headers))["status"] == "succeeded"
    assert await shop.balance(buyer) == {"available": 20, "held": 0}

    shop.sim.refund(session_id, 50)  # half the money back: 25 credits, only 20 of them left
    await shop.deliveries_done()
    assert await shop.balance(buyer) == {"available": 0, "held": 0}
    shop.sim.refund(session_id)  # the rest: 25 more credits, all already spent
    await shop.deliveries_done()
    assert await shop.balance(buyer) == {"available": 0, "held": 0}
    payment = await shop.ctx.db.read(lambda tx: payment_for_session(tx, session_id))
    owner = await shop.ctx.db.read(lambda tx: user_by_id(tx, buyer.id))
    assert payment is not None and owner is not None
    flagged = owner.flagged
    assert (payment.credits_reversed, payment.credits_unrecovered, flagged) == (50, 30, True)
    adjusts = await shop.client.get("/api/v1/credits/transactions?kind=adjust", headers=buyer.headers)
    assert [t["amount"] for t in adjusts.json()["data"]] == [-20]  # nothing more could be taken
    await shop.check()


async def test_refund_before_completion_is_retried_and_dispute_won_returns_credits(shop: Shop) -> None:
    buyer = await shop.account(credits=0)
    session_id = await shop.checkout(buyer, "starter")
    completed = shop.sim.complete(session_id, send=False)
    refund = shop.sim.refund(session_id, 333, send=False)
    early = await shop.post_event(refund)  # the completion has not arrived: Stripe must retry later
    assert early.status_code == 409
    assert (await shop.post_event(completed)).json() == {"result": "granted"}
    assert (await shop.post_event(refund)).json() == {"result": "refund_applied"}
    assert await shop.balance(buyer) == {"available": 1000 - 334, "held": 0}  # ceil(1000 * 333 / 999)

    shop.sim.dispute(session_id, 999 - 333)
    await shop.deliveries_done()
    assert await shop.balance(buyer) == {"available": 0, "held": 0}
    shop.sim.close_dispute(session_id, won=True)
    await shop.deliveries_done()
    assert await shop.balance(buyer) == {"available": 1000 - 334, "held": 0}
    await shop.check()


async def test_concurrent_deliveries_grant_once(shop: Shop) -> None:
    buyer = await shop.account(credits=0)
    session_id = await shop.checkout(buyer, "starter")
    completed = shop.sim.complete(session_id, send=False)
    succeeded = shop.sim.async_result(session_id, send=False)
    answers = await asyncio.gather(*(shop.post_event(e) for e in [completed, succeeded] * 4))
    assert all(a.status_code == 200 for a in answers)
    assert await shop.balance(buyer) == {"available": 1000, "held": 0}
    await shop.check()


async def test_checkout_errors(start_shop: StartShop) -> None:
    shop = await start_shop(stripe_secret_key=None)
    buyer = await shop.account()
    unknown = await shop.client.post("/api/v1/credits/checkout", json={"package": "gold"}, headers=buyer.headers)
    assert unknown.status_code == 422 and unknown.json()["error"]["details"]["allowed"] == ["starter", "tiny"]
    unconfigured = await shop.client.post("/api/v1/credits/checkout", json={"package": "tiny"}, headers=buyer.headers)
    assert unconfigured.status_code == 503
    anonymous = await shop.client.post("/api/v1/credits/checkout", json={"package": "tiny"})
    assert anonymous.status_code == 401


async def test_readyz_checks_stripe_when_purchases_are_configured(start_shop: StartShop) -> None:
    shop = await start_shop()
    ready = await shop.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["payments"] == {"ok": True, "configured": True}
    assert ready.json()["status"] == "ready"

    # Stripe stops accepting the key: purchases would fail, generations would not. Degraded, still serving.
    shop.sim.api_key = "sk_test_rotated"
    shop.ctx.payments_health = None  # as once the last answer is a minute old
    degraded = await shop.client.get("/readyz")
    body = degraded.json()
    assert degraded.status_code == 200 and body["status"] == "degraded"
    assert body["checks"]["payments"] == {"ok": False, "error": "Stripe refused the secret key", "configured": True}
    assert "sk_test" not in degraded.text  # the key never appears in the answer

    # Stripe gone altogether: the check answers within its timeout and says so.
    shop.sim.stop()
    shop.ctx.payments_health = None
    gone = (await shop.client.get("/readyz")).json()["checks"]["payments"]
    assert gone["ok"] is False and gone["error"].startswith("Stripe did not answer")


async def test_readyz_without_stripe_reports_payments_as_not_configured(start_shop: StartShop) -> None:
    shop = await start_shop(stripe_secret_key=None)
    ready = await shop.client.get("/readyz")
    assert ready.json()["checks"]["payments"] == {"ok": True, "configured": False}
    assert ready.json()["status"] == "ready"
