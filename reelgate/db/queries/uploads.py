"""Uploaded images, always read through their owner."""

from __future__ import annotations

from reelgate.db.records import Upload
from reelgate.db.sql import Tx, columns, insert_query, query, values_of

_INSERT = insert_query(Upload)
_OF_USER = query(f"SELECT {columns(Upload)} FROM uploads WHERE id = :id AND user_id = :user_id", row=Upload)
_BY_ID = query(f"SELECT {columns(Upload)} FROM uploads WHERE id = :id", row=Upload)
_OWNED = query("SELECT 1 FROM uploads WHERE id = :id AND user_id = :user_id")


def insert_upload(tx: Tx, upload: Upload) -> None:
    tx.run(_INSERT, values_of(upload))


def upload_of_user(tx: Tx, user_id: str, upload_id: str) -> Upload | None:
    upload: Upload | None = tx.one(_OF_USER, {"id": upload_id, "user_id": user_id})
    return upload


def upload_by_id(tx: Tx, upload_id: str) -> Upload | None:
    """For the worker, which acts for the generation's owner (the submit checked the ownership)."""
    upload: Upload | None = tx.one(_BY_ID, {"id": upload_id})
    return upload


def owns_upload(tx: Tx, user_id: str, upload_id: str) -> bool:
    return tx.scalar(_OWNED, {"id": upload_id, "user_id": user_id}) is not None
