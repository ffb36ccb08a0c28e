"""Projects: named folders of generations. A project is a user's own (organization_id NULL) or an organization's
(a team campaign). Every read and change goes through the caller: their own projects, and their organizations'
projects while they are members (reads and filing into them) or managers (changes)."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.records import Project
from reelgate.db.sql import Tx, columns, insert_query, query, values_of

_COLUMNS = columns(Project)
_INSERT = insert_query(Project)
# Conditions on a projects row (used here and by budgets.py). The membership tests read organization_members in
# the statement itself, so a member removed a moment ago loses the organization's projects with the next statement,
# as with everything else of the organization.
VISIBLE_TO_USER = (
    "(organization_id IS NULL AND user_id = :user_id OR organization_id IN "
    "(SELECT organization_id FROM organization_members WHERE user_id = :user_id))"
)
MANAGED_BY_USER = (
    "(organization_id IS NULL AND user_id = :user_id OR organization_id IN "
    "(SELECT organization_id FROM organization_members WHERE user_id = :user_id AND role IN ('owner', 'admin')))"
)
_OF_USER = query(f"SELECT {_COLUMNS} FROM projects WHERE id = :id AND {VISIBLE_TO_USER}", row=Project)
_ALL_OF_USER = query(f"SELECT {_COLUMNS} FROM projects WHERE {VISIBLE_TO_USER} ORDER BY created_at, id", row=Project)
_OF_ORGANIZATION = query(
    f"SELECT {_COLUMNS} FROM projects WHERE organization_id = :organization_id ORDER BY created_at, id", row=Project
)
# The user's default project is always their own: an organization's project is never filled by default.
_FIRST_OF_USER = query(
    "SELECT id FROM projects WHERE user_id = :user_id AND organization_id IS NULL ORDER BY created_at LIMIT 1"
)
_RENAME = query(
    "UPDATE projects SET name = COALESCE(:name, name), description = COALESCE(:description, description), "
    f"updated_at = :now WHERE id = :id AND {MANAGED_BY_USER}"
)
_DELETE = query(f"DELETE FROM projects WHERE id = :id AND {MANAGED_BY_USER}")
_LOCK = query("SELECT id FROM projects WHERE id = :id FOR UPDATE")


def insert_project(tx: Tx, project: Project) -> None:
    tx.run(_INSERT, values_of(project))


def project_of_user(tx: Tx, user_id: str, project_id: str) -> Project | None:
    """The project when it is the user's own or one of their organizations'."""
    project: Project | None = tx.one(_OF_USER, {"id": project_id, "user_id": user_id})
    return project


def projects_of_user(tx: Tx, user_id: str) -> list[Project]:
    """The user's own projects and their organizations' projects, oldest first."""
    return tx.all(_ALL_OF_USER, {"user_id": user_id})


def projects_of_organization(tx: Tx, organization_id: str) -> list[Project]:
    """The organization's projects (the caller checks membership in the same transaction)."""
    return tx.all(_OF_ORGANIZATION, {"organization_id": organization_id})


def first_project_id(tx: Tx, user_id: str) -> str | None:
    found = tx.scalar(_FIRST_OF_USER, {"user_id": user_id})
    return None if found is None else str(found)


def update_project(
    tx: Tx, user_id: str, project_id: str, *, name: str | None, description: str | None, now: datetime
) -> bool:
    """Renames a project the user may change: their own, or an organization's they own or administer."""
    params = {"id": project_id, "user_id": user_id, "name": name, "description": description, "now": now}
    return tx.run(_RENAME, params) == 1


def delete_project(tx: Tx, user_id: str, project_id: str) -> bool:
    """Deletes a project the user may change (as update_project)."""
    return tx.run(_DELETE, {"id": project_id, "user_id": user_id}) == 1


def lock_project(tx: Tx, project_id: str) -> None:
    """Locks the project's row until the COMMIT (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers).
    A deletion takes it before moving the project's generations out: a submit into the project either commits
    first (and its row is moved with the others) or waits, then finds the project gone."""
    tx.run(_LOCK, {"id": project_id})
