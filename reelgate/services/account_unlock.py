"""Lifting a sign-in lock by email: when an account's guesses are throttled, its owner is sent a single-use
link (only its hash stored) that clears the account's counters, so an attacker guessing at an account cannot
keep its owner out. The answer to the sign-in is the same whether or not the account exists."""

from __future__ import annotations

from datetime import timedelta

from reelgate.db.queries import mail as mail_queries
from reelgate.db.queries import users as user_queries
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound
from reelgate.services import mail
from reelgate.services.context import ServiceContext

PURPOSE = "account_unlock"
# One email per account in this window, however many guesses the lock keeps refusing.
RECENT_WINDOW = timedelta(hours=1)
INVALID_LINK = "This link does not work any more."


async def offer(ctx: ServiceContext, email: str) -> bool:
    """Queues the unlock email for a locked account, at most once per RECENT_WINDOW; False when there is no
    such (enabled) account, mail is off, or one was sent lately. Callers answer the same either way."""
    if not mail.enabled(ctx):
        return False
    address = email.strip().lower()[:320]
    now = ctx.clock()

    def ask(tx: Tx) -> bool:
        user = user_queries.user_by_email(tx, address)
        if user is None or user.disabled:
            return False
        if mail_queries.tokens_made_since(tx, user.id, PURPOSE, now - RECENT_WINDOW) > 0:
            return False
        mail.queue_token_email(tx, user.id, PURPOSE, now)
        return True

    return await ctx.db.write(ask)


async def redeem(ctx: ServiceContext, token: str) -> None:
    """Uses the link (once) and clears the account's sign-in counters."""
    now = ctx.clock()

    def use(tx: Tx) -> str:
        found = mail_queries.token_by_hash(tx, mail.hash_token(token), PURPOSE)
        if found is None or not mail_queries.use_token(tx, found.id, now):
            raise NotFound(INVALID_LINK)
        user = user_queries.user_by_id(tx, found.user_id)
        if user is None or user.disabled:
            raise NotFound(INVALID_LINK)
        return user.email

    email = await ctx.db.write(use)
    await ctx.throttle.password_ok(account=email)
