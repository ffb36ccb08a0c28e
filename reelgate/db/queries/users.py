"""Users and their API keys."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.codec import decode_row
from reelgate.db.records import ApiKey, User
from reelgate.db.sql import Tx, columns, insert_query, query, values_of

_USER = columns(User)
_INSERT_USER = insert_query(User)
_USER_BY_ID = query(f"SELECT {_USER} FROM users WHERE id = :id", row=User)
_USER_BY_EMAIL = query(f"SELECT {_USER} FROM users WHERE email = :email", row=User)
_FIRST_ADMIN = query(f"SELECT {_USER} FROM users WHERE is_admin = TRUE ORDER BY created_at LIMIT 1", row=User)
_COUNT_USERS = query("SELECT count(*) FROM users")
_USER_EXISTS = query("SELECT 1 FROM users WHERE id = :id")
_SET_PASSWORD = query("UPDATE users SET password_hash = :password_hash WHERE id = :id")
_SET_DISPLAY_NAME = query("UPDATE users SET display_name = :display_name WHERE id = :id")
_SET_FLAGGED = query("UPDATE users SET flagged = :flagged WHERE id = :id")
_SET_ADMIN = query("UPDATE users SET is_admin = :is_admin WHERE id = :id")
_SET_DISABLED = query("UPDATE users SET disabled = :disabled WHERE id = :id AND disabled <> :disabled")
_COUNT_ACTIVE_ADMINS = query("SELECT count(*) FROM users WHERE is_admin = TRUE AND disabled = FALSE")

_INSERT_KEY = insert_query(ApiKey)
_KEYS_OF = query(
    f"SELECT {columns(ApiKey)} FROM api_keys WHERE user_id = :user_id ORDER BY created_at DESC", row=ApiKey
)
_REVOKE_KEY = query(
    "UPDATE api_keys SET revoked_at = :now WHERE id = :id AND user_id = :user_id AND revoked_at IS NULL"
)
_REVOKE_ALL_KEYS = query("UPDATE api_keys SET revoked_at = :now WHERE user_id = :user_id AND revoked_at IS NULL")
# Authentication reads the key and its owner in one statement: the key's columns, then the user's.
_KEY_AND_OWNER = query(
    f"SELECT {columns(ApiKey, 'k')}, {columns(User, 'u')} FROM api_keys k JOIN users u ON u.id = k.user_id "
    "WHERE k.key_hash = :key_hash"
)
_KEY_OWNER = query("SELECT user_id FROM api_keys WHERE key_hash = :key_hash")
_TOUCH_KEY = query("UPDATE api_keys SET last_used_at = :now WHERE id = :id")


def insert_user(tx: Tx, user: User) -> None:
    tx.run(_INSERT_USER, values_of(user))


def user_by_id(tx: Tx, user_id: str) -> User | None:
    user: User | None = tx.one(_USER_BY_ID, {"id": user_id})
    return user


def user_by_email(tx: Tx, email: str) -> User | None:
    user: User | None = tx.one(_USER_BY_EMAIL, {"email": email})
    return user


def user_exists(tx: Tx, user_id: str) -> bool:
    return tx.scalar(_USER_EXISTS, {"id": user_id}) is not None


def first_admin(tx: Tx) -> User | None:
    user: User | None = tx.one(_FIRST_ADMIN)
    return user


def count_users(tx: Tx) -> int:
    return int(tx.scalar(_COUNT_USERS))


def set_password_hash(tx: Tx, user_id: str, password_hash: str) -> None:
    tx.run(_SET_PASSWORD, {"id": user_id, "password_hash": password_hash})


def set_display_name(tx: Tx, user_id: str, display_name: str) -> None:
    tx.run(_SET_DISPLAY_NAME, {"id": user_id, "display_name": display_name})


def set_flagged(tx: Tx, user_id: str, flagged: bool) -> None:
    tx.run(_SET_FLAGGED, {"id": user_id, "flagged": flagged})


def set_admin(tx: Tx, user_id: str, is_admin: bool) -> None:
    tx.run(_SET_ADMIN, {"id": user_id, "is_admin": is_admin})


def set_disabled(tx: Tx, user_id: str, disabled: bool) -> bool:
    """True when the flag changed (False: it already had that value)."""
    return tx.run(_SET_DISABLED, {"id": user_id, "disabled": disabled}) == 1


def count_active_admins(tx: Tx) -> int:
    return int(tx.scalar(_COUNT_ACTIVE_ADMINS))


def revoke_all_api_keys(tx: Tx, user_id: str, now: datetime) -> int:
    return tx.run(_REVOKE_ALL_KEYS, {"user_id": user_id, "now": now})


def insert_api_key(tx: Tx, key: ApiKey) -> None:
    tx.run(_INSERT_KEY, values_of(key))


def api_keys_of(tx: Tx, user_id: str) -> list[ApiKey]:
    return tx.all(_KEYS_OF, {"user_id": user_id})


def revoke_api_key(tx: Tx, user_id: str, key_id: str, now: datetime) -> bool:
    return tx.run(_REVOKE_KEY, {"id": key_id, "user_id": user_id, "now": now}) == 1


def key_and_owner(tx: Tx, key_hash: str) -> tuple[ApiKey, User] | None:
    row = tx.one(_KEY_AND_OWNER, {"key_hash": key_hash})
    if row is None:
        return None
    width = len(ApiKey.__dataclass_fields__)
    return decode_row(ApiKey, tx.dialect, row[:width]), decode_row(User, tx.dialect, row[width:])


def owner_of_key(tx: Tx, key_hash: str) -> str | None:
    owner = tx.scalar(_KEY_OWNER, {"key_hash": key_hash})
    return None if owner is None else str(owner)


def touch_api_key(tx: Tx, key_id: str, now: datetime) -> None:
    tx.run(_TOUCH_KEY, {"id": key_id, "now": now})
