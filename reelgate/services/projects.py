"""Projects: named folders of generations, always scoped to the caller.

A project is a user's own, or an organization's (a team campaign). Every member of the organization sees its
projects and files generations into them on the organization's wallet; its owners and admins create them, rename
them, set their budgets and delete them. A member removed from the organization loses its projects at once (404)."""

from __future__ import annotations

from dataclasses import dataclass

from reelgate.db.codec import utc_now
from reelgate.db.queries import budgets as budget_queries
from reelgate.db.queries import library as library_queries
from reelgate.db.queries import projects as project_queries
from reelgate.db.records import Project
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound, ValidationFailed
from reelgate.domain.ids import new_id
from reelgate.services import budgets
from reelgate.services import organizations as orgs
from reelgate.services.context import ServiceContext

DEFAULT_PROJECT_NAME = "My videos"


def _clean_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 120:
        raise ValidationFailed(
            "name", "Project names are 1 to 120 characters.", allowed={"min_length": 1, "max_length": 120}
        )
    return name


def new_project(
    ctx: ServiceContext,
    user_id: str,
    name: str,
    description: str = "",
    budget_credits: int | None = None,
    organization_id: str | None = None,
) -> Project:
    now = ctx.clock()
    return Project(
        id=new_id("prj"),
        user_id=user_id,
        name=name,
        description=description,
        created_at=now,
        updated_at=now,
        budget_credits=budget_credits,
        organization_id=organization_id,
    )


async def list_projects(ctx: ServiceContext, user_id: str) -> list[Project]:
    return await ctx.db.read(lambda tx: project_queries.projects_of_user(tx, user_id))


def project_in(tx: Tx, user_id: str, project_id: str) -> Project:
    """The project when the user may see it: their own, or an organization's they belong to; NotFound otherwise."""
    project = project_queries.project_of_user(tx, user_id, project_id)
    if project is None:
        raise NotFound("Project not found.")
    return project


def managed_project_in(tx: Tx, user_id: str, project_id: str) -> Project:
    """The project when the user may change it: their own, or an organization's they own or administer. A plain
    member of the organization is Forbidden (they can see it), anyone else NotFound."""
    project = project_in(tx, user_id, project_id)
    if project.organization_id is not None:
        orgs.managing_in(tx, project.organization_id, user_id)
    return project


async def organization_projects(ctx: ServiceContext, organization_id: str, user_id: str) -> list[Project]:
    """The organization's projects, for any of its members."""

    def read(tx: Tx) -> list[Project]:
        orgs.membership_in(tx, organization_id, user_id)
        return project_queries.projects_of_organization(tx, organization_id)

    return await ctx.db.read(read)


async def get_project(ctx: ServiceContext, user_id: str, project_id: str) -> Project:
    return await ctx.db.read(lambda tx: project_in(tx, user_id, project_id))


def default_project_in(tx: Tx, user_id: str) -> str:
    """The user's first project, created inside the caller's transaction if they have none."""
    project_id = project_queries.first_project_id(tx, user_id)
    if project_id is None:
        now = utc_now()
        project_id = new_id("prj")
        project = Project(
            id=project_id, user_id=user_id, name=DEFAULT_PROJECT_NAME, description="", created_at=now, updated_at=now
        )
        project_queries.insert_project(tx, project)
    return project_id


async def default_project_id(ctx: ServiceContext, user_id: str) -> str:
    found = await ctx.db.read(lambda tx: project_queries.first_project_id(tx, user_id))
    if found is not None:
        return found
    return await ctx.db.write(lambda tx: default_project_in(tx, user_id))


async def create_project(
    ctx: ServiceContext,
    user_id: str,
    name: str,
    description: str = "",
    budget_credits: int | None = None,
    organization_id: str | None = None,
) -> Project:
    """A project of the user's own, or of `organization_id` when the user owns or administers it (a plain member
    is Forbidden, anyone else NotFound)."""
    name, budget = _clean_name(name), budgets.clean_budget(budget_credits)
    project = new_project(ctx, user_id, name, description[:2000], budget, organization_id or None)

    def insert(tx: Tx) -> None:
        if project.organization_id is not None:
            orgs.managing_in(tx, project.organization_id, user_id)
        project_queries.insert_project(tx, project)

    await ctx.db.write(insert)
    return project


KEEP_BUDGET = object()  # update_project's default: the budget stays as it is (None removes it)


async def update_project(
    ctx: ServiceContext,
    user_id: str,
    project_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    budget_credits: object = KEEP_BUDGET,
) -> Project:
    clean_name = _clean_name(name) if name is not None else None
    clean_description = description[:2000] if description is not None else None
    change_budget = budget_credits is not KEEP_BUDGET
    clean_budget = budgets.clean_budget(budget_credits) if change_budget else None

    def update(tx: Tx) -> Project:
        managed_project_in(tx, user_id, project_id)
        now = ctx.clock()
        changed = project_queries.update_project(
            tx, user_id, project_id, name=clean_name, description=clean_description, now=now
        )
        if not changed:
            raise NotFound("Project not found.")
        if change_budget:
            budget_queries.set_budget(tx, user_id, project_id, clean_budget, now)
        return project_in(tx, user_id, project_id)

    return await ctx.db.write(update)


@dataclass(frozen=True)
class ProjectTotals:
    generations: int
    credits_spent: int
    output_bytes: int


async def project_totals(ctx: ServiceContext, user_id: str, project_id: str) -> ProjectTotals:
    def totals(tx: Tx) -> ProjectTotals:
        project_in(tx, user_id, project_id)
        return ProjectTotals(*library_queries.project_totals(tx, project_id))

    return await ctx.db.read(totals)
