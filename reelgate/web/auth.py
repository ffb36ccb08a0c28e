"""Sign up, sign in and sign out for the studio. Password guesses and sign-ups are throttled by
services/throttle.py (per account, per address, and across the site)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reelgate.api.deps import Ctx, clear_session, client_address, issue_session, read_session
from reelgate.domain.errors import RateLimited, ReelgateError
from reelgate.services import accounts, email_verification, sessions
from reelgate.web.common import FormViewer, login_csrf, redirect, render, set_login_csrf

router = APIRouter(include_in_schema=False)


def _safe_next(target: str) -> str:
    # Only same-site paths: an absolute or protocol-relative URL would make sign-in an open redirect.
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/studio"


SIGNUP_ANSWER = (
    "Thanks! If this email was not registered here already, your account is ready: sign in with it. "
    "If it was, sign in with the password you chose then."
)


def _auth_page(
    request: Request, mode: str, *, error: str = "", email: str = "", status_code: int = 200, notice: str = ""
) -> Response:
    token = login_csrf(request)
    response = render(
        request,
        "auth.html",
        mode=mode,
        form_error=error,
        form_notice=notice,
        email=email,
        login_token=token,
        next=_safe_next(request.query_params.get("next", "/studio")),
        signup_credits=request.app.state.settings.signup_credits,
        signup_enabled=request.app.state.settings.signup_enabled,
        status_code=status_code,
    )
    set_login_csrf(request, response, token)
    return response


def _login_csrf_ok(request: Request, presented: str) -> bool:
    cookie = request.cookies.get("rg_login_csrf", "")
    return bool(cookie) and hmac.compare_digest(cookie, presented)


@router.get("/")
async def home(request: Request, ctx: Ctx) -> Response:
    return RedirectResponse("/studio" if await read_session(request, ctx) else "/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, ctx: Ctx) -> Response:
    if await read_session(request, ctx):
        return RedirectResponse("/studio", status_code=303)
    return _auth_page(request, "login", email=request.query_params.get("email", "")[:320])


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(request: Request) -> Response:
    return _auth_page(request, "signup")


@router.post("/login")
async def login(
    request: Request,
    ctx: Ctx,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/studio",  # noqa: A002 - the conventional name of the field
) -> Response:
    if not _login_csrf_ok(request, csrf_token):
        return _auth_page(request, "login", error="Your form expired; please try again.", email=email, status_code=403)
    try:
        user = await accounts.authenticate_password(ctx, email, password, address=client_address(request))
    except RateLimited as exc:
        response = _auth_page(request, "login", error=exc.message, email=email, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except ReelgateError as exc:
        return _auth_page(request, "login", error=exc.message, email=email, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    await issue_session(request, response, ctx, user.id)
    return response


@router.post("/signup")
async def signup(
    request: Request,
    ctx: Ctx,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    display_name: Annotated[str, Form(max_length=120)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not _login_csrf_ok(request, csrf_token):
        return _auth_page(request, "signup", error="Your form expired; please try again.", email=email, status_code=403)
    if not request.app.state.settings.signup_enabled:
        return _auth_page(request, "signup", error="Sign-up is closed on this site.", status_code=403)
    try:
        await accounts.sign_up(ctx, email, password, display_name=display_name, address=client_address(request))
    except RateLimited as exc:
        response = _auth_page(request, "signup", error=exc.message, email=email, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except ReelgateError as exc:
        return _auth_page(request, "signup", error=exc.message, email=email, status_code=exc.status_code)
    # The same answer whether the email was free or taken: nothing here tells which addresses have accounts.
    notice = SIGNUP_ANSWER
    if email_verification.required(ctx):
        notice += " A new account's free credits arrive once you confirm the address with the link we email you."
    return _auth_page(request, "login", notice=notice, email=email.strip())


@router.post("/logout")
async def logout(request: Request, current: FormViewer, ctx: Ctx) -> Response:
    await sessions.end_session(ctx, current.user.id, current.session.id)
    response = redirect(request, "/login", notice="You are signed out.")
    clear_session(request, response)
    return response
