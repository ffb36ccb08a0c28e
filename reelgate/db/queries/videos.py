"""The OpenAI-compatible videos API's bookkeeping: deleted videos and remix sources."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.codec import decode_row
from reelgate.db.records import Generation
from reelgate.db.sql import Query, Tx, columns, query

_COLUMNS = columns(Generation, "g")
_NOT_DELETED = "g.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM video_deletions d WHERE d.generation_id = g.id)"
# The hot retrieve path: polling clients call it every few hundred milliseconds. One statement.
_VIDEO_AND_SOURCE = query(
    f"SELECT {_COLUMNS}, r.source_id FROM generations g "
    "LEFT JOIN video_remixes r ON r.generation_id = g.id "
    f"WHERE g.id = :id AND g.user_id = :user_id AND {_NOT_DELETED}"
)
_PAGE = {
    (descending, after): query(
        f"SELECT {_COLUMNS} FROM generations g WHERE g.user_id = :user_id AND {_NOT_DELETED}"
        + ((" AND g.id < :after" if descending else " AND g.id > :after") if after else "")
        + f" ORDER BY g.id {'DESC' if descending else 'ASC'} LIMIT :limit",
        row=Generation,
    )
    for descending in (True, False)
    for after in (True, False)
}
_REMIX_SOURCES = query("SELECT generation_id, source_id FROM video_remixes WHERE generation_id = ANY(:ids)")
_DELETE = query(
    "INSERT INTO video_deletions (generation_id, user_id, deleted_at) VALUES (:id, :user_id, :now) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)
_REMIX = query("INSERT INTO video_remixes (generation_id, source_id) VALUES (:id, :source_id)")


def video_and_source(tx: Tx, user_id: str, video_id: str) -> tuple[Generation, str | None] | None:
    """The user's video (not deleted) and the id of the video it was remixed from, if any."""
    row = tx.one(_VIDEO_AND_SOURCE, {"id": video_id, "user_id": user_id})
    if row is None:
        return None
    return decode_row(Generation, tx.dialect, row[:-1]), row[-1]


def videos_page(tx: Tx, user_id: str, *, after: str | None, limit: int, descending: bool) -> list[Generation]:
    """Keyset pagination on the time-ordered id; `limit` rows at most."""
    statement: Query = _PAGE[(descending, bool(after))]
    return tx.all(statement, {"user_id": user_id, "after": after, "limit": limit})


def remix_sources(tx: Tx, generation_ids: list[str]) -> dict[str, str]:
    return {gid: source for gid, source in tx.all(_REMIX_SOURCES, {"ids": generation_ids})}


def mark_deleted(tx: Tx, user_id: str, video_id: str, now: datetime) -> bool:
    """False when it was deleted already (a concurrent delete won)."""
    return tx.run(_DELETE, {"id": video_id, "user_id": user_id, "now": now}) == 1


def record_remix(tx: Tx, generation_id: str, source_id: str) -> None:
    tx.run(_REMIX, {"id": generation_id, "source_id": source_id})
