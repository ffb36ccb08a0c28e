"""Password reset by email: a single-use, expiring token (only its hash stored), asked for by the account holder
("forgot password", answered the same whether or not the account exists) or sent by an administrator.

Every new password set through a reset goes through `reset_password`."""

from __future__ import annotations

from datetime import timedelta

from reelgate.db.queries import mail as mail_queries
from reelgate.db.queries import sessions as session_queries
from reelgate.db.queries import users as user_queries
from reelgate.db.sql import Tx
from reelgate.domain.errors import Conflict, NotFound, ValidationFailed
from reelgate.services import accounts, mail
from reelgate.services.context import ServiceContext

PURPOSE = "password_reset"
# At most this many reset emails per account in RECENT_WINDOW, however often the form is sent.
RECENT_LIMIT = 3
RECENT_WINDOW = timedelta(minutes=15)
INVALID_LINK = "This reset link is not valid any more. Ask for a new one."


async def request_reset(ctx: ServiceContext, email: str, *, by_admin: bool = False) -> bool:
    """Queues a reset email for the account with this address, if there is one and mail is set up. The caller
    answers the same either way; the result (whether an email was queued) is for administrators and tests."""
    address = email.strip().lower()[:320]
    if not mail.enabled(ctx):
        return False
    now = ctx.clock()

    def ask(tx: Tx) -> bool:
        user = user_queries.user_by_email(tx, address)
        if user is None or user.disabled:
            return False
        if not by_admin and mail_queries.tokens_made_since(tx, user.id, PURPOSE, now - RECENT_WINDOW) >= RECENT_LIMIT:
            return False
        mail.queue_token_email(tx, user.id, PURPOSE, now, {"by_admin": by_admin})
        return True

    return await ctx.db.write(ask)


async def send_reset_link(ctx: ServiceContext, user_id: str) -> None:
    """The administrator's action: a reset email for this account (NotFound for no such account)."""
    user = await accounts.get_user(ctx, user_id)
    if user.disabled:
        raise Conflict("This account is disabled; enable it before sending it a reset link.")
    if not mail.enabled(ctx):
        raise ValidationFailed("email", "Email is not set up on this site (no SMTP server or mail folder).")
    await request_reset(ctx, user.email, by_admin=True)


async def check_token(ctx: ServiceContext, token: str) -> bool:
    """Whether the link can still be used (the reset page shows its form only then)."""
    now = ctx.clock()
    found = await ctx.db.read(lambda tx: mail_queries.token_by_hash(tx, mail.hash_token(token), PURPOSE))
    return found is not None and found.used_at is None and found.expires_at > now


async def redeem(ctx: ServiceContext, token: str, new_password: str) -> str:
    """Uses the token (once) and sets the new password; returns the account's id."""
    accounts.check_password_rules(new_password)
    now = ctx.clock()

    def use(tx: Tx) -> str:
        found = mail_queries.token_by_hash(tx, mail.hash_token(token), PURPOSE)
        if found is None or not mail_queries.use_token(tx, found.id, now):
            raise NotFound(INVALID_LINK)
        # Any other reset link of the account stops working too.
        mail_queries.use_all_tokens(tx, found.user_id, PURPOSE, now)
        return found.user_id

    user_id = await ctx.db.write(use)
    await reset_password(ctx, user_id, new_password)
    return user_id


async def reset_password(ctx: ServiceContext, user_id: str, new_password: str) -> None:
    """The one place a reset sets a new password. Every session of the account ends with it (whoever knew the
    old password is signed out); API keys stay, as they are not the password (the owner can revoke them)."""
    accounts.check_password_rules(new_password)
    new_hash = await accounts.hash_password(new_password)

    def reset(tx: Tx) -> None:
        user_queries.set_password_hash(tx, user_id, new_hash)
        session_queries.delete_sessions_of(tx, user_id)

    await ctx.db.write(reset)
    accounts.forget_cached_user(user_id)
