"""The studio page: projects, model picker, settings panel, live estimate, and starting a generation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from reelgate.api.deps import Ctx
from reelgate.domain.catalog import ModelSpec
from reelgate.domain.errors import ReelgateError
from reelgate.services import budgets, generations, projects, storage_quota
from reelgate.services.context import ServiceContext
from reelgate.web import org_pages
from reelgate.web.common import (
    FormViewer,
    PageViewer,
    Viewer,
    budget_from_form,
    fragment,
    htmx_error,
    redirect,
    render,
    toast,
)
from reelgate.web.composer import (
    ChoiceCard,
    choice_cards,
    chosen,
    default_model,
    estimate_of,
    model_groups,
    order_from_form,
    rate_note,
    spec_for,
)
from reelgate.web.gallery import CREDITS_CHANGED, View, balance_oob, gallery_page, render_card

router = APIRouter(prefix="/studio", include_in_schema=False)


def panel_values(spec: ModelSpec, form: Mapping[str, Any]) -> dict[str, Any]:
    """The settings panel's values for `spec`, keeping what the user already chose when it still applies."""
    caps = spec.capabilities
    return {
        "duration": chosen(form, "duration", caps.durations, caps.default_duration),
        "resolution": chosen(form, "resolution", caps.resolutions, caps.default_resolution),
        "aspect_ratio": chosen(form, "aspect_ratio", caps.aspect_ratios, caps.default_aspect_ratio),
        "options": {
            name: chosen(form, f"option_{name}", option.values, option.default) for name, option in caps.options.items()
        },
        "prompt": str(form.get("prompt") or ""),
        "negative_prompt": str(form.get("negative_prompt") or ""),
        "seed": str(form.get("seed") or ""),
        "audio": bool(form.get("audio")),
        "enhance_prompt": bool(form.get("enhance_prompt")),
    }


def _spec_of(ctx: ServiceContext, form: Mapping[str, Any]) -> ModelSpec:
    model_id = str(form.get("model") or "")
    try:
        return spec_for(ctx, model_id) if model_id else default_model(ctx)
    except ReelgateError:  # an unknown model, or a tier nothing can serve now
        return default_model(ctx)


def _choice_of(ctx: ServiceContext, form: Mapping[str, Any]) -> ChoiceCard | None:
    model_id = str(form.get("model") or "")
    return next((card for card in choice_cards(ctx) if card.id == model_id), None)


def _panel(ctx: ServiceContext, current: Viewer, spec: ModelSpec, form: Mapping[str, Any]) -> dict[str, Any]:
    available, why = generations.model_available(ctx, spec)
    return {
        "spec": spec,
        "choice": _choice_of(ctx, form),
        "values": panel_values(spec, form),
        "available": available,
        "why": why,
        "max_upload_bytes": ctx.config.max_upload_bytes,
        "csrf": current.csrf,
    }


async def _current_project(ctx: ServiceContext, user_id: str, wanted: str | None) -> tuple[list[Any], Any]:
    """The user's projects (their own, then their organizations') and the one shown: the wanted one, else the
    user's first own project (made when they have none; a team's project is never the default)."""
    visible = await projects.list_projects(ctx, user_id)
    if not any(p.organization_id is None for p in visible):
        visible.insert(0, await projects.get_project(ctx, user_id, await projects.default_project_id(ctx, user_id)))
    visible.sort(key=lambda p: p.organization_id is not None)  # stable: own ones first, each group oldest first
    current = next((p for p in visible if p.id == wanted), visible[0])
    return visible, current


@router.get("", response_class=HTMLResponse)
async def studio(
    request: Request,
    current: PageViewer,
    ctx: Ctx,
    project: Annotated[str | None, Query(max_length=40)] = None,
    model: Annotated[str | None, Query(max_length=80)] = None,
    favorites: bool = False,
    view: View = "all",
) -> HTMLResponse:
    owned, selected = await _current_project(ctx, current.user.id, project)
    form = {"model": model} if model else {}
    spec = _spec_of(ctx, form)
    cards, next_cursor = await gallery_page(ctx, current.user.id, selected.id, favorites=favorites, view=view)
    storage = await storage_quota.storage_use(ctx, current.user.id)
    spend = await budgets.project_spend(ctx, current.user.id, selected.id)
    wallets = await org_pages.wallets(ctx, current.user.id)
    return render(
        request,
        "studio.html",
        current,
        projects=owned,
        project=selected,
        groups=model_groups(ctx),
        choices=choice_cards(ctx),
        checked=model or spec.id,
        cards=cards,
        project_id=selected.id,
        next_cursor=next_cursor,
        favorites=favorites,
        view=view,
        storage=storage,
        spend=spend,
        operator=current.user.is_admin,  # provider cost and margin are the operator's figures
        wallets=wallets,
        teams={w["id"]: w for w in wallets},  # a team project's organization: its name, the user's role, its wallet
        keep_favorites=ctx.config.retention_keep_favorites,
        back=f"/studio?project={selected.id}"
        + ("&favorites=true" if favorites else "")
        + ("&view=images" if view == "images" else ""),
        **_panel(ctx, current, spec, form),
    )


@router.get("/panel", response_class=HTMLResponse)
async def panel(request: Request, current: PageViewer, ctx: Ctx) -> HTMLResponse:
    form = dict(request.query_params)
    return HTMLResponse(fragment("_panel.html", **_panel(ctx, current, _spec_of(ctx, form), form)))


@router.get("/estimate", response_class=HTMLResponse)
async def estimate(request: Request, current: PageViewer, ctx: Ctx) -> HTMLResponse:
    form = dict(request.query_params)
    values: dict[str, Any] = {"problem": "", "quote": None, "csrf": current.csrf, "rate_note": ""}
    try:
        order = order_from_form(ctx, form)
        quoted = estimate_of(ctx, order, assume_images=True)
    except ReelgateError as exc:
        values["problem"] = exc.message
        return HTMLResponse(fragment("_estimate.html", **values))
    unit = ctx.catalog.credit_unit
    spec = quoted.spec
    missing_image = spec.capabilities.start_image == "required" and order.start_image is None
    values.update(
        quote=quoted.quote,
        spec=spec,
        routed=quoted.spec.id != order.model,
        money=f"{unit.value * quoted.quote.total:.2f} {unit.currency}",
        available=current.credits.available,
        short=quoted.quote.total > current.credits.available,
        model_available=quoted.available,
        why=generations.model_available(ctx, spec)[1],
        missing_image=missing_image,
        resolved=quoted.request,
        rate_note=rate_note(spec, quoted.request.duration),
    )
    return HTMLResponse(fragment("_estimate.html", **values))


@router.post("/generate", response_class=HTMLResponse)
async def generate(request: Request, current: FormViewer, ctx: Ctx) -> HTMLResponse:
    form = dict(await request.form())
    try:
        order = order_from_form(ctx, {k: v for k, v in form.items() if isinstance(v, str)})
        generation, _ = await generations.create_generation(ctx, current.user.id, order)
    except ReelgateError as exc:
        response = htmx_error(exc, retry="generate-form")
        if exc.code == "insufficient_credits":
            response = HTMLResponse(
                toast(exc.message + " Buy credits to continue.", kind="error", retry="generate-form", link="/credits"),
                headers={"HX-Reswap": "none"},
            )
        return response
    body = render_card(ctx, generation, current.csrf)
    body += '<div id="gallery-empty" hx-swap-oob="delete"></div>'
    body += await balance_oob(ctx, current)
    body += toast(f"Generation started: {generation.quote_total} credits are on hold until it finishes.")
    return HTMLResponse(body, headers=CREDITS_CHANGED)


@router.post("/projects")
async def create_project(
    request: Request, current: FormViewer, ctx: Ctx, name: Annotated[str, Form(max_length=500)]
) -> Response:
    try:
        project = await projects.create_project(ctx, current.user.id, name)
    except ReelgateError as exc:
        return redirect(request, "/studio", error=exc.message)
    return redirect(request, f"/studio?project={project.id}", notice="Project created.")


@router.post("/projects/{project_id}/rename")
async def rename_project(
    project_id: str,
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    name: Annotated[str, Form(max_length=500)],
) -> Response:
    try:
        await projects.update_project(ctx, current.user.id, project_id, name=name)
    except ReelgateError as exc:
        return redirect(request, f"/studio?project={project_id}", error=exc.message)
    return redirect(request, f"/studio?project={project_id}", notice="Project renamed.")


@router.post("/projects/{project_id}/budget")
async def set_budget(
    project_id: str,
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    budget_credits: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Sets or changes the project's budget; an empty field removes it."""
    back = f"/studio?project={project_id}"
    try:
        budget = budget_from_form(budget_credits)
        await projects.update_project(ctx, current.user.id, project_id, budget_credits=budget)
    except ReelgateError as exc:
        return redirect(request, back, error=exc.message)
    return redirect(request, back, notice="Budget saved." if budget is not None else "Budget removed.")
