"""A Stripe API simulator: Checkout Sessions over form-encoded requests, and events signed as Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.simulators.base import Simulator

API_VERSION = "2026-06-24.dahlia"  # docs/providers/stripe.md#authentication


def stripe_signature(secret: str, timestamp: int, body: bytes) -> str:
    """docs/providers/stripe.md#webhook-signature: HMAC-SHA256 keyed with the whole `whsec_…` string as UTF-8, over
    `{t}.{body}`, hex."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def decode_form(body: bytes) -> dict[str, Any]:
    """Stripe's bracketed form encoding (`line_items[0][price_data][unit_amount]=999`) back into JSON shapes."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_listify(node[k]) for k in sorted(node, key=int)]
    return {k: _listify(v) for k, v in node.items()}


class StripeSimulator(Simulator):
    """Creates Checkout Sessions like POST /v1/checkout/sessions (docs/providers/stripe.md#endpoints); tests then pay,
    refund, dispute or expire them, and each change is delivered to `webhook_url` as a signed event (duplicates,
    reordering, stale and forged signatures come from the shared WebhookSender controls)."""

    routes = [
        ("POST", r"/v1/checkout/sessions", "create_session"),
        ("GET", r"/v1/checkout/sessions/[^/]+", "get_session"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("api_key", "sk_test_" + secrets.token_hex(12))
        kwargs.setdefault("webhook_secret", "whsec_" + secrets.token_hex(16))
        super().__init__(**kwargs)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.webhook_url: str | None = None
        self.sent_events: list[dict[str, Any]] = []

    def build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/checkout/sessions", self.create_route, methods=["POST"]),
                Route("/v1/checkout/sessions/{session_id}", self.get_route, methods=["GET"]),
                Route("/v1/balance", self.balance_route, methods=["GET"]),
            ]
        )

    def sign_headers(self, msg_id: str, timestamp: int, body: bytes, corrupt: bool) -> dict[str, str]:
        assert self.webhook_secret is not None
        secret = "whsec_forged" + self.webhook_secret[12:] if corrupt else self.webhook_secret
        return {"Stripe-Signature": stripe_signature(secret, timestamp, body)}

    # -- API ---------------------------------------------------------------------------------------
    def _error(self, status: int, message: str) -> Response:
        return JSONResponse({"error": {"type": "invalid_request_error", "message": message}}, status_code=status)

    async def create_route(self, request: Request) -> Response:
        if not self.authorized(request):
            return self._error(401, "Invalid API Key provided.")
        params = decode_form(await request.body())
        if params.get("mode") != "payment" or not params.get("line_items"):
            return self._error(400, "mode=payment and line_items are required")
        item = params["line_items"][0]
        amount = int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1))
        session_id = "cs_test_" + secrets.token_hex(16)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "url": f"{self.url}/pay/{session_id}",
            "amount_total": amount,
            "currency": item["price_data"]["currency"],
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "metadata": params.get("metadata", {}),
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "payment_intent": None,
            "line_items_sent": params["line_items"],
            "created": int(time.time()),
        }
        with self.lock:
            self.sessions[session_id] = session
        return JSONResponse(session)

    async def balance_route(self, request: Request) -> Response:
        """Retrieve balance (docs/providers/stripe.md#endpoints): what reelgate's readiness check reads."""
        if not self.authorized(request):
            return self._error(401, "Invalid API Key provided.")
        money = [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}]
        return JSONResponse({"object": "balance", "available": money, "pending": money, "livemode": False})

    async def get_route(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session_id"])
        return JSONResponse(session) if session else self._error(404, "No such checkout.session")

    # -- what the customer and the bank do ---------------------------------------------------------
    def event(self, event_type: str, obj: dict[str, Any], *, send: bool = True) -> dict[str, Any]:
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "type": event_type,
            "data": {"object": obj},
        }
        self.sent_events.append(event)
        if send:
            self.webhooks.send(self.webhook_url, event_type, json.dumps(event).encode(), msg_id=event["id"])
        return event

    def complete(self, session_id: str, *, paid: bool = True, send: bool = True) -> dict[str, Any]:
        """The customer finishes checkout; a delayed method (bank debit) completes unpaid."""
        with self.lock:
            session = self.sessions[session_id]
            session["status"] = "complete"
            session["payment_status"] = "paid" if paid else "unpaid"
            session["payment_intent"] = session["payment_intent"] or "pi_" + secrets.token_hex(12)
            obj = dict(session)
        return self.event("checkout.session.completed", obj, send=send)

    def async_result(self, session_id: str, *, succeeded: bool = True, send: bool = True) -> dict[str, Any]:
        with self.lock:
            session = self.sessions[session_id]
            session["payment_status"] = "paid" if succeeded else "unpaid"
            obj = dict(session)
        kind = "succeeded" if succeeded else "failed"
        return self.event(f"checkout.session.async_payment_{kind}", obj, send=send)

    def expire(self, session_id: str, *, send: bool = True) -> dict[str, Any]:
        with self.lock:
            session = self.sessions[session_id]
            session["status"] = "expired"
            obj = dict(session)
        return self.event("checkout.session.expired", obj, send=send)

    def _charge(self, session: dict[str, Any]) -> dict[str, Any]:
        refunded = session.get("amount_refunded", 0)
        return {
            "id": "ch_" + session["id"][-16:],
            "object": "charge",
            "amount": session["amount_total"],
            "amount_refunded": refunded,
            "refunded": refunded >= session["amount_total"],
            "currency": session["currency"],
            "payment_intent": session["payment_intent"],
        }

    def refund(self, session_id: str, amount: int | None = None, *, send: bool = True) -> dict[str, Any]:
        """Refunds `amount` more (default: what is left); the event carries the cumulative amount_refunded."""
        with self.lock:
            session = self.sessions[session_id]
            left = session["amount_total"] - session.get("amount_refunded", 0)
            session["amount_refunded"] = session.get("amount_refunded", 0) + (left if amount is None else amount)
            obj = self._charge(session)
        return self.event("charge.refunded", obj, send=send)

    def dispute(self, session_id: str, amount: int | None = None, *, send: bool = True) -> dict[str, Any]:
        with self.lock:
            session = self.sessions[session_id]
            session["dispute_id"] = "dp_" + secrets.token_hex(8)
            obj = {
                "id": session["dispute_id"],
                "object": "dispute",
                "amount": session["amount_total"] if amount is None else amount,
                "charge": self._charge(session)["id"],
                "payment_intent": session["payment_intent"],
                "status": "needs_response",
            }
            session["dispute"] = obj
        return self.event("charge.dispute.created", obj, send=send)

    def close_dispute(self, session_id: str, *, won: bool, send: bool = True) -> dict[str, Any]:
        with self.lock:
            obj = dict(self.sessions[session_id]["dispute"], status="won" if won else "lost")
        return self.event("charge.dispute.closed", obj, send=send)
