"""Campaigns: a project's optional budget in credits, what the project has spent against it, and the check a
submit runs inside its own transaction so no burst of submits can overshoot it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from reelgate.db.queries import budgets as budget_queries
from reelgate.db.queries import projects as project_queries
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound, ReelgateError, ValidationFailed
from reelgate.services.context import ServiceContext
from reelgate.services.provider_costs import MICROS, job_provider_cost_micros, to_work_out

MAX_BUDGET = 1_000_000_000_000  # far above any real campaign; keeps the figure inside a BIGINT with room to add


class BudgetExceeded(ReelgateError):
    """The project's captured + held credits would pass its budget: 402 like insufficient credits, its own code."""

    status_code = 402
    code = "budget_exceeded"


def clean_budget(budget: object) -> int | None:
    """A budget is a positive whole number of credits, or None (no budget)."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_BUDGET:
        raise ValidationFailed(
            "budget_credits",
            f"A budget is a whole number of credits from 1 to {MAX_BUDGET}, or null for none.",
            allowed={"minimum": 1, "maximum": MAX_BUDGET},
        )
    return budget


def check_in(tx: Tx, project_id: str, required: int) -> None:
    """Inside the submit's transaction, after its insert and hold: refuses the generation (402) when the project's
    captured + held credits, this quote included, would pass its budget; the raise rolls back the hold and the
    insert. The project's row is locked first (PostgreSQL), so concurrent submits into one project count one after
    another and a burst cannot all see the same "before". An organization's project counts every member's
    generations, so the budget caps the team, not each member."""
    budget = budget_queries.budget_locked(tx, project_id)
    if budget is None:
        return
    captured, held = budget_queries.spend(tx, project_id)
    held -= required  # the submit's own hold is in the sum already
    if captured + held + required > budget:
        raise BudgetExceeded(
            f"This project's budget is {budget} credits: {captured} spent and {held} held by unfinished "
            f"generations leave {max(budget - captured - held, 0)}, and this generation needs {required}.",
            details={"project_id": project_id, "budget": budget, "spent": captured, "held": held, "required": required},
        )


@dataclass(frozen=True)
class ProjectSpend:
    """What a project (a campaign) has cost: credits, and the operator's provider cost and margin on them."""

    budget: int | None
    captured: int
    held: int
    remaining: int | None  # budget − captured − held, never below zero; None without a budget
    revenue_micros: int
    provider_cost_micros: int
    margin_micros: int
    currency: str
    generations: dict[str, int] = field(default_factory=dict)  # count per state, deleted ones included


async def project_spend(ctx: ServiceContext, user_id: str, project_id: str) -> ProjectSpend:
    """The project's spend, read in one snapshot. Provider cost and margin are those the revenue report gives
    (analytics.job_margin): the recorded costs summed by the database, and jobs from before costs were recorded
    worked out from the catalog."""

    def read(
        tx: Tx,
    ) -> tuple[int | None, tuple[int, int], dict[str, int], list[budget_queries.CostGroup], list[Generation]]:
        project = project_queries.project_of_user(tx, user_id, project_id)
        if project is None:
            raise NotFound("Project not found.")
        groups = budget_queries.cost_groups(tx, project_id)
        unrecorded = to_work_out(ctx.catalog, (group.served_model for group in groups if not group.cost_recorded))
        return (
            project.budget_credits,
            budget_queries.spend(tx, project_id),
            budget_queries.generations_per_status(tx, project_id),
            groups,
            budget_queries.jobs_without_recorded_cost(tx, project_id, unrecorded),
        )

    budget, (captured, held), per_status, groups, unrecorded = await ctx.db.read(read, snapshot=True)
    revenue = sum(group.credits for group in groups) * int(ctx.catalog.credit_unit.value * MICROS)
    # Off the event loop: a project's older jobs can be many, and each one's cost takes a while to work out.
    worked_out = await asyncio.to_thread(lambda: sum(job_provider_cost_micros(ctx.catalog, g) for g in unrecorded))
    cost = sum(group.provider_cost_micros for group in groups) + worked_out
    return ProjectSpend(
        budget=budget,
        captured=captured,
        held=held,
        remaining=None if budget is None else max(budget - captured - held, 0),
        revenue_micros=revenue,
        provider_cost_micros=cost,
        margin_micros=revenue - cost,
        currency=ctx.catalog.credit_unit.currency,
        generations=per_status,
    )
