"""Member spend caps on an organization's wallet: an owner or admin caps what a member may spend from it per UTC day
and per calendar month, and sees what each member spent.

The check runs in the submit's transaction, after its hold: the hold's UPDATE has locked the wallet's balance row
(PostgreSQL; SQLite's single writer serializes every submit), so concurrent submits on one wallet count one after
another and a burst cannot pass the cap, as with the service's own spend caps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from reelgate.db.queries import organizations as org_queries
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound, ValidationFailed
from reelgate.services import organizations as orgs
from reelgate.services.context import ServiceContext
from reelgate.services.limits import SpendCapReached

MAX_CAP = 10**12


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def check_member_cap(tx: Tx, account_id: str, user_id: str, total: int, now: datetime) -> None:
    """Refuses (402, with the figures) a submit on the wallet that would take the member past a cap."""
    member = org_queries.member(tx, account_id, user_id)
    if member is None:
        return
    for cap, since, period in (
        (member.daily_cap, day_start(now), "day"),
        (member.monthly_cap, month_start(now), "month"),
    ):
        if cap is None:
            continue
        # The submit's own generation is in the sum already: it is counted once, as `total`.
        spent = org_queries.member_spent_since(tx, account_id, user_id, since) - total
        if spent + total > cap:
            raise SpendCapReached(
                f"Your spending cap on this organization's wallet is {cap} credits a {period} ({spent} spent, this "
                f"needs {total}). Ask an owner or admin of the organization to raise it.",
                details={"scope": f"member_{period}", "cap": cap, "spent": spent, "required": total},
            )


def _check(value: int | None, field: str) -> int | None:
    if value is not None and not 0 <= value <= MAX_CAP:
        raise ValidationFailed(field, f"A cap is between 0 and {MAX_CAP} credits, or null for none.")
    return value


async def set_caps(
    ctx: ServiceContext, organization_id: str, actor_id: str, user_id: str, daily: int | None, monthly: int | None
) -> None:
    daily, monthly = _check(daily, "daily_cap"), _check(monthly, "monthly_cap")

    def save(tx: Tx) -> None:
        actor = orgs.managing_in(tx, organization_id, actor_id)
        target = org_queries.member(tx, organization_id, user_id)
        if target is None:
            raise NotFound("Member not found.")
        orgs.may_touch(actor, target.role)
        org_queries.set_caps(tx, organization_id, user_id, daily, monthly)

    await ctx.db.write(save)


@dataclass(frozen=True)
class MemberSpend:
    user_id: str
    email: str
    role: str
    spent_today: int
    spent_this_month: int
    daily_cap: int | None
    monthly_cap: int | None


async def spend(ctx: ServiceContext, organization_id: str, actor_id: str) -> list[MemberSpend]:
    """Each current member's spend on the wallet today and this month, with their caps (owners and admins)."""
    now = ctx.clock()

    def read(tx: Tx) -> list[MemberSpend]:
        orgs.managing_in(tx, organization_id, actor_id)
        sums = org_queries.spend_per_member(tx, organization_id, day_start(now), month_start(now))
        return [
            MemberSpend(
                user_id=m.user_id,
                email=u.email,
                role=m.role,
                spent_today=sums.get(m.user_id, (0, 0))[0],
                spent_this_month=sums.get(m.user_id, (0, 0))[1],
                daily_cap=m.daily_cap,
                monthly_cap=m.monthly_cap,
            )
            for m, u in org_queries.members(tx, organization_id)
        ]

    return await ctx.db.read(read)
