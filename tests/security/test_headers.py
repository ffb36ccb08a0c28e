"""Response headers and cookies over HTTP: CSP, no framing, nosniff, Referrer-Policy, HSTS behind https, Secure
cookies whatever the proxy says, and X-Forwarded-* believed from trusted proxies only."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.web.common import TEMPLATES
from tests.conftest import Running, make_settings, start_app

PASSWORD = "correct horse battery"
StartApp = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def start(tmp_path: Path) -> StartApp:
    """An app on SQLite with the given setting overrides (headers do not depend on the database)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[Running]:
        settings = make_settings(tmp_path / "data", None, **overrides)
        async for running in start_app(settings):
            yield running

    return run


def _directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def _assert_locked_down(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff", (response.request.url, dict(headers))
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    csp = _directives(headers["content-security-policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"] == ["'self'"], "no inline script, no eval, no other origin"
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["default-src"] == ["'self'"]


async def _sign_up(client: httpx.AsyncClient, email: str, **headers: str) -> httpx.Response:
    page = await client.get("/signup", headers=headers)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:300]
    # Sent by hand: a Secure cookie is (rightly) not sent back over the plain-http test transport.
    cookie = f"rg_login_csrf={token.group(1)}"
    signup = await client.post(
        "/signup",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
        headers={**headers, "Cookie": cookie},
    )
    assert signup.status_code == 200, signup.text
    # Sign-up answers the same whether the email was free or not; the new user then signs in.
    return await client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
        headers={**headers, "Cookie": cookie},
    )


async def test_every_kind_of_response_carries_the_security_headers(start: StartApp) -> None:
    async with start() as running:
        client = running.client
        login = await client.get("/login")
        responses = [
            login,
            await _sign_up(client, "viewer@example.com"),
            await client.get("/studio"),
            await client.get("/static/studio.js"),
            await client.get("/api/v1/models"),
            await client.get("/api/v1/no-such-route"),
            await client.get("/v1/videos"),
            await client.get("/healthz"),
            await client.post("/api/v1/estimate", content=b"x" * (2 * 1024 * 1024)),  # 413 from a middleware
        ]
        assert [r.status_code for r in responses] == [200, 303, 200, 200, 200, 404, 200, 200, 413]
        for response in responses:
            _assert_locked_down(response)
        assert "strict-transport-security" not in responses[0].headers  # the public URL is plain http


async def test_the_api_docs_keep_working_and_cannot_be_framed(start: StartApp) -> None:
    async with start() as running:
        docs = await running.client.get("/docs")
        assert docs.status_code == 200
        csp = _directives(docs.headers["content-security-policy"])
        assert csp["frame-ancestors"] == ["'none'"]
        assert "https://cdn.jsdelivr.net" in csp["script-src"]  # where FastAPI's Swagger UI page loads from
        assert docs.headers["x-frame-options"] == "DENY"


async def test_https_public_url_sends_hsts_and_secure_cookies_even_without_a_forwarded_proto(
    start: StartApp,
) -> None:
    async with start(public_url="https://videos.example.com") as running:
        # The proxy in front terminates TLS but does not say so: the request reaches us as plain http.
        response = await _sign_up(running.client, "secure@example.com")
        assert response.status_code == 303, response.text
        assert response.headers["strict-transport-security"].startswith("max-age=")
        cookies = response.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("rg_session="))
        token = session.split(";")[0].split("=", 1)[1]
        studio = await running.client.get("/studio", headers={"Cookie": f"rg_session={token}"})
        csrf = re.search(r'data-csrf="([^"]+)"', studio.text)
        assert csrf, studio.text[:300]
        signed_out = await running.client.post(
            "/logout", data={"csrf_token": csrf.group(1)}, headers={"Cookie": f"rg_session={token}"}
        )
        flash = next(c for c in signed_out.headers.get_list("set-cookie") if c.startswith("rg_flash="))
        for cookie in (session, flash):
            attributes = {a.strip().lower() for a in cookie.split(";")}
            assert "secure" in attributes and "httponly" in attributes and "samesite=lax" in attributes, cookie
        login_page = await running.client.get("/login")
        login_csrf = next(c for c in login_page.headers.get_list("set-cookie") if c.startswith("rg_login_csrf="))
        assert "secure" in {a.strip().lower() for a in login_csrf.split(";")}


def _session_cookie(response: httpx.Response) -> str:
    return next(c for c in response.headers.get_list("set-cookie") if c.startswith("rg_session="))


async def test_forwarded_proto_is_believed_from_a_trusted_proxy_only(start: StartApp) -> None:
    # The test client connects from 127.0.0.1.
    async with start(trusted_proxies="127.0.0.1") as running:
        trusted = await _sign_up(running.client, "a@example.com", **{"X-Forwarded-Proto": "https"})
        assert "secure" in {a.strip().lower() for a in _session_cookie(trusted).split(";")}
    async with start(trusted_proxies="10.0.0.1") as running:
        spoofed = await _sign_up(running.client, "b@example.com", **{"X-Forwarded-Proto": "https"})
        assert "secure" not in {a.strip().lower() for a in _session_cookie(spoofed).split(";")}


_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
_EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
_INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
_EVAL_NEEDED = re.compile(r"hx-on|hx-vars|js:|javascript:|hx-trigger=\"[^\"]*\[", re.IGNORECASE)


def test_templates_hold_no_inline_script_style_or_evaluated_htmx() -> None:
    problems: list[str] = []
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text()
        for name, pattern in (
            ("inline script", _INLINE_SCRIPT),
            ("event handler attribute", _EVENT_HANDLER),
            ("inline style", _INLINE_STYLE),
            ("htmx feature that needs eval", _EVAL_NEEDED),
        ):
            problems += [f"{template.name}: {name}: {m.group(0)!r}" for m in pattern.finditer(text)]
    assert problems == []
