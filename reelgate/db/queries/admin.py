"""What the administrator's pages list: users with their balances, every user's generations."""

from __future__ import annotations

from typing import Any

from reelgate.db.codec import decode_row
from reelgate.db.records import Balance, Generation, User
from reelgate.db.sql import Tx, columns, query

_USERS = (
    f"SELECT {columns(User, 'u')}, COALESCE(b.available, 0), COALESCE(b.held, 0), COALESCE(b.captured, 0), "
    "COALESCE(b.in_flight, 0) "
    "FROM users u LEFT JOIN balances b ON b.user_id = u.id"
)
_GENERATIONS = f"SELECT {columns(Generation, 'g')}, u.email FROM generations g JOIN users u ON u.id = g.user_id"


def users_with_balances(tx: Tx, search: str, *, limit: int) -> list[tuple[User, Balance]]:
    """Newest first; `search` matches the email or the display name, case-insensitively."""
    params: dict[str, Any] = {"limit": limit}
    where = ""
    if search:
        where = " WHERE lower(u.email) LIKE :pattern OR lower(u.display_name) LIKE :pattern"
        params["pattern"] = f"%{search.lower()}%"
    rows = tx.all(query(f"{_USERS}{where} ORDER BY u.created_at DESC LIMIT :limit"), params)
    width = len(User.__dataclass_fields__)
    found = []
    for row in rows:
        user = decode_row(User, tx.dialect, row[:width])
        available, held, captured, in_flight = (int(v) for v in row[width:])
        found.append((user, Balance(user.id, available, held, captured, user.created_at, in_flight)))
    return found


def all_generations(tx: Tx, *, status: str, model: str, email: str, limit: int) -> list[tuple[Generation, str]]:
    """Every user's generations with the owner's email, newest first, filtered."""
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if status:
        conditions.append("g.status = :status")
        params["status"] = status
    if model:
        conditions.append("g.model = :model")
        params["model"] = model
    if email:
        conditions.append("u.email LIKE :email")
        params["email"] = f"%{email.strip().lower()}%"
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = tx.all(query(f"{_GENERATIONS}{where} ORDER BY g.id DESC LIMIT :limit"), params)
    return [(decode_row(Generation, tx.dialect, row[:-1]), str(row[-1])) for row in rows]
