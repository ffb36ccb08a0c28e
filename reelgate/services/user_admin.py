"""The administrators' actions on users: disable, enable, promote, demote, each written to the audit log in the
same transaction as the change; credit grants are logged too.

Disabling ends the user's sessions at once and makes their API keys answer 401 (keys are kept, so enabling
gives them back); generations already running finish and settle as usual (nothing is refunded for the
disabling, so nothing can be refunded twice). An administrator cannot disable or demote themselves, and the
last enabled administrator cannot be disabled or demoted.
"""

from __future__ import annotations

from typing import Any

from reelgate.db.queries import audit as audit_queries
from reelgate.db.queries import sessions as session_queries
from reelgate.db.queries import users as user_queries
from reelgate.db.records import AuditEntry, User
from reelgate.db.sql import Tx
from reelgate.domain.errors import Conflict, NotFound
from reelgate.domain.ids import new_id
from reelgate.services.accounts import forget_cached_user
from reelgate.services.context import ServiceContext

DISABLE, ENABLE, PROMOTE, DEMOTE, GRANT = "user.disable", "user.enable", "user.promote", "user.demote", "credits.grant"
ADJUST = "credits.adjust"
RESET_LINK = "user.reset_link"


def _entry(
    ctx: ServiceContext, actor_id: str | None, action: str, target: User | None, detail: str, data: dict[str, Any]
) -> AuditEntry:
    return AuditEntry(
        id=new_id("aud"),
        actor_id=actor_id,
        action=action,
        target_user_id=target.id if target else None,
        target_email=target.email if target else "",
        detail=detail[:500],
        data=data,
        created_at=ctx.clock(),
    )


def _target(tx: Tx, user_id: str) -> User:
    user = user_queries.user_by_id(tx, user_id)
    if user is None:
        raise NotFound("User not found.")
    return user


def _check_not_last_admin(tx: Tx, target: User, doing: str) -> None:
    if target.is_admin and not target.disabled and user_queries.count_active_admins(tx) <= 1:
        raise Conflict(f"This is the last enabled administrator: {doing} would leave nobody to run the site.")


async def set_disabled(
    ctx: ServiceContext, actor_id: str | None, user_id: str, disabled: bool, *, reason: str = ""
) -> bool:
    """Disables or enables a user; False when they already were. Disabling ends every session at once."""
    if disabled and actor_id == user_id:
        raise Conflict("You cannot disable your own account.")

    def change(tx: Tx) -> bool:
        target = _target(tx, user_id)
        if disabled:
            _check_not_last_admin(tx, target, "disabling it")
        if not user_queries.set_disabled(tx, user_id, disabled):
            return False
        ended = session_queries.delete_sessions_of(tx, user_id) if disabled else 0
        action = DISABLE if disabled else ENABLE
        data: dict[str, Any] = {"sessions_ended": ended} if disabled else {}
        audit_queries.insert_entry(tx, _entry(ctx, actor_id, action, target, reason, data))
        return True

    changed = await ctx.db.write(change)
    forget_cached_user(user_id)
    return changed


async def set_admin(ctx: ServiceContext, actor_id: str | None, user_id: str, is_admin: bool) -> bool:
    """Promotes or demotes a user; False when they already had that role."""
    if not is_admin and actor_id == user_id:
        raise Conflict("You cannot remove your own administrator role.")

    def change(tx: Tx) -> bool:
        target = _target(tx, user_id)
        if target.is_admin == is_admin:
            return False
        if not is_admin:
            _check_not_last_admin(tx, target, "demoting it")
        user_queries.set_admin(tx, user_id, is_admin)
        audit_queries.insert_entry(tx, _entry(ctx, actor_id, PROMOTE if is_admin else DEMOTE, target, "", {}))
        return True

    changed = await ctx.db.write(change)
    forget_cached_user(user_id)
    return changed


async def record_credit_change(
    ctx: ServiceContext, actor_id: str | None, user_id: str, amount: int, *, reason: str, kind: str = "grant"
) -> None:
    """Logs a credit grant or adjustment an administrator made (the ledger holds the credits themselves)."""

    def record(tx: Tx) -> None:
        target = user_queries.user_by_id(tx, user_id)
        action = GRANT if kind == "grant" else ADJUST
        # An organization's wallet has no user: the entry names the account in its data.
        data: dict[str, Any] = {"amount": amount} if target else {"amount": amount, "organization_id": user_id}
        audit_queries.insert_entry(tx, _entry(ctx, actor_id, action, target, reason, data))

    await ctx.db.write(record)


async def record_reset_link(ctx: ServiceContext, actor_id: str | None, user_id: str) -> None:
    """Logs that an administrator sent the account a password-reset link."""

    def record(tx: Tx) -> None:
        target = user_queries.user_by_id(tx, user_id)
        audit_queries.insert_entry(tx, _entry(ctx, actor_id, RESET_LINK, target, "", {}))

    await ctx.db.write(record)


async def audit_log(ctx: ServiceContext, *, user_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
    return await ctx.db.read(lambda tx: audit_queries.latest_entries(tx, user_id=user_id, limit=limit))


async def emails_of(ctx: ServiceContext, user_ids: set[str]) -> dict[str, str]:
    """Email addresses of the actors in a page of the audit log."""

    def read(tx: Tx) -> dict[str, str]:
        users = (user_queries.user_by_id(tx, user_id) for user_id in user_ids)
        return {user.id: user.email for user in users if user is not None}

    return await ctx.db.read(read)
