"""Sends due client webhooks: claim, SSRF check, sign, POST with a timeout, log the attempt, schedule the retry."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from reelgate.db.queries import client_webhooks as webhook_queries
from reelgate.db.queries.generations import generation_by_id
from reelgate.db.records import Generation, WebhookDelivery, WebhookEndpoint, WebhookEvent
from reelgate.db.sql import Tx
from reelgate.services import client_webhooks
from reelgate.services.client_webhooks import DeliveryStatus
from reelgate.services.context import ServiceContext
from reelgate.services.safe_fetch import UnsafeURL, check_url, make_guarded_client

log = logging.getLogger("reelgate.client_webhooks")

Presenter = Callable[[Generation, ServiceContext], dict[str, Any]]
ATTEMPT_TIMEOUT = 10.0
# A claimed delivery is not picked again for this long; far above ATTEMPT_TIMEOUT, so only a crash frees it.
CLAIM_SECONDS = 60.0
MAX_IN_FLIGHT = 32
BATCH = 16
_in_flight: set[asyncio.Task[None]] = set()


def basic_presenter(generation: Generation, _ctx: ServiceContext) -> dict[str, Any]:
    """A plain view of the generation, for callers that have no API presenter to hand."""
    return {
        "id": generation.id,
        "status": generation.status,
        "model": generation.model,
        "credits_charged": generation.credits_charged,
        "credits_refunded": generation.credits_refunded,
        "error": {"code": generation.error_code, "message": generation.error_message or ""}
        if generation.error_code and generation.status != "succeeded"
        else None,
    }


@dataclass(frozen=True)
class Outgoing:
    delivery_id: str
    url: str
    body: str
    secrets: list[str]


# ---------------------------------------------------------------- scheduling


def retry_delay(attempt: int) -> float:
    """Seconds before the next try after `attempt` failed tries, with ±10 % jitter so retries spread out."""
    delays = client_webhooks.RETRY_DELAYS
    base = delays[min(attempt, len(delays)) - 1]
    return float(base) * random.uniform(0.9, 1.1)


async def _claim(ctx: ServiceContext, limit: int) -> list[str]:
    """Pushes next_attempt_at forward with a compare-and-set, so two workers never send the same delivery."""
    now = ctx.clock()
    candidates = await ctx.db.read(lambda tx: webhook_queries.due_deliveries(tx, now, limit))
    if not candidates:
        return []
    until = now + timedelta(seconds=CLAIM_SECONDS)

    def claim(tx: Tx) -> list[str]:
        return [d for d in candidates if webhook_queries.claim_delivery(tx, d, now=now, until=until)]

    return await ctx.db.write(claim)


_Parts = tuple[WebhookDelivery, WebhookEvent, Generation, WebhookEndpoint | None]


def _parts(tx: Tx, delivery_id: str) -> _Parts | None:
    delivery = webhook_queries.delivery_by_id(tx, delivery_id)
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return None
    event = webhook_queries.event_by_id(tx, delivery.event_id)
    generation = generation_by_id(tx, event.generation_id) if event else None
    if event is None or generation is None:
        return None
    endpoint = webhook_queries.endpoint_by_id(tx, delivery.endpoint_id) if delivery.endpoint_id else None
    return delivery, event, generation, endpoint


async def _prepare(ctx: ServiceContext, delivery_id: str, present: Presenter) -> Outgoing | None:
    parts = await ctx.db.read(lambda tx: _parts(tx, delivery_id), snapshot=True)
    if parts is None:
        return None
    delivery, event, generation, endpoint = parts
    holder = endpoint if endpoint is not None else await client_webhooks.callback_secret(ctx, delivery.user_id)
    keys = client_webhooks.signing_secrets(holder, ctx.clock())
    payload = {"type": event.type, "timestamp": event.created_at.isoformat(), "data": present(generation, ctx)}
    return Outgoing(delivery.id, delivery.url, json.dumps(payload, separators=(",", ":")), keys)


# ---------------------------------------------------------------- sending


async def _guard(url: str, allow_hosts: frozenset[str]) -> None:
    """The SSRF guard on the URL, then on every address its host resolves to (a public name may point inside)."""
    check_url(url, allow_hosts=allow_hosts)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in allow_hosts or f"{host}:{parts.port}" in allow_hosts:
        return
    try:
        ipaddress.ip_address(host)
        return  # a literal address was judged by check_url already
    except ValueError:
        pass
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError as exc:
        raise UnsafeURL(f"the host does not resolve ({exc})") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            raise UnsafeURL("the host resolves to a private address")


def _headers(outgoing: Outgoing, sent_at: datetime) -> dict[str, str]:
    signatures = " ".join(Webhook(key).sign(outgoing.delivery_id, sent_at, outgoing.body) for key in outgoing.secrets)
    return {
        "content-type": "application/json",
        "user-agent": "reelgate-webhooks/1",
        "webhook-id": outgoing.delivery_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures,
    }


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    final: bool = False  # no point retrying (the guard refused the URL)
    duration_ms: int = 0


async def _post(client: httpx.AsyncClient, ctx: ServiceContext, outgoing: Outgoing) -> Outcome:
    try:
        await _guard(outgoing.url, ctx.config.fetch_allow_hosts)
    except UnsafeURL as exc:
        return Outcome(ok=False, error=f"refused by the SSRF guard: {exc.reason}", final=True)
    started = time.monotonic()
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT):
            request = client.build_request(
                "POST", outgoing.url, content=outgoing.body.encode(), headers=_headers(outgoing, ctx.clock())
            )
            response = await client.send(request, stream=True)
            await response.aclose()  # the body is not used; do not read an endless one
    except TimeoutError:
        return Outcome(ok=False, error=f"no answer within {ATTEMPT_TIMEOUT:g} s", duration_ms=_ms(started))
    except httpx.HTTPError as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:500], duration_ms=_ms(started))
    ok = 200 <= response.status_code < 300
    error = None if ok else f"HTTP {response.status_code}"
    return Outcome(ok=ok, status_code=response.status_code, error=error, duration_ms=_ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _record(ctx: ServiceContext, delivery_id: str, outcome: Outcome) -> None:
    now = ctx.clock()

    def record(tx: Tx) -> None:
        delivery = webhook_queries.delivery_by_id(tx, delivery_id)
        if delivery is None:
            return
        webhook_queries.insert_attempt(
            tx,
            delivery_id,
            at=now,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
        delivery.attempts += 1
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        delivery.updated_at = now
        if delivery.status == DeliveryStatus.PENDING:  # else its endpoint was deleted meanwhile: no retry
            if outcome.ok:
                delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, now, None
            elif outcome.final or delivery.attempts >= delivery.max_attempts:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            else:
                delivery.next_attempt_at = now + timedelta(seconds=retry_delay(delivery.attempts))
        webhook_queries.save_delivery(tx, delivery)

    await ctx.db.write(record)


async def _deliver_one(client: httpx.AsyncClient, ctx: ServiceContext, delivery_id: str, present: Presenter) -> None:
    try:
        outgoing = await _prepare(ctx, delivery_id, present)
        if outgoing is None:
            return
        outcome = await _post(client, ctx, outgoing)
        await _record(ctx, delivery_id, outcome)
    except Exception:  # one broken delivery must not stop the others; its claim expires and it is retried
        log.exception("webhook delivery %s failed", delivery_id)


async def run_due(ctx: ServiceContext, present: Presenter = basic_presenter, *, limit: int = BATCH) -> int:
    """Claims and sends due deliveries, waiting for them; returns how many were attempted."""
    claimed = await _claim(ctx, limit)
    if claimed:
        # The guarded client connects only to addresses it validated itself, closing the DNS-rebinding
        # window between _guard's check and the connection.
        async with make_guarded_client(allow_hosts=ctx.config.fetch_allow_hosts, timeout=ATTEMPT_TIMEOUT) as client:
            await asyncio.gather(*(_deliver_one(client, ctx, d, present) for d in claimed))
    return len(claimed)


async def _run_logged(ctx: ServiceContext, present: Presenter) -> None:
    try:
        await run_due(ctx, present)
    except Exception:  # e.g. a database blip; the next tick tries again
        log.exception("client webhook batch failed")


async def deliver_due(ctx: ServiceContext, present: Presenter = basic_presenter) -> int:
    """The worker's periodic job: starts a batch in the background and returns at once, so a slow
    receiver never holds up the generation pipeline. In-flight sends are bounded by MAX_IN_FLIGHT."""
    room = MAX_IN_FLIGHT - len(_in_flight) * BATCH
    if room < BATCH:
        return 0
    task = asyncio.create_task(_run_logged(ctx, present), name="client-webhooks")
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    return 1
