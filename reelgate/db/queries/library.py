"""The user's library: deletion (tombstones), moves between projects, favourites, share links, storage use,
quotas and retention. Every statement a user's request runs is scoped to its owner."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.codec import decode_row
from reelgate.db.records import Generation, ShareLink, StorageQuota, Upload
from reelgate.db.sql import Tx, columns, insert_query, query, values_of

_GEN = columns(Generation)
_GEN_G = columns(Generation, "g")

# ---------------------------------------------------------------- deletion

_MARK_DELETED = query(
    f"UPDATE generations SET deleted_at = :now, favorite = FALSE, updated_at = :now "
    f"WHERE id = :id AND user_id = :user_id AND deleted_at IS NULL RETURNING {_GEN}",
    row=Generation,
)
_DELETED_OF_USER = query(
    f"SELECT {_GEN} FROM generations WHERE id = :id AND user_id = :user_id AND deleted_at IS NOT NULL",
    row=Generation,
)
_CLEAR_MEDIA = query(
    "UPDATE generations SET output_key = NULL, thumbnail_key = NULL, media_removed_at = :now WHERE id = :id"
)
_UPLOADS_ALONE = query(
    f"SELECT {columns(Upload, 'u')} FROM uploads u WHERE u.user_id = :user_id AND u.id = ANY(:ids) "
    "AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.user_id = :user_id AND g.deleted_at IS NULL "
    "AND g.id <> :generation_id AND (g.start_upload_id = u.id OR g.end_upload_id = u.id))",
    row=Upload,
)
_DELETE_UPLOAD = query("DELETE FROM uploads WHERE id = :id AND user_id = :user_id")
_REVOKE_SHARES_OF = query(
    "UPDATE share_links SET revoked_at = :now WHERE generation_id = :generation_id AND revoked_at IS NULL"
)


def mark_deleted(tx: Tx, user_id: str, generation_id: str, now: datetime) -> Generation | None:
    """The row becomes a tombstone; None when it is not the user's or was deleted already."""
    generation: Generation | None = tx.one(_MARK_DELETED, {"id": generation_id, "user_id": user_id, "now": now})
    if generation is not None:
        tx.run(_REVOKE_SHARES_OF, {"generation_id": generation_id, "now": now})
    return generation


def deleted_generation(tx: Tx, user_id: str, generation_id: str) -> Generation | None:
    found: Generation | None = tx.one(_DELETED_OF_USER, {"id": generation_id, "user_id": user_id})
    return found


def clear_media(tx: Tx, generation_id: str, now: datetime) -> None:
    """The media left storage: the row forgets its keys (the size and checksum stay, for the history)."""
    tx.run(_CLEAR_MEDIA, {"id": generation_id, "now": now})


def uploads_used_only_by(tx: Tx, user_id: str, generation: Generation) -> list[Upload]:
    """The generation's uploads that no other live generation of the user refers to."""
    ids = [i for i in (generation.start_upload_id, generation.end_upload_id) if i]
    if not ids:
        return []
    return tx.all(_UPLOADS_ALONE, {"user_id": user_id, "ids": ids, "generation_id": generation.id})


def delete_upload(tx: Tx, user_id: str, upload_id: str) -> None:
    tx.run(_DELETE_UPLOAD, {"id": upload_id, "user_id": user_id})


# ---------------------------------------------------------------- projects

_MOVE = query(
    "UPDATE generations SET project_id = :project_id, updated_at = :now "
    "WHERE id = :id AND user_id = :user_id AND deleted_at IS NULL "
    "AND EXISTS (SELECT 1 FROM projects p WHERE p.id = :project_id AND p.user_id = :user_id "
    "AND p.organization_id IS NULL) "
    # Out of an organization's project only by deleting that project: its spend stays with the campaign.
    "AND NOT EXISTS (SELECT 1 FROM projects q WHERE q.id = generations.project_id AND q.organization_id IS NOT NULL)"
)
_MOVE_ALL = query(
    "UPDATE generations SET project_id = :target, updated_at = :now WHERE project_id = :source AND user_id = :user_id"
)
_LIVE_IN_PROJECT = query(
    "SELECT id FROM generations WHERE project_id = :project_id AND user_id = :user_id AND deleted_at IS NULL "
    "ORDER BY id"
)
_PROJECT_TOTALS = query(
    "SELECT count(*), COALESCE(sum(credits_charged), 0), COALESCE(sum(output_size), 0) FROM generations "
    "WHERE project_id = :project_id AND deleted_at IS NULL"
)
_OTHER_PROJECT = query(
    "SELECT id FROM projects WHERE user_id = :user_id AND organization_id IS NULL AND id <> :project_id "
    "ORDER BY created_at LIMIT 1"
)
_OWNERS_IN_PROJECT = query("SELECT DISTINCT user_id FROM generations WHERE project_id = :project_id ORDER BY user_id")


def move_generation(tx: Tx, user_id: str, generation_id: str, project_id: str, now: datetime) -> bool:
    params = {"id": generation_id, "user_id": user_id, "project_id": project_id, "now": now}
    return tx.run(_MOVE, params) == 1


def move_all(tx: Tx, user_id: str, source: str, target: str, now: datetime) -> int:
    """Every row of the project, tombstones included (they keep the history and need a project)."""
    return tx.run(_MOVE_ALL, {"user_id": user_id, "source": source, "target": target, "now": now})


def live_ids_in_project(tx: Tx, user_id: str, project_id: str) -> list[str]:
    return [str(row[0]) for row in tx.all(_LIVE_IN_PROJECT, {"user_id": user_id, "project_id": project_id})]


def project_totals(tx: Tx, project_id: str) -> tuple[int, int, int]:
    """(generations, credits charged, bytes of output) of the project's live generations, whoever made them (an
    organization's project counts every member's); the caller has checked the project is the user's to see."""
    row = tx.one(_PROJECT_TOTALS, {"project_id": project_id})
    return int(row[0]), int(row[1]), int(row[2])


def other_project_id(tx: Tx, user_id: str, project_id: str) -> str | None:
    """The user's first own project other than `project_id`."""
    found = tx.scalar(_OTHER_PROJECT, {"user_id": user_id, "project_id": project_id})
    return None if found is None else str(found)


def owners_in_project(tx: Tx, project_id: str) -> list[str]:
    """The users with rows in the project, tombstones included (an organization's project has many)."""
    return [str(row[0]) for row in tx.all(_OWNERS_IN_PROJECT, {"project_id": project_id})]


# ---------------------------------------------------------------- favourites

_FAVORITE = query(
    f"UPDATE generations SET favorite = :favorite WHERE id = :id AND user_id = :user_id AND deleted_at IS NULL "
    f"RETURNING {_GEN}",
    row=Generation,
)


def set_favorite(tx: Tx, user_id: str, generation_id: str, favorite: bool) -> Generation | None:
    found: Generation | None = tx.one(_FAVORITE, {"id": generation_id, "user_id": user_id, "favorite": favorite})
    return found


# ---------------------------------------------------------------- share links

_SHARE_COLUMNS = columns(ShareLink)
_INSERT_SHARE = insert_query(ShareLink)
_SHARES_OF = query(
    f"SELECT {_SHARE_COLUMNS} FROM share_links WHERE generation_id = :generation_id AND user_id = :user_id "
    "ORDER BY created_at DESC",
    row=ShareLink,
)
_REVOKE_SHARE = query(
    "UPDATE share_links SET revoked_at = :now WHERE id = :id AND user_id = :user_id AND revoked_at IS NULL"
)
_SHARED = query(
    f"SELECT {columns(ShareLink, 's')}, {_GEN_G} FROM share_links s JOIN generations g ON g.id = s.generation_id "
    "WHERE s.id = :id AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > :now) "
    "AND g.deleted_at IS NULL AND g.status = 'succeeded' AND g.output_key IS NOT NULL"
)


def insert_share(tx: Tx, share: ShareLink) -> None:
    tx.run(_INSERT_SHARE, values_of(share))


def shares_of(tx: Tx, user_id: str, generation_id: str) -> list[ShareLink]:
    return tx.all(_SHARES_OF, {"generation_id": generation_id, "user_id": user_id})


def revoke_share(tx: Tx, user_id: str, share_id: str, now: datetime) -> bool:
    return tx.run(_REVOKE_SHARE, {"id": share_id, "user_id": user_id, "now": now}) == 1


def live_share(tx: Tx, share_id: str, now: datetime) -> tuple[ShareLink, Generation] | None:
    """A share that is neither revoked nor expired, with its video (which must still exist)."""
    row = tx.one(_SHARED, {"id": share_id, "now": now})
    if row is None:
        return None
    width = len(_SHARE_COLUMNS.split(", "))
    share = decode_row(ShareLink, tx.dialect, row[:width])
    return share, decode_row(Generation, tx.dialect, row[width:])


# ---------------------------------------------------------------- storage use and quotas

_OUTPUT_BYTES = query(
    "SELECT COALESCE(sum(output_size), 0) FROM generations "
    "WHERE user_id = :user_id AND deleted_at IS NULL AND output_key IS NOT NULL"
)
_UPLOAD_BYTES = query("SELECT COALESCE(sum(size), 0) FROM uploads WHERE user_id = :user_id")
_USAGE_ALL = query(
    """
    SELECT u.id, u.email,
        (SELECT COALESCE(sum(g.output_size), 0) FROM generations g
         WHERE g.user_id = u.id AND g.deleted_at IS NULL AND g.output_key IS NOT NULL),
        (SELECT COALESCE(sum(up.size), 0) FROM uploads up WHERE up.user_id = u.id),
        (SELECT q.quota_mb FROM storage_quotas q WHERE q.user_id = u.id)
    FROM users u ORDER BY u.email
    """
)
_QUOTA = query(f"SELECT {columns(StorageQuota)} FROM storage_quotas WHERE user_id = :user_id", row=StorageQuota)
_SET_QUOTA = query(
    "INSERT INTO storage_quotas (user_id, quota_mb, updated_at) VALUES (:user_id, :quota_mb, :now) "
    "ON CONFLICT (user_id) DO UPDATE SET quota_mb = excluded.quota_mb, updated_at = excluded.updated_at"
)
_CLEAR_QUOTA = query("DELETE FROM storage_quotas WHERE user_id = :user_id")


def storage_used(tx: Tx, user_id: str) -> tuple[int, int]:
    """(bytes of outputs, bytes of uploads) the user keeps in storage."""
    outputs = int(tx.scalar(_OUTPUT_BYTES, {"user_id": user_id}))
    uploads = int(tx.scalar(_UPLOAD_BYTES, {"user_id": user_id}))
    return outputs, uploads


def storage_of_everyone(tx: Tx) -> list[tuple[str, str, int, int, int | None]]:
    """(user id, email, output bytes, upload bytes, quota override in MB or None) of every account."""
    rows = tx.all(_USAGE_ALL)
    return [(str(r[0]), str(r[1]), int(r[2]), int(r[3]), None if r[4] is None else int(r[4])) for r in rows]


def quota_override(tx: Tx, user_id: str) -> int | None:
    found: StorageQuota | None = tx.one(_QUOTA, {"user_id": user_id})
    return None if found is None else found.quota_mb


def set_quota_override(tx: Tx, user_id: str, quota_mb: int | None, now: datetime) -> None:
    if quota_mb is None:
        tx.run(_CLEAR_QUOTA, {"user_id": user_id})
    else:
        tx.run(_SET_QUOTA, {"user_id": user_id, "quota_mb": quota_mb, "now": now})


# ---------------------------------------------------------------- retention

_HAS_MEDIA = "(output_key IS NOT NULL OR thumbnail_key IS NOT NULL)"
_RETAINED = {
    keep: query(
        f"SELECT {_GEN} FROM generations WHERE deleted_at IS NULL AND completed_at < :cutoff AND {_HAS_MEDIA}"
        + (" AND favorite = FALSE" if keep else "")
        + " ORDER BY completed_at LIMIT :limit",
        row=Generation,
    )
    for keep in (True, False)
}
_EXPIRING_OF_USER = {
    keep: query(
        f"SELECT count(*) FROM generations WHERE user_id = :user_id AND deleted_at IS NULL "
        f"AND completed_at < :cutoff AND {_HAS_MEDIA}" + (" AND favorite = FALSE" if keep else "")
    )
    for keep in (True, False)
}


def past_retention(tx: Tx, cutoff: datetime, *, keep_favorites: bool, limit: int) -> list[Generation]:
    """Live generations finished before `cutoff` that still have media, oldest first."""
    return tx.all(_RETAINED[keep_favorites], {"cutoff": cutoff, "limit": limit})


def expiring_of_user(tx: Tx, user_id: str, cutoff: datetime, *, keep_favorites: bool) -> int:
    """How many of the user's generations finished before `cutoff` still have media."""
    return int(tx.scalar(_EXPIRING_OF_USER[keep_favorites], {"user_id": user_id, "cutoff": cutoff}))
