"""What every studio page shares: templates, the signed-in viewer, CSRF checks, flash messages and toasts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from reelgate.api.deps import CSRF_HEADER, Ctx, StudioSession, check_csrf, cookie_secure, read_session
from reelgate.db.records import User
from reelgate.domain.errors import NotFound, ReelgateError, ValidationFailed
from reelgate.services import accounts, admin
from reelgate.services.ledger import Credits

TEMPLATES = Path(__file__).parent / "templates"
FLASH_COOKIE = "rg_flash"
LOGIN_CSRF_COOKIE = "rg_login_csrf"

# autoescape=True for every template: user text is always escaped, and no template marks it |safe.
env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


def _credits(value: int | None) -> str:
    return f"{value or 0:,}"


def _megabytes(size: int | None) -> str:
    return f"{(size or 0) / (1024 * 1024):,.1f} MB"


env.filters["when"] = _when
env.filters["megabytes"] = _megabytes
env.filters["credits"] = _credits


class LoginRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the sign-in page."""


class AdminOnly(Exception):
    """Raised for a signed-in user who is not an administrator; answered with an HTML page, not JSON."""


@dataclass(frozen=True)
class Viewer:
    user: User
    session: StudioSession
    credits: Credits
    low_credit_threshold: int

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def low_credit(self) -> bool:
        return self.credits.available < self.low_credit_threshold


async def viewer(request: Request, ctx: Ctx) -> Viewer:
    session = await read_session(request, ctx)
    if session is None:
        raise LoginRequired
    try:
        user = await accounts.get_user(ctx, session.user_id)
    except NotFound:
        raise LoginRequired from None
    if user.disabled:
        raise LoginRequired
    credits = await admin.credits_of(ctx, user.id)
    return Viewer(user, session, credits, request.app.state.settings.low_credit_threshold)


async def form_viewer(request: Request, ctx: Ctx) -> Viewer:
    """The viewer of a state-changing request: the CSRF token must come in the header (htmx) or the form."""
    current = await viewer(request, ctx)
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        presented = str((await request.form()).get("csrf_token") or "")
    check_csrf(current.session, presented)
    return current


async def admin_viewer(current: Annotated[Viewer, Depends(viewer)]) -> Viewer:
    if not current.user.is_admin:
        raise AdminOnly
    return current


async def admin_form_viewer(current: Annotated[Viewer, Depends(form_viewer)]) -> Viewer:
    if not current.user.is_admin:
        raise AdminOnly
    return current


PageViewer = Annotated[Viewer, Depends(viewer)]
FormViewer = Annotated[Viewer, Depends(form_viewer)]
AdminViewer = Annotated[Viewer, Depends(admin_viewer)]
AdminFormViewer = Annotated[Viewer, Depends(admin_form_viewer)]


def _flash_serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app.state.settings.session_secret, salt="reelgate-flash")


def budget_from_form(text: str) -> int | None:
    """A studio form's budget field: empty for no budget, else a whole number (the service checks its range)."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValidationFailed("budget_credits", "A budget is a whole number of credits.")
    return int(text)


def redirect(request: Request, url: str, *, notice: str = "", error: str = "") -> RedirectResponse:
    """Post/redirect/get, carrying one message to the next page in a signed, short-lived cookie."""
    response = RedirectResponse(url, status_code=303)
    if notice or error:
        token = _flash_serializer(request).dumps({"n": notice, "e": error})
        response.set_cookie(
            FLASH_COOKIE, token, max_age=60, httponly=True, samesite="lax", secure=cookie_secure(request)
        )
    return response


def _take_flash(request: Request) -> dict[str, str]:
    token = request.cookies.get(FLASH_COOKIE)
    if not token:
        return {}
    try:
        data = _flash_serializer(request).loads(token)
    except BadSignature:
        return {}
    return {"notice": str(data.get("n") or ""), "error": str(data.get("e") or "")}


def render(
    request: Request, name: str, current: Viewer | None = None, *, status_code: int = 200, **values: Any
) -> HTMLResponse:
    flash = _take_flash(request)
    context: dict[str, Any] = {
        "request": request,
        "viewer": current,
        "csrf": current.csrf if current else "",
        "notice": flash.get("notice", ""),
        "error": flash.get("error", ""),
        "path": request.url.path,
    }
    context.update(values)
    response = HTMLResponse(env.get_template(name).render(**context), status_code=status_code)
    if flash:
        response.delete_cookie(FLASH_COOKIE, httponly=True, samesite="lax", secure=cookie_secure(request))
    return response


def fragment(name: str, **values: Any) -> str:
    return env.get_template(name).render(**values)


def toast(message: str, *, kind: str = "success", retry: str = "", link: str = "") -> str:
    """An out-of-band toast appended to the page's live region; `retry` names a form to submit again."""
    return fragment("_toast.html", message=message, kind=kind, retry=retry, link=link, oob=True)


def htmx_error(exc: ReelgateError, *, retry: str = "") -> HTMLResponse:
    """htmx swaps nothing on this answer; the error shows as a toast with the server's plain-words message."""
    body = toast(exc.message, kind="error", retry=retry)
    return HTMLResponse(body, headers={"HX-Reswap": "none"})


def login_csrf(request: Request) -> str:
    """Forms shown before sign-in use a double-submit token: the cookie and the form field must match."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def set_login_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="lax", secure=cookie_secure(request)
    )
