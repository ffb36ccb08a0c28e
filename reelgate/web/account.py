"""Credits (balance, packages, checkout, history) and settings (profile, password, API keys)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reelgate.api.deps import Ctx
from reelgate.domain.errors import ReelgateError
from reelgate.services import accounts, email_verification, mail
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
    )


@router.post("/credits/checkout")
async def checkout(
    request: Request, current: FormViewer, ctx: Ctx, package_id: Annotated[str, Form(max_length=80)]
) -> Response:
    base_url = str(request.base_url).rstrip("/")
    try:
        url = await billing_bridge.checkout_url(ctx, current.user.id, package_id, base_url)
    except ReelgateError as exc:
        return redirect(request, "/credits", error=exc.message)
    if url is None:
        return redirect(request, "/credits", error="Payments are not set up on this site yet.")
    return RedirectResponse(url, status_code=303)


async def _settings(request: Request, current: Any, ctx: ServiceContext, **extra: Any) -> HTMLResponse:
    keys = await accounts.list_api_keys(ctx, current.user.id)
    values: dict[str, Any] = {"keys": keys, "new_key": None, "form_error": ""}
    values["email_kinds"] = mail.OPTIONAL_KINDS
    values["email_preferences"] = await mail.preferences(ctx, current.user.id)
    values["unverified"] = await email_verification.pending(ctx, current.user.id)
    values.update(extra)
    return render(request, "settings.html", current, **values)


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
) -> Response:
    if new_password != confirm_password:
        return redirect(request, "/settings", error="The new passwords do not match.")
    try:
        await accounts.change_password(ctx, current.user.id, current_password, new_password)
    except ReelgateError as exc:
        return redirect(request, "/settings", error=exc.message)
    return redirect(request, "/settings", notice="Password changed.")


@router.post("/settings/api-keys", response_class=HTMLResponse)
async def create_api_key(
    request: Request, current: FormViewer, ctx: Ctx, name: Annotated[str, Form(max_length=120)] = ""
) -> HTMLResponse:
    # Rendered directly (not redirected): the secret exists only in this response and is never shown again.
    key = await accounts.create_api_key(ctx, current.user.id, name)
    response = await _settings(request, current, ctx, new_key=key)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_api_key(key_id: str, request: Request, current: FormViewer, ctx: Ctx) -> Response:
    try:
        await accounts.revoke_api_key(ctx, current.user.id, key_id)
    except ReelgateError as exc:
        return redirect(request, "/settings", error=exc.message)
    return redirect(request, "/settings", notice="API key revoked.")
