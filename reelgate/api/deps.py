"""Shared FastAPI dependencies: the service context and the signed-in user (API key or studio session)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request, Response

from reelgate.db.records import User
from reelgate.domain.errors import Forbidden, Unauthorized
from reelgate.services import accounts, sessions
from reelgate.services.context import ServiceContext

SESSION_COOKIE = "rg_session"
# The cookie lives as long as the longest session; the server ends it sooner (idle, sign-out, password change).
SESSION_MAX_AGE = int(sessions.LIFETIME.total_seconds())
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


@dataclass(frozen=True)
class StudioSession:
    id: str
    user_id: str
    csrf: str
    authenticated_at: datetime


def cookie_secure(request: Request) -> bool:
    """Cookies are Secure whenever the public URL is https, even when the proxy in front says nothing of the
    scheme (no trusted X-Forwarded-Proto): a browser then never sends them over plain http."""
    return bool(request.app.state.settings.serves_https) or request.url.scheme == "https"


def client_address(request: Request) -> str:
    """The peer's address, or the one a trusted proxy forwarded (uvicorn applies REELGATE_TRUSTED_PROXIES)."""
    return request.client.host if request.client else "unknown"


async def issue_session(request: Request, response: Response, ctx: ServiceContext, user_id: str) -> StudioSession:
    """Starts a server-side session and hands its token to the browser in an HttpOnly cookie."""
    token, row = await sessions.start_session(
        ctx, user_id, user_agent=request.headers.get("user-agent", ""), address=client_address(request)
    )
    session = StudioSession(id=row.id, user_id=row.user_id, csrf=row.csrf, authenticated_at=row.authenticated_at)
    request.state.studio_session = session
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
    )
    return session


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=cookie_secure(request))


async def read_session(request: Request, ctx: ServiceContext) -> StudioSession | None:
    """The live server-side session the request's cookie names (looked up once per request), or None."""
    cached: StudioSession | None | bool = getattr(request.state, "studio_session", False)
    if cached is not False:
        return cached  # type: ignore[return-value]
    token = request.cookies.get(SESSION_COOKIE)
    row = await sessions.resolve_session(ctx, token) if token else None
    session = (
        None
        if row is None
        else StudioSession(id=row.id, user_id=row.user_id, csrf=row.csrf, authenticated_at=row.authenticated_at)
    )
    request.state.studio_session = session
    return session


def check_csrf(session: StudioSession, presented: str | None) -> None:
    if not presented or not hmac.compare_digest(session.csrf, presented):
        raise Forbidden("Missing or invalid CSRF token.", code="csrf_failed")


async def current_user(request: Request, ctx: Ctx) -> User:
    """Bearer API key, or the studio's session cookie (whose writes must carry the CSRF token)."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("Use 'Authorization: Bearer <api key>'.")
        user, organization = await accounts.authenticate_api_key(ctx, credential.strip())
        request.state.auth = "api_key"
        # An organization's key acts as the organization: its submits pay from the organization's wallet.
        request.state.organization = organization
        return user
    session = await read_session(request, ctx)
    if session is None:
        raise Unauthorized("Sign in or send an API key.")
    if request.method not in _SAFE_METHODS:
        check_csrf(session, request.headers.get(CSRF_HEADER))
    try:
        user = await accounts.get_user(ctx, session.user_id)
    except Exception as exc:
        raise Unauthorized("Your session has ended; sign in again.") from exc
    if user.disabled:
        raise Unauthorized("This account is disabled.")
    request.state.auth = "session"
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("Administrators only.")
    return user


AdminUser = Annotated[User, Depends(admin_user)]
