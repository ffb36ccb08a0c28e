"""/api/v1/me, API keys, projects and uploads: everything scoped to the signed-in user."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.responses import Response

from reelgate.api.deps import Ctx, CurrentUser, client_address, read_session
from reelgate.api.presenters import generation_out, project_out, spend_out, upload_out
from reelgate.api.schemas import (
    ApiKeyCreate,
    CreditsOut,
    MeOut,
    PasswordChange,
    ProjectCreate,
    ProjectDeleted,
    ProjectDetail,
    ProjectOut,
    ProjectTotalsOut,
    ProjectUpdate,
    UploadOut,
)
from reelgate.domain.errors import Forbidden, ValidationFailed
from reelgate.services import accounts, budgets, generations, ledger, library, projects, sessions, uploads
from reelgate.services.generations import GenerationFilter
from reelgate.services.library import DeleteChoice

router = APIRouter(prefix="/api/v1", tags=["account"])


@router.get("/me", response_model=MeOut)
async def me(user: CurrentUser, ctx: Ctx) -> MeOut:
    credits = await ledger.credits_of(ctx, user.id)
    return MeOut(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        is_admin=user.is_admin,
        credits=CreditsOut(available=credits.available, held=credits.held),
    )


@router.get("/api-keys")
async def list_api_keys(user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    keys = await accounts.list_api_keys(ctx, user.id)
    return {
        "data": [
            {
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "created_at": k.created_at.isoformat(),
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "revoked": k.revoked_at is not None,
            }
            for k in keys
        ]
    }


@router.post("/me/password")
async def change_password(body: PasswordChange, request: Request, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """Changes the password: every other studio session ends, and the API keys are revoked unless
    `revoke_api_keys` is false."""
    session = await read_session(request, ctx) if request.state.auth == "session" else None
    revoked = await accounts.change_password(
        ctx,
        user.id,
        body.current_password,
        body.new_password,
        address=client_address(request),
        keep_session=session.id if session else None,
        revoke_api_keys=body.revoke_api_keys,
    )
    return {"changed": True, "api_keys_revoked": revoked}


@router.post("/api-keys", status_code=201)
async def create_api_key(body: ApiKeyCreate, request: Request, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    session = await read_session(request, ctx) if request.state.auth == "session" else None
    if session is not None and sessions.needs_password_since(ctx, session.authenticated_at):
        if not body.password:
            raise Forbidden(
                "Confirm your password to create an API key: send it as `password`.", code="password_required"
            )
        await accounts.confirm_password(ctx, user.id, body.password, address=client_address(request))
        await sessions.mark_reauthenticated(ctx, session.id)
    key = await accounts.create_api_key(ctx, user.id, body.name)
    return {"id": key.id, "name": key.name, "key": key.secret, "note": "Store this key now; it is not shown again."}


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    await accounts.revoke_api_key(ctx, user.id, key_id)
    return Response(status_code=204)


@router.get("/projects")
async def list_projects(user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    return {"data": [project_out(p).model_dump() for p in await projects.list_projects(ctx, user.id)]}


@router.post("/projects", status_code=201, response_model=ProjectOut)
async def create_project(body: ProjectCreate, user: CurrentUser, ctx: Ctx) -> ProjectOut:
    """Your own project, or with `organization` a project of an organization you own or administer (a team
    campaign: its members file generations into it on the organization's wallet, and its budget caps them all)."""
    project = await projects.create_project(
        ctx, user.id, body.name, body.description, body.budget_credits, organization_id=body.organization
    )
    return project_out(project)


@router.get("/projects/{project_id}", response_model=ProjectDetail)
async def get_project(
    project_id: str,
    user: CurrentUser,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> ProjectDetail:
    """The project, its totals (generations, credits spent), its spend against its budget and a page of its
    generations, newest first."""
    project = await projects.get_project(ctx, user.id, project_id)
    totals = await projects.project_totals(ctx, user.id, project_id)
    spend = await budgets.project_spend(ctx, user.id, project_id)
    rows, next_cursor = await generations.list_generations(
        ctx, user.id, filters=GenerationFilter(project_id=project_id), limit=limit, cursor=cursor
    )
    return ProjectDetail(
        **project_out(project).model_dump(),
        totals=ProjectTotalsOut(**asdict(totals)),
        spend=spend_out(spend, operator=user.is_admin),
        generations=[generation_out(g, ctx.config.public_url) for g in rows],
        next_cursor=next_cursor,
        has_more=next_cursor is not None,
    )


@router.patch("/projects/{project_id}", response_model=ProjectOut)
async def update_project(project_id: str, body: ProjectUpdate, user: CurrentUser, ctx: Ctx) -> ProjectOut:
    """Changes what is given; `budget_credits: null` removes the budget, leaving it out keeps it."""
    budget = body.budget_credits if "budget_credits" in body.model_fields_set else projects.KEEP_BUDGET
    return project_out(
        await projects.update_project(
            ctx, user.id, project_id, name=body.name, description=body.description, budget_credits=budget
        )
    )


@router.delete("/projects/{project_id}", response_model=ProjectDeleted)
async def delete_project(
    project_id: str,
    user: CurrentUser,
    ctx: Ctx,
    generations: Annotated[
        DeleteChoice | None,
        Query(description="When it holds videos: `move` them to the default project, or `delete` them too"),
    ] = None,
) -> ProjectDeleted:
    target = await library.delete_project(ctx, user.id, project_id, generations)
    return ProjectDeleted(deleted=project_id, generations_moved_to=target)


@router.post("/uploads", status_code=201, response_model=UploadOut)
async def create_upload(file: UploadFile, user: CurrentUser, ctx: Ctx) -> UploadOut:
    # BodySizeLimitMiddleware has already refused bodies far over the cap; this bounds the file part itself.
    data = await file.read(ctx.config.max_upload_bytes + 1)
    if not data:
        raise ValidationFailed("file", "The file is empty.")
    return upload_out(await uploads.create_upload(ctx, user.id, data, file.filename or ""))


@router.get("/uploads/{upload_id}", response_model=UploadOut)
async def get_upload(upload_id: str, user: CurrentUser, ctx: Ctx) -> UploadOut:
    return upload_out(await uploads.get_upload(ctx, user.id, upload_id))
