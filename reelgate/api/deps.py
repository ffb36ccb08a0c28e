"""Shared FastAPI dependencies: the service context and the signed-in user (API key or studio session)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from reelgate.db.records import User
from reelgate.domain.errors import Forbidden, Unauthorized
from reelgate.services import accounts
from reelgate.services.context import ServiceContext

SESSION_COOKIE = "rg_session"
SESSION_MAX_AGE = 14 * 24 * 3600
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


@dataclass(frozen=True)
class StudioSession:
    user_id: str
    csrf: str


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.settings.session_secret, salt="reelgate-session")


def cookie_secure(request: Request) -> bool:
    """Cookies are Secure whenever the public URL is https, even when the proxy in front says nothing of the
    scheme (no trusted X-Forwarded-Proto): a browser then never sends them over plain http."""
    return bool(request.app.state.settings.serves_https) or request.url.scheme == "https"


def issue_session(request: Request, response: Response, user_id: str) -> StudioSession:
    session = StudioSession(user_id=user_id, csrf=secrets.token_urlsafe(24))
    token = _serializer(request).dumps({"u": session.user_id, "c": session.csrf})
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
    )
    return session


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)


def read_session(request: Request) -> StudioSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        data = _serializer(request).loads(token, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    return StudioSession(user_id=str(data["u"]), csrf=str(data["c"]))


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
        user = await accounts.authenticate_api_key(ctx, credential.strip())
        request.state.auth = "api_key"
        return user
    session = read_session(request)
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
