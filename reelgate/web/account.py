"""Credits (balance, packages, checkout, history) and settings (profile, password, API keys)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reelgate.api.deps import Ctx, clear_session, client_address
from reelgate.domain.errors import RateLimited, ReelgateError
from reelgate.services import accounts, email_verification, mail, sessions
from reelgate.services import organizations as orgs
from reelgate.services.context import ServiceContext
from reelgate.web import billing_bridge
from reelgate.web.common import FormViewer, PageViewer, redirect, render

router = APIRouter(include_in_schema=False)


@router.get("/credits", response_class=HTMLResponse)
async def credits_page(request: Request, current: PageViewer, ctx: Ctx) -> HTMLResponse:
    sold, checkout = billing_bridge.packages(ctx)
    outcome = request.query_params.get("checkout", "")
    return render(
        request,
        "credits.html",
        current,
        packages=sold,
        checkout=checkout,
        outcome=outcome if outcome in ("success", "canceled") else "",
        transactions=await billing_bridge.transactions(ctx, current.user.id),
        threshold=current.low_credit_threshold,
        # The wallets the user may also buy for: organizations they own or administer.
        buy_for=[m.organization for m in await orgs.list_mine(ctx, current.user.id) if m.manages],
    )


@router.post("/credits/checkout")
async def checkout(
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    package_id: Annotated[str, Form(max_length=80)],
    organization: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    base_url = str(request.base_url).rstrip("/")
    try:
        url = await billing_bridge.checkout_url(ctx, current.user.id, package_id, base_url, organization or None)
    except ReelgateError as exc:
        return redirect(request, "/credits", error=exc.message)
    if url is None:
        return redirect(request, "/credits", error="Payments are not set up on this site yet.")
    return RedirectResponse(url, status_code=303)


async def _settings(
    request: Request, current: Any, ctx: ServiceContext, *, status_code: int = 200, **extra: Any
) -> HTMLResponse:
    keys = await accounts.list_api_keys(ctx, current.user.id)
    rows = await sessions.list_sessions(ctx, current.user.id)
    listed = [
        {
            "id": s.id,
            "agent": sessions.describe_agent(s.user_agent),
            "address": s.address,
            "created_at": s.created_at,
            "last_used_at": s.last_used_at,
            "current": s.id == current.session.id,
        }
        for s in rows
    ]
    values: dict[str, Any] = {
        "keys": keys,
        "new_key": None,
        "form_error": "",
        "sessions": listed,
        "key_needs_password": sessions.needs_password_since(ctx, current.session.authenticated_at),
    }
    values["email_kinds"] = mail.OPTIONAL_KINDS
    values["email_preferences"] = await mail.preferences(ctx, current.user.id)
    values["unverified"] = await email_verification.pending(ctx, current.user.id)
    values.update(extra)
    return render(request, "settings.html", current, status_code=status_code, **values)


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, current: PageViewer, ctx: Ctx) -> HTMLResponse:
    return await _settings(request, current, ctx)


@router.post("/settings/profile")
async def update_profile(
    request: Request, current: FormViewer, ctx: Ctx, display_name: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    await accounts.update_profile(ctx, current.user.id, display_name=display_name)
    return redirect(request, "/settings", notice="Profile saved.")


@router.post("/settings/password")
async def change_password(
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    current_password: Annotated[str, Form(max_length=1024)],
    new_password: Annotated[str, Form(max_length=1024)],
    confirm_password: Annotated[str, Form(max_length=1024)],
    revoke_api_keys: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    if new_password != confirm_password:
        return redirect(request, "/settings", error="The new passwords do not match.")
    try:
        revoked = await accounts.change_password(
            ctx,
            current.user.id,
            current_password,
            new_password,
            address=client_address(request),
            keep_session=current.session.id,
            revoke_api_keys=bool(revoke_api_keys),
        )
    except ReelgateError as exc:
        return redirect(request, "/settings", error=exc.message)
    keys = f" {revoked} API key(s) revoked." if revoked else ""
    return redirect(request, "/settings", notice=f"Password changed. Your other sessions are signed out.{keys}")


@router.post("/settings/api-keys", response_class=HTMLResponse)
async def create_api_key(
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    name: Annotated[str, Form(max_length=120)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    if sessions.needs_password_since(ctx, current.session.authenticated_at):
        if not password:
            return redirect(request, "/settings", error="Enter your password to create an API key.")
        try:
            await accounts.confirm_password(ctx, current.user.id, password, address=client_address(request))
        except ReelgateError as exc:
            status = 429 if isinstance(exc, RateLimited) else 403
            return await _settings(request, current, ctx, status_code=status, form_error=exc.message)
        await sessions.mark_reauthenticated(ctx, current.session.id)
    # Rendered directly (not redirected): the secret exists only in this response and is never shown again.
    key = await accounts.create_api_key(ctx, current.user.id, name)
    response = await _settings(request, current, ctx, new_key=key, key_needs_password=False)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/settings/sessions/{session_id}/revoke")
async def revoke_session(
    session_id: Annotated[str, Path(max_length=64)], request: Request, current: FormViewer, ctx: Ctx
) -> Response:
    if not await sessions.end_session(ctx, current.user.id, session_id):
        return redirect(request, "/settings", error="That session had already ended.")
    return redirect(request, "/settings", notice="That session is signed out.")


@router.post("/settings/sessions/end-all")
async def end_all_sessions(request: Request, current: FormViewer, ctx: Ctx) -> Response:
    await accounts.end_all_sessions(ctx, current.user.id)
    response = redirect(request, "/login", notice="You are signed out everywhere.")
    clear_session(request, response)
    return response


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_api_key(key_id: str, request: Request, current: FormViewer, ctx: Ctx) -> Response:
    try:
        await accounts.revoke_api_key(ctx, current.user.id, key_id)
    except ReelgateError as exc:
        return redirect(request, "/settings", error=exc.message)
    return redirect(request, "/settings", notice="API key revoked.")
