"""Credit sales and bookkeeping: packages, Stripe Checkout, admin grants and adjustments, transactions."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import stripe

from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.queries import organizations as org_queries
from reelgate.db.queries import payments as payment_queries
from reelgate.db.queries import users as user_queries
from reelgate.db.records import Payment, User
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound, ServiceUnavailable, ValidationFailed
from reelgate.domain.ids import new_id
from reelgate.domain.ledger import EntryKind
from reelgate.services import ledger, organizations
from reelgate.services.context import ServiceContext
from reelgate.services.stripe_events import handle_stripe_webhook
from reelgate.services.transactions import Transaction, TransactionFilter, iter_transactions_csv, list_transactions

__all__ = [
    "AdjustResult",
    "Checkout",
    "CreditPackage",
    "Transaction",
    "TransactionFilter",
    "adjust_credits",
    "find_package",
    "grant_credits",
    "handle_stripe_webhook",
    "iter_transactions_csv",
    "list_payments",
    "list_transactions",
    "packages",
    "start_checkout",
]


@dataclass(frozen=True)
class CreditPackage:
    id: str
    credits: int
    bonus: int
    price: int  # in the currency's minor unit (cents), as Stripe's `unit_amount`
    currency: str  # lowercase ISO 4217, as Stripe writes it
    popular: bool = False

    @property
    def total_credits(self) -> int:
        return self.credits + self.bonus


# The packages are priced in dollars of credit (starter: $10.00 of credit for $9.99). Our
# default credit unit is US$0.01, so each dollar of credit is 100 credits: starter = 1000 credits for
# 999 cents; bonuses scale the same way (standard's $2.00 bonus = 200 credits).
SEED_PACKAGES: tuple[CreditPackage, ...] = (
    CreditPackage("starter", 1000, 0, 999, "usd"),
    CreditPackage("standard", 2500, 200, 2499, "usd"),
    CreditPackage("pro", 5000, 500, 4799, "usd", popular=True),
    CreditPackage("enterprise", 10000, 1500, 8999, "usd"),
)


@lru_cache(maxsize=8)
def _parse_packages(raw: str) -> tuple[CreditPackage, ...]:
    """REELGATE_CREDIT_PACKAGES: a JSON list of {"id", "credits", "bonus", "price", "currency", "popular"}."""
    if not raw.strip():
        return SEED_PACKAGES
    try:
        items = json.loads(raw)
        parsed = tuple(
            CreditPackage(
                id=str(item["id"]),
                credits=int(item["credits"]),
                bonus=int(item.get("bonus", 0)),
                price=int(item["price"]),
                currency=str(item.get("currency", "usd")).lower(),
                popular=bool(item.get("popular", False)),
            )
            for item in items
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"REELGATE_CREDIT_PACKAGES is not a valid package list: {exc!r}") from exc
    for package in parsed:
        if package.credits <= 0 or package.bonus < 0 or package.price <= 0:
            raise ValueError(f"REELGATE_CREDIT_PACKAGES: package {package.id!r} needs credits > 0 and price > 0")
    if len({p.id for p in parsed}) != len(parsed):
        raise ValueError("REELGATE_CREDIT_PACKAGES: package ids must be unique")
    return parsed


def packages(ctx: ServiceContext) -> tuple[CreditPackage, ...]:
    """The credit packages on sale (settings, or the four defaults)."""
    return _parse_packages(ctx.config.credit_packages)


def find_package(ctx: ServiceContext, package_id: str) -> CreditPackage:
    for package in packages(ctx):
        if package.id == package_id:
            return package
    raise ValidationFailed("package", f"Unknown credit package {package_id!r}.", allowed=[p.id for p in packages(ctx)])


# ---------------------------------------------------------------- checkout


@dataclass(frozen=True)
class Checkout:
    payment_id: str
    session_id: str
    url: str


async def start_checkout(
    ctx: ServiceContext,
    user_id: str,
    package_id: str,
    *,
    success_url: str | None = None,
    cancel_url: str | None = None,
    organization: str | None = None,
) -> Checkout:
    """Creates a Stripe Checkout Session for a package and records it; the credits come with the webhook.

    With `organization`, the credits go to that organization's wallet: only its owners and admins may buy for it
    (404 for anyone outside it, 403 for a plain member), and the buyer stays the one who pays and is named."""
    package = find_package(ctx, package_id)
    key = ctx.config.stripe_secret_key
    if not key:
        raise ServiceUnavailable("Credit purchases are not configured (STRIPE_SECRET_KEY is unset).")

    def read_buyer(tx: Tx) -> tuple[User | None, str]:
        if organization is not None:
            organizations.managing_in(tx, organization, user_id)
        return user_queries.user_by_id(tx, user_id), organization or user_id

    user, account_id = await ctx.db.read(read_buyer)
    if user is None:
        raise NotFound("User not found.")
    payment_id = new_id("pay")
    base = ctx.config.public_url
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": package.currency,
                    "unit_amount": package.price,
                    "product_data": {
                        "name": f"{package.id.capitalize()} credits package",
                        "description": f"{package.total_credits} video generation credits",
                    },
                },
                "quantity": 1,
            }
        ],
        # {CHECKOUT_SESSION_ID} is filled in by Stripe (docs/providers/stripe.md#endpoints).
        "success_url": success_url or f"{base}/credits?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": cancel_url or f"{base}/credits?checkout=canceled",
        "client_reference_id": user.id,
        "customer_email": user.email,
        # Metadata lets the webhook rebuild the payment if we crashed between Stripe's answer and our commit.
        "metadata": {
            "payment_id": payment_id,
            "user_id": user.id,
            "account_id": account_id,
            "package": package.id,
            "credits": str(package.total_credits),
        },
    }
    created = await _create_session(ctx, key, params, idempotency_key=payment_id)
    now = ctx.clock()
    payment = Payment(
        id=payment_id,
        user_id=user.id,
        account_id=account_id,
        stripe_session_id=str(created["id"]),
        stripe_payment_intent=None,
        package=package.id,
        credits=package.total_credits,
        bonus=package.bonus,
        amount=package.price,
        currency=package.currency,
        status="open",
        amount_refunded=0,
        amount_disputed=0,
        credits_reversed=0,
        credits_unrecovered=0,
        created_at=now,
        updated_at=now,
        paid_at=None,
    )
    await ctx.db.write(lambda tx: payment_queries.insert_payment(tx, payment))
    return Checkout(payment_id=payment_id, session_id=str(created["id"]), url=str(created["url"]))


PAYMENTS_CHECK_SECONDS = 60.0
PAYMENTS_CHECK_TIMEOUT = 3.0


class _HTTPXClient(stripe.HTTPXClient):
    """stripe-py passes the encoded form to httpx as `data=`, which httpx deprecates for raw bytes (a
    DeprecationWarning per request); hand it over as `content=` instead, unchanged on the wire."""

    def _get_request_args_kwargs(self, method: str, url: str, headers: Mapping[str, str], post_data: Any) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        data = kwargs.pop("data", None)
        if isinstance(data, bytes | str):
            kwargs["content"] = data
        elif data:
            kwargs["data"] = data
        return [args, kwargs]


async def _create_session(
    ctx: ServiceContext, key: str, params: dict[str, Any], *, idempotency_key: str
) -> dict[str, Any]:
    http = _HTTPXClient(timeout=30)
    base = ctx.config.stripe_api_base
    client = stripe.StripeClient(
        key, base_addresses={"api": base} if base else None, http_client=http, max_network_retries=2
    )
    try:
        # Stripe replays the same answer for the same key, so the library's retries never open two sessions.
        created = await client.v1.checkout.sessions.create_async(
            params,  # type: ignore[arg-type]
            {"idempotency_key": f"checkout-{idempotency_key}"},
        )
    except stripe.StripeError as exc:
        raise ServiceUnavailable(
            "The payment provider could not start a checkout; try again shortly.",
            details={"provider_message": exc.user_message or str(exc)},
        ) from exc
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]
    return {"id": created.id, "url": created.url}


async def check_stripe(ctx: ServiceContext) -> dict[str, Any] | None:
    """For /readyz: whether Stripe accepts our key and answers (None when purchases are not configured).
    Stripe is asked at most once per PAYMENTS_CHECK_SECONDS; a load balancer's probes get the last answer."""
    key = ctx.config.stripe_secret_key
    if not key:
        return None
    now = time.monotonic()
    if ctx.payments_health is not None and now - ctx.payments_health[0] < PAYMENTS_CHECK_SECONDS:
        return ctx.payments_health[1]
    http = _HTTPXClient(timeout=PAYMENTS_CHECK_TIMEOUT)
    base = ctx.config.stripe_api_base
    client = stripe.StripeClient(key, base_addresses={"api": base} if base else None, http_client=http)
    try:
        await client.v1.balance.retrieve_async()
        result: dict[str, Any] = {"ok": True}
    except stripe.AuthenticationError:
        result = {"ok": False, "error": "Stripe refused the secret key"}
    except stripe.StripeError as exc:
        result = {"ok": False, "error": f"Stripe did not answer: {type(exc).__name__}"}
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]
    ctx.payments_health = (now, result)
    return result


async def list_payments(ctx: ServiceContext, user_id: str | None = None, *, limit: int = 50) -> list[Payment]:
    return await ctx.db.read(lambda tx: payment_queries.recent_payments(tx, user_id, limit=limit))


async def organization_payments(
    ctx: ServiceContext, organization_id: str, user_id: str, *, limit: int = 50
) -> list[Payment]:
    """The purchases for an organization's wallet, for its owners and admins (404 outside it, 403 for members)."""

    def read(tx: Tx) -> list[Payment]:
        organizations.managing_in(tx, organization_id, user_id)
        return payment_queries.recent_payments_to_account(tx, organization_id, limit=limit)

    return await ctx.db.read(read)


# ---------------------------------------------------------------- admin grants and adjustments


@dataclass(frozen=True)
class AdjustResult:
    requested: int
    applied: int  # a removal is capped by what is available; the rest is reported, never owed
    available: int


def _reason(reason: str) -> str:
    cleaned = reason.strip()
    if not cleaned:
        raise ValidationFailed("reason", "A reason is required; it is kept in the ledger.")
    return cleaned[:500]


async def _actor_note(ctx: ServiceContext, reason: str, actor_id: str | None) -> str:
    if actor_id is None:
        return reason
    actor = await ctx.db.read(lambda tx: user_queries.user_by_id(tx, actor_id))
    return f"{reason} (by {actor.email if actor else actor_id})"


async def grant_credits(
    ctx: ServiceContext, user_id: str, amount: int, *, reason: str, actor_id: str | None = None
) -> AdjustResult:
    """An operator's gift of credits (kind `grant`)."""
    if amount <= 0:
        raise ValidationFailed("amount", "A grant must be a positive number of credits.")
    note = await _actor_note(ctx, _reason(reason), actor_id)
    reference = new_id("grant")

    def grant(tx: Tx) -> AdjustResult:
        _require_account(tx, user_id)
        ledger_queries.credit_account(tx, user_id, amount, kind=EntryKind.GRANT, reference=reference, note=note)
        return AdjustResult(requested=amount, applied=amount, available=ledger.credits_in(tx, user_id).available)

    return await ctx.db.write(grant)


async def adjust_credits(
    ctx: ServiceContext, user_id: str, amount: int, *, reason: str, actor_id: str | None = None
) -> AdjustResult:
    """A correction (kind `adjust`), positive or negative; a removal never takes the balance below zero."""
    if amount == 0:
        raise ValidationFailed("amount", "An adjustment must not be zero.")
    note = await _actor_note(ctx, _reason(reason), actor_id)
    reference = new_id("adj")

    def adjust(tx: Tx) -> AdjustResult:
        _require_account(tx, user_id)
        if amount > 0:
            ledger_queries.credit_account(tx, user_id, amount, kind=EntryKind.ADJUST, reference=reference, note=note)
            applied = amount
        else:
            taken = ledger_queries.debit_available(
                tx, user_id, -amount, kind=EntryKind.ADJUST, reference=reference, note=note
            )
            applied = -taken
        return AdjustResult(requested=amount, applied=applied, available=ledger.credits_in(tx, user_id).available)

    return await ctx.db.write(adjust)


def _require_account(tx: Tx, account_id: str) -> None:
    """A ledger account is a user's or an organization's (its wallet); both take grants and adjustments."""
    if not user_queries.user_exists(tx, account_id) and not org_queries.organization_exists(tx, account_id):
        raise NotFound("No user or organization with this id.")


async def set_flagged(ctx: ServiceContext, user_id: str, flagged: bool) -> None:
    """Clears (or sets) the flag a refund or dispute left on an account the balance could not cover."""
    await ctx.db.write(lambda tx: user_queries.set_flagged(tx, user_id, flagged))
