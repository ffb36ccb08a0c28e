"""Studio sessions kept on the server: started at sign-in, found by the hash of the cookie's token, ended by
sign-out, "sign out everywhere", a password change or a disabled account. Each ends at once: the next request
with the cookie finds no row.

A session ends by itself after `IDLE` without a request, and `LIFETIME` after sign-in whatever its use.
Sensitive actions (creating an API key) ask for the password again once the password was last typed more
than `REAUTHENTICATE_AFTER` ago.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from reelgate.db.queries import sessions as session_queries
from reelgate.db.records import Session
from reelgate.db.sql import Tx
from reelgate.services.context import ServiceContext

IDLE = timedelta(hours=24)
LIFETIME = timedelta(days=7)
REAUTHENTICATE_AFTER = timedelta(minutes=5)
_LAST_USED_RESOLUTION = timedelta(minutes=1)  # don't write on every request


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(ctx: ServiceContext, user_id: str, *, user_agent: str, address: str) -> tuple[str, Session]:
    """A new session for a user who just typed their password: (the cookie's token, the row)."""
    token = secrets.token_urlsafe(32)
    now = ctx.clock()
    session = Session(
        id=_hash(token),
        user_id=user_id,
        csrf=secrets.token_urlsafe(24),
        created_at=now,
        authenticated_at=now,
        last_used_at=now,
        user_agent=user_agent[:200],
        address=address[:64],
    )

    def insert(tx: Tx) -> None:
        session_queries.delete_stale_sessions(tx, now - IDLE, now - LIFETIME)
        session_queries.insert_session(tx, session)

    await ctx.db.write(insert)
    return token, session


async def resolve_session(ctx: ServiceContext, token: str) -> Session | None:
    """The live session a cookie's token names, or None (unknown, ended, idle too long or too old)."""
    if not token or len(token) > 200:
        return None
    session_id = _hash(token)
    session = await ctx.db.read(lambda tx: session_queries.session_by_id(tx, session_id))
    if session is None:
        return None
    now = ctx.clock()
    if session.last_used_at < now - IDLE or session.created_at < now - LIFETIME:
        await ctx.db.write(lambda tx: session_queries.delete_session(tx, session.user_id, session_id))
        return None
    if now - session.last_used_at > _LAST_USED_RESOLUTION:
        await ctx.db.write(lambda tx: session_queries.touch_session(tx, session_id, now))
        session.last_used_at = now
    return session


async def list_sessions(ctx: ServiceContext, user_id: str) -> list[Session]:
    now = ctx.clock()
    rows = await ctx.db.read(lambda tx: session_queries.sessions_of(tx, user_id))
    return [s for s in rows if s.last_used_at >= now - IDLE and s.created_at >= now - LIFETIME]


async def end_session(ctx: ServiceContext, user_id: str, session_id: str) -> bool:
    """Ends one of the user's sessions; False when it was not theirs or had ended already."""
    return await ctx.db.write(lambda tx: session_queries.delete_session(tx, user_id, session_id))


async def end_sessions(ctx: ServiceContext, user_id: str, *, keep: str | None = None) -> int:
    """Ends every session of the user but `keep`; how many ended."""
    return await ctx.db.write(lambda tx: session_queries.delete_sessions_of(tx, user_id, keep=keep))


def needs_password_since(ctx: ServiceContext, authenticated_at: datetime) -> bool:
    """Whether a session whose password was last typed at `authenticated_at` must ask for it again."""
    return ctx.clock() - authenticated_at > REAUTHENTICATE_AFTER


async def mark_reauthenticated(ctx: ServiceContext, session_id: str) -> None:
    now = ctx.clock()
    await ctx.db.write(lambda tx: session_queries.mark_reauthenticated(tx, session_id, now))


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_agent(user_agent: str) -> str:
    """ "Firefox on Linux": enough to recognise one's own devices in the list of sessions."""
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), "")
    if "HeadlessChrome" in user_agent:
        browser = "Headless Chrome"
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or re.sub(r"\s+", " ", user_agent)[:60] or "Unknown client"
