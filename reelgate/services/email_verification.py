"""Address verification: with SMTP configured, a new account's sign-up credits wait until its owner follows
the link in a verification email (a single-use, expiring token, only its hash stored)."""

from __future__ import annotations

from datetime import timedelta

from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.queries import mail as mail_queries
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound
from reelgate.domain.ledger import EntryKind
from reelgate.services import mail
from reelgate.services.context import ServiceContext

PURPOSE = "verify_email"
INVALID_LINK = "This confirmation link is not valid any more."
RECENT_LIMIT = 3
RECENT_WINDOW = timedelta(minutes=15)


def required(ctx: ServiceContext) -> bool:
    """Only a real mail server can prove an address: the mail folder of embedded mode cannot."""
    return bool(ctx.config.smtp_url)


def signup_reference(user_id: str) -> str:
    """The sign-up grant's ledger reference: unique, so an account gets it once, verified or not."""
    return f"signup:{user_id}"


def queue_verification(ctx: ServiceContext, tx: Tx, user_id: str) -> None:
    """In the sign-up's transaction."""
    payload = {"signup_credits": ctx.config.signup_credits}
    mail.queue_token_email(tx, user_id, PURPOSE, ctx.clock(), payload)


async def pending(ctx: ServiceContext, user_id: str) -> bool:
    """The account signed up with verification and has not confirmed its address yet."""
    return await ctx.db.read(lambda tx: mail_queries.has_unused_token(tx, user_id, PURPOSE))


async def resend(ctx: ServiceContext, user_id: str) -> bool:
    """A new confirmation email for an unconfirmed account (at most RECENT_LIMIT per RECENT_WINDOW); False when
    there is nothing to confirm or the limit is reached."""
    now = ctx.clock()

    def again(tx: Tx) -> bool:
        if not mail_queries.has_unused_token(tx, user_id, PURPOSE):
            return False
        if mail_queries.tokens_made_since(tx, user_id, PURPOSE, now - RECENT_WINDOW) >= RECENT_LIMIT:
            return False
        queue_verification(ctx, tx, user_id)
        return True

    return await ctx.db.write(again)


async def verify(ctx: ServiceContext, token: str) -> int:
    """Uses the token and grants the sign-up credits in the same transaction; returns the credits granted."""
    now = ctx.clock()
    credits = ctx.config.signup_credits

    def use(tx: Tx) -> int:
        found = mail_queries.token_by_hash(tx, mail.hash_token(token), PURPOSE)
        if found is None or not mail_queries.use_token(tx, found.id, now):
            raise NotFound(INVALID_LINK)
        mail_queries.use_all_tokens(tx, found.user_id, PURPOSE, now)  # the address is confirmed: the rest are moot
        if credits <= 0:
            return 0
        granted = ledger_queries.credit_account(
            tx,
            found.user_id,
            credits,
            kind=EntryKind.GRANT,
            reference=signup_reference(found.user_id),
            note="Sign-up credits (address verified)",
        )
        return credits if granted else 0

    return await ctx.db.write(use)
