"""Projects: named folders of generations, always read and changed through their owner."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.records import Project
from reelgate.db.sql import Tx, columns, insert_query, query, values_of

_COLUMNS = columns(Project)
_INSERT = insert_query(Project)
_OF_USER = query(f"SELECT {_COLUMNS} FROM projects WHERE id = :id AND user_id = :user_id", row=Project)
_ALL_OF_USER = query(f"SELECT {_COLUMNS} FROM projects WHERE user_id = :user_id ORDER BY created_at", row=Project)
_FIRST_OF_USER = query("SELECT id FROM projects WHERE user_id = :user_id ORDER BY created_at LIMIT 1")
_RENAME = query(
    "UPDATE projects SET name = COALESCE(:name, name), description = COALESCE(:description, description), "
    "updated_at = :now WHERE id = :id AND user_id = :user_id"
)
_DELETE = query("DELETE FROM projects WHERE id = :id AND user_id = :user_id")


def insert_project(tx: Tx, project: Project) -> None:
    tx.run(_INSERT, values_of(project))


def project_of_user(tx: Tx, user_id: str, project_id: str) -> Project | None:
    project: Project | None = tx.one(_OF_USER, {"id": project_id, "user_id": user_id})
    return project


def projects_of_user(tx: Tx, user_id: str) -> list[Project]:
    return tx.all(_ALL_OF_USER, {"user_id": user_id})


def first_project_id(tx: Tx, user_id: str) -> str | None:
    found = tx.scalar(_FIRST_OF_USER, {"user_id": user_id})
    return None if found is None else str(found)


def update_project(
    tx: Tx, user_id: str, project_id: str, *, name: str | None, description: str | None, now: datetime
) -> bool:
    params = {"id": project_id, "user_id": user_id, "name": name, "description": description, "now": now}
    return tx.run(_RENAME, params) == 1


def delete_project(tx: Tx, user_id: str, project_id: str) -> bool:
    return tx.run(_DELETE, {"id": project_id, "user_id": user_id}) == 1
