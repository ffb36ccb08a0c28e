"""Sign up, sign in (rate limited) and sign out for the studio."""

from __future__ import annotations

import hmac
import time
from collections import deque
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reelgate.api.deps import Ctx, clear_session, issue_session, read_session
from reelgate.domain.errors import ReelgateError
from reelgate.services import accounts, email_verification
from reelgate.web.common import FormViewer, login_csrf, redirect, render, set_login_csrf

router = APIRouter(include_in_schema=False)

# Five failed sign-ins per address and email in ten minutes, then a pause. In memory, per process:
# enough for embedded mode; the shared `limits`-based limiter for the API replaces it for multi-process setups.
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW_SECONDS = 600.0


class LoginLimiter:
    def __init__(self, attempts: int = LOGIN_ATTEMPTS, window: float = LOGIN_WINDOW_SECONDS) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, key: str) -> int:
        """Seconds until another attempt is allowed; 0 when allowed now."""
        now = time.monotonic()
        failures = self._recent(key, now)
        if len(failures) < self.attempts:
            return 0
        return int(failures[0] + self.window - now) + 1

    def failed(self, key: str) -> None:
        self._recent(key, time.monotonic()).append(time.monotonic())
        if len(self._failures) > 10_000:  # bound memory under a spray of addresses
            self._failures = {k: v for k, v in self._failures.items() if v}

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


limiter = LoginLimiter()


def _client_key(request: Request, email: str) -> str:
    host = request.client.host if request.client else "unknown"
    return f"{host}|{email.strip().lower()}"


def _safe_next(target: str) -> str:
    # Only same-site paths: an absolute or protocol-relative URL would make sign-in an open redirect.
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/studio"


def _auth_page(request: Request, mode: str, *, error: str = "", email: str = "", status_code: int = 200) -> Response:
    token = login_csrf(request)
    response = render(
        request,
        "auth.html",
        mode=mode,
        form_error=error,
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
async def home(request: Request) -> Response:
    return RedirectResponse("/studio" if read_session(request) else "/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    if read_session(request):
        return RedirectResponse("/studio", status_code=303)
    return _auth_page(request, "login")


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
    key = _client_key(request, email)
    wait = limiter.retry_after(key)
    if wait:
        message = f"Too many failed sign-ins. Try again in {max(1, wait // 60)} minute(s)."
        response = _auth_page(request, "login", error=message, email=email, status_code=429)
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        user = await accounts.authenticate_password(ctx, email, password)
    except ReelgateError as exc:
        limiter.failed(key)
        return _auth_page(request, "login", error=exc.message, email=email, status_code=401)
    limiter.succeeded(key)
    response = RedirectResponse(_safe_next(next), status_code=303)
    issue_session(request, response, user.id)
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
        user = await accounts.create_user(ctx, email, password, display_name=display_name)
    except ReelgateError as exc:
        return _auth_page(request, "signup", error=exc.message, email=email, status_code=exc.status_code)
    credits = request.app.state.settings.signup_credits
    notice = f"Welcome! You have {credits} free credits to start with."
    if email_verification.required(ctx):
        notice = f"Welcome! Confirm your address with the link we emailed you to receive {credits} free credits."
    response = redirect(request, "/studio", notice=notice)
    issue_session(request, response, user.id)
    return response


@router.post("/logout")
async def logout(request: Request, current: FormViewer) -> Response:
    response = redirect(request, "/login", notice="You are signed out.")
    clear_session(response)
    return response
