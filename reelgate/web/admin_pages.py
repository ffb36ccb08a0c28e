"""Admin pages: users (search, grant credits), all generations with filters, provider health, revenue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from reelgate.api.deps import Ctx
from reelgate.domain.errors import ReelgateError
from reelgate.domain.jobs import GenerationStatus
from reelgate.services import admin, user_admin
from reelgate.web import billing_bridge
from reelgate.web.common import AdminFormViewer, AdminViewer, redirect, render
from reelgate.web.gallery import STATUS_LABELS

router = APIRouter(prefix="/admin", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def users(
    request: Request, current: AdminViewer, ctx: Ctx, q: Annotated[str, Query(max_length=320)] = ""
) -> HTMLResponse:
    rows = await admin.search_users(ctx, q)
    return render(request, "admin_users.html", current, users=rows, q=q, tab="users")


@router.post("/users/{user_id}/grant")
async def grant(
    user_id: str,
    request: Request,
    current: AdminFormViewer,
    ctx: Ctx,
    amount: Annotated[int, Form(ge=1, le=admin.MAX_GRANT)],
    reason: Annotated[str, Form(max_length=500)],
    q: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    back = f"/admin?q={q}" if q else "/admin"
    try:
        await billing_bridge.grant(ctx, current.user.id, user_id, amount, reason)
        await user_admin.record_credit_change(ctx, current.user.id, user_id, amount, reason=reason)
    except ReelgateError as exc:
        return redirect(request, back, error=exc.message)
    return redirect(request, back, notice=f"Granted {amount} credits.")


_USER_ACTIONS = {
    "disable": "Disabled: their sessions ended and their API keys stopped working.",
    "enable": "Enabled again.",
    "promote": "Now an administrator.",
    "demote": "No longer an administrator.",
}


async def _user_action(
    action: str, user_id: str, request: Request, current: AdminFormViewer, ctx: Ctx, q: str
) -> Response:
    back = f"/admin?q={quote(q)}" if q else "/admin"
    try:
        if action in ("disable", "enable"):
            changed = await user_admin.set_disabled(ctx, current.user.id, user_id, action == "disable")
        else:
            changed = await user_admin.set_admin(ctx, current.user.id, user_id, action == "promote")
    except ReelgateError as exc:
        return redirect(request, back, error=exc.message)
    return redirect(request, back, notice=_USER_ACTIONS[action] if changed else "Nothing to change.")


def _user_action_route(action: str) -> Callable[..., Awaitable[Response]]:
    async def endpoint(
        user_id: Annotated[str, Path(max_length=40)],
        request: Request,
        current: AdminFormViewer,
        ctx: Ctx,
        q: Annotated[str, Form(max_length=320)] = "",
    ) -> Response:
        return await _user_action(action, user_id, request, current, ctx, q)

    return endpoint


# One route per action, not /users/{user_id}/{action}: a catch-all would shadow other pages' user actions
# (the mail pages' /users/{user_id}/send-reset).
for _action in _USER_ACTIONS:
    router.add_api_route(f"/users/{{user_id}}/{_action}", _user_action_route(_action), methods=["POST"])


AUDIT_LABELS = {
    user_admin.DISABLE: "disabled",
    user_admin.ENABLE: "enabled",
    user_admin.PROMOTE: "made admin",
    user_admin.DEMOTE: "admin removed",
    user_admin.GRANT: "credits granted",
    user_admin.ADJUST: "credits adjusted",
    user_admin.RESET_LINK: "reset link sent",
}


@router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request, current: AdminViewer, ctx: Ctx) -> HTMLResponse:
    entries = await user_admin.audit_log(ctx, limit=200)
    actors = await user_admin.emails_of(ctx, {e.actor_id for e in entries if e.actor_id})
    return render(
        request, "admin_audit.html", current, entries=entries, actors=actors, labels=AUDIT_LABELS, tab="audit"
    )


@router.get("/generations", response_class=HTMLResponse)
async def all_generations(
    request: Request,
    current: AdminViewer,
    ctx: Ctx,
    status: Annotated[str, Query(max_length=16)] = "",
    model: Annotated[str, Query(max_length=80)] = "",
    email: Annotated[str, Query(max_length=320)] = "",
) -> HTMLResponse:
    rows = await admin.list_all_generations(ctx, status=status, model=model, email=email)
    return render(
        request,
        "admin_generations.html",
        current,
        rows=rows,
        statuses=[s.value for s in GenerationStatus],
        status_labels=STATUS_LABELS,
        models=ctx.catalog.ids,
        filters={"status": status, "model": model, "email": email},
        tab="generations",
    )


@router.get("/providers", response_class=HTMLResponse)
async def providers(request: Request, current: AdminViewer, ctx: Ctx) -> HTMLResponse:
    health = await admin.provider_health(ctx)
    return render(request, "admin_providers.html", current, providers=health, tab="providers")


@router.get("/revenue", response_class=HTMLResponse)
async def revenue(request: Request, current: AdminViewer, ctx: Ctx) -> HTMLResponse:
    summary = await admin.revenue_summary(ctx)
    figures = await billing_bridge.breakdowns(ctx, days=30)
    return render(
        request,
        "admin_revenue.html",
        current,
        summary=summary,
        totals=figures.totals,
        tables=figures.tables,
        chart=figures.chart,
        tab="revenue",
    )
