"""Billing commands for `reelgate`: `credits adjust` and `analytics` (registered by reelgate.cli)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from reelgate.bootstrap import build_context, close_context
from reelgate.domain.errors import ReelgateError
from reelgate.services import accounts, analytics, billing
from reelgate.services.context import ServiceContext
from reelgate.settings import Settings

console = Console()
T = TypeVar("T")


def _run(body: Callable[[ServiceContext], Awaitable[T]]) -> T:
    async def main() -> T:
        ctx = await build_context(Settings())
        try:
            return await body(ctx)
        finally:
            await close_context(ctx)

    try:
        return asyncio.run(main())
    except ReelgateError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


def credits_adjust(
    email: str,
    amount: Annotated[int, typer.Argument(help="Credits to add, or to remove when negative (use -- before it)")],
    reason: Annotated[str, typer.Option(help="Why (required; kept in the ledger)")],
) -> None:
    """Correct a balance up or down; a removal never takes it below zero."""

    async def body(ctx: ServiceContext) -> None:
        user = await accounts.find_user_by_email(ctx, email)
        result = await billing.adjust_credits(ctx, user.id, amount, reason=reason)
        note = "" if result.applied == amount else f" (only {result.applied} could be applied)"
        console.print(f"adjusted {user.email} by {result.applied} credits{note}; available now {result.available}")

    _run(body)


def _money(micros: int) -> str:
    return f"{micros / 1_000_000:,.2f}"


def show_analytics(
    days: Annotated[int, typer.Option(help="How many days back")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole summary as JSON")] = False,
) -> None:
    """Revenue, provider cost and margin per day, model, provider and tier; quality; sales and refunds."""

    async def body(ctx: ServiceContext) -> analytics.Summary:
        return await analytics.summary(ctx, days=days)

    result = _run(body)
    if as_json:
        print(json.dumps(asdict(result), default=str, indent=2))
        return
    cur = result.currency
    for title, buckets in (
        ("day", result.per_day),
        ("model", result.per_model),
        ("provider", result.per_provider),
        ("tier", result.per_tier),
    ):
        table = Table(title, "jobs", "credits", f"revenue {cur}", f"provider cost {cur}", f"margin {cur}")
        for b in [*buckets, result.totals]:
            table.add_row(
                b.key, str(b.jobs), str(b.credits_charged), _money(b.revenue_micros),
                _money(b.provider_cost_micros), _money(b.margin_micros),
            )  # fmt: skip
        console.print(table)
    quality = Table("model", "finished", "succeeded", "success rate", "avg seconds")
    for q in result.models:
        rate = f"{q.success_rate:.1%}" if q.success_rate is not None else "-"
        seconds = f"{q.avg_completion_seconds:.1f}" if q.avg_completion_seconds is not None else "-"
        quality.add_row(q.model, str(q.finished), str(q.succeeded), rate, seconds)
    console.print(quality)
    sold = sum(s.amount for s in result.sales)
    r = result.refunds
    console.print(
        f"sales: {sum(s.payments for s in result.sales)} payments, {sold / 100:,.2f} (minor units / 100); "
        f"refunds: {r.jobs_refunded} jobs ({r.credits_released} credits), {r.payments_reversed} payments "
        f"({r.credits_reversed} credits taken back, {r.credits_unrecovered} unrecovered)"
    )


def register(app: typer.Typer, credits_app: typer.Typer) -> None:
    credits_app.command("adjust")(credits_adjust)
    app.command("analytics")(show_analytics)
