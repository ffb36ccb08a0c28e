"""Projects: named folders of generations, always scoped to their owner."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.db.prepared import Prepared
from reelgate.db.tables import Generation, Project
from reelgate.domain.errors import Conflict, NotFound, ValidationFailed
from reelgate.domain.ids import new_id
from reelgate.services.context import ServiceContext


def _clean_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 120:
        raise ValidationFailed(
            "name", "Project names are 1 to 120 characters.", allowed={"min_length": 1, "max_length": 120}
        )
    return name


async def list_projects(ctx: ServiceContext, user_id: str) -> list[Project]:
    async with ctx.db.reader() as session:
        rows = await session.execute(select(Project).where(Project.user_id == user_id).order_by(Project.created_at))
        return list(rows.scalars())


async def get_project(ctx: ServiceContext, user_id: str, project_id: str) -> Project:
    async with ctx.db.reader() as session:
        project = (
            await session.execute(select(Project).where(Project.id == project_id, Project.user_id == user_id))
        ).scalar_one_or_none()
    if project is None:
        raise NotFound("Project not found.")
    return project


_FIRST_PROJECT = Prepared(
    select(Project.id).where(Project.user_id == bindparam("user_id")).order_by(Project.created_at).limit(1)
)


async def default_project_in(connection: AsyncConnection, user_id: str) -> str:
    """The user's first project, created inside the caller's transaction if they have none."""
    project_id = (await _FIRST_PROJECT.run(connection, {"user_id": user_id})).scalar()
    if project_id is None:
        project_id = new_id("prj")
        await connection.execute(
            insert(cast(Table, Project.__table__)).values(id=project_id, user_id=user_id, name="My videos")
        )
    return str(project_id)


async def default_project_id(ctx: ServiceContext, user_id: str) -> str:
    async with ctx.db.reader() as session:
        project_id = (
            await session.execute(
                select(Project.id).where(Project.user_id == user_id).order_by(Project.created_at).limit(1)
            )
        ).scalar_one_or_none()
    if project_id is None:
        return (await create_project(ctx, user_id, "My videos")).id
    return project_id


async def create_project(ctx: ServiceContext, user_id: str, name: str, description: str = "") -> Project:
    project = Project(id=new_id("prj"), user_id=user_id, name=_clean_name(name), description=description[:2000])
    async with ctx.db.transaction() as session:
        session.add(project)
    return project


async def update_project(
    ctx: ServiceContext, user_id: str, project_id: str, *, name: str | None = None, description: str | None = None
) -> Project:
    values: dict[str, object] = {"updated_at": ctx.clock()}
    if name is not None:
        values["name"] = _clean_name(name)
    if description is not None:
        values["description"] = description[:2000]
    async with ctx.db.transaction() as session:
        result = await session.execute(
            update(Project).where(Project.id == project_id, Project.user_id == user_id).values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound("Project not found.")
    return await get_project(ctx, user_id, project_id)


async def delete_project(ctx: ServiceContext, user_id: str, project_id: str) -> None:
    """Only empty projects can be deleted, so no video (or its billing record) disappears by accident."""
    async with ctx.db.transaction() as session:
        owned = await session.execute(select(Project.id).where(Project.id == project_id, Project.user_id == user_id))
        if owned.scalar_one_or_none() is None:
            raise NotFound("Project not found.")
        count = await session.execute(select(func.count()).where(Generation.project_id == project_id))
        if count.scalar_one():
            raise Conflict("This project still has generations; move or keep them before deleting it.")
        await session.execute(delete(Project).where(Project.id == project_id))
