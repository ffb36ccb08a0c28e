"""Project budgets: what a project's generations have captured and hold, and the lock that makes a submit's
budget check and its insert one step.

A project's spend is every generation filed into it, whoever made it: an organization's project counts all its
members. Each caller has checked the project is the user's to see (projects.project_of_user) or the submit's
insert has just placed a row in it, in the same transaction, so these read by project id alone."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from reelgate.db.queries import projects as project_queries
from reelgate.db.queries.analytics import COST_RECORDED, SERVED_BY
from reelgate.db.records import Generation
from reelgate.db.sql import Tx, columns, in_states, query
from reelgate.domain.jobs import ACTIVE_STATES

_ACTIVE = in_states(ACTIVE_STATES)
# Tombstones count: a deleted generation's credits were spent on the campaign all the same. An unfinished job's
# hold is its `credits_held`; a finished one has moved it to `credits_charged` (captured) or refunded it.
_SPEND = query(
    f"""
    SELECT COALESCE(SUM(credits_charged), 0),
        COALESCE(SUM(CASE WHEN status IN {_ACTIVE} THEN credits_held ELSE 0 END), 0)
    FROM generations WHERE project_id = :project_id
    """
)
_BUDGET = query("SELECT budget_credits FROM projects WHERE id = :id")
# NO KEY UPDATE, not UPDATE: a submit's INSERT into generations already holds the project row's KEY SHARE lock (the
# foreign key), which FOR UPDATE would wait on in another submit while that one waits on this one's balance row.
_BUDGET_LOCKED = query(
    "SELECT budget_credits FROM projects WHERE id = :id FOR NO KEY UPDATE",
    sqlite="SELECT budget_credits FROM projects WHERE id = :id",
)
_SET_BUDGET = query(
    "UPDATE projects SET budget_credits = :budget, updated_at = :now "
    f"WHERE id = :id AND {project_queries.MANAGED_BY_USER}"
)
_PER_STATUS = query("SELECT status, count(*) FROM generations WHERE project_id = :project_id GROUP BY status")
# A project's captures summed per serving model, apart for jobs whose provider cost was recorded, as the analytics
# summary sums them: a project's page reads a few groups however many jobs the project has.
_COST_GROUPS = query(
    f"SELECT {SERVED_BY}, {COST_RECORDED}, SUM(e.amount), SUM(g.provider_cost_micros) "
    "FROM ledger_entries e JOIN generations g ON g.id = e.generation_id "
    "WHERE e.kind = 'capture' AND g.project_id = :project_id GROUP BY 1, 2"
)
_UNRECORDED_COST_JOBS = query(
    f"SELECT {columns(Generation, 'g')} FROM ledger_entries e JOIN generations g ON g.id = e.generation_id "
    "WHERE e.kind = 'capture' AND g.project_id = :project_id AND g.provider_cost_micros = 0 "
    f"AND {SERVED_BY} = ANY(:models)",
    row=Generation,
)


def spend(tx: Tx, project_id: str) -> tuple[int, int]:
    """(credits captured, credits held now) by the project's generations, deleted ones included."""
    row = tx.one(_SPEND, {"project_id": project_id})
    return int(row[0]), int(row[1])


def budget_of(tx: Tx, project_id: str) -> int | None:
    found = tx.scalar(_BUDGET, {"id": project_id})
    return None if found is None else int(found)


def budget_locked(tx: Tx, project_id: str) -> int | None:
    """The project's budget, its row locked until the COMMIT (PostgreSQL; SQLite's BEGIN IMMEDIATE already
    serializes writers), so concurrent submits into it count their spend one after another."""
    found = tx.scalar(_BUDGET_LOCKED, {"id": project_id})
    return None if found is None else int(found)


def set_budget(tx: Tx, user_id: str, project_id: str, budget: int | None, now: datetime) -> bool:
    """Sets the budget of a project the user may change (their own, or an organization's they manage)."""
    return tx.run(_SET_BUDGET, {"id": project_id, "user_id": user_id, "budget": budget, "now": now}) == 1


def generations_per_status(tx: Tx, project_id: str) -> dict[str, int]:
    rows = tx.all(_PER_STATUS, {"project_id": project_id})
    return {str(status): int(count) for status, count in rows}


@dataclass(frozen=True)
class CostGroup:
    """A project's captured jobs served by one model, with or without a recorded provider cost."""

    served_model: str
    cost_recorded: bool
    credits: int
    provider_cost_micros: int  # the recorded costs' sum; 0 in a group without them


def cost_groups(tx: Tx, project_id: str) -> list[CostGroup]:
    return [
        CostGroup(served, bool(recorded), int(credits), int(cost or 0))
        for served, recorded, credits, cost in tx.all(_COST_GROUPS, {"project_id": project_id})
    ]


def jobs_without_recorded_cost(tx: Tx, project_id: str, models: Collection[str]) -> list[Generation]:
    """The project's charged jobs that recorded no provider cost and were served by one of `models`."""
    if not models:
        return []
    return tx.all(_UNRECORDED_COST_JOBS, {"project_id": project_id, "models": sorted(models)})
