"""Storage use per user (outputs + uploads), the storage quota, and retention of old media.

The quota (`REELGATE_STORAGE_QUOTA_MB`, 0: none; an administrator may set another per user) is checked before
an upload is stored and before a generation is accepted: a user at or over it is refused with 507 and nothing
is charged. Retention (`REELGATE_RETENTION_DAYS`, 0: forever) removes the media of generations that finished
longer ago than that (favourites kept unless the operator says otherwise); the row stays, like a deleted one's,
and the studio warns a week before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reelgate.db.queries import library as library_queries
from reelgate.db.queries import users as user_queries
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound, ReelgateError, ValidationFailed
from reelgate.services import library
from reelgate.services.context import ServiceContext

log = logging.getLogger("reelgate.storage")

MB = 1024 * 1024
WARNING_DAYS = 7
_BATCH = 200
_DRY_RUN_LIMIT = 100_000


class StorageQuotaExceeded(ReelgateError):
    status_code = 507
    code = "storage_quota_exceeded"


@dataclass(frozen=True)
class StorageUse:
    outputs_bytes: int
    uploads_bytes: int
    quota_bytes: int | None  # None: no quota
    retention_days: int
    expiring_soon: int  # media that retention removes within WARNING_DAYS

    @property
    def used_bytes(self) -> int:
        return self.outputs_bytes + self.uploads_bytes


def applicable_quota_mb(default_mb: int, override_mb: int | None) -> int:
    """The quota that applies to a user: their own when an administrator set one, else the operator's default."""
    return default_mb if override_mb is None else override_mb


def quota_mb_in(tx: Tx, default_mb: int, user_id: str) -> int:
    return applicable_quota_mb(default_mb, library_queries.quota_override(tx, user_id))


def check_room_in(tx: Tx, default_mb: int, user_id: str, incoming: int) -> None:
    """Raises StorageQuotaExceeded when `incoming` more bytes would not fit (or, for 0, when none are left)."""
    check_room_under(tx, quota_mb_in(tx, default_mb, user_id), user_id, incoming)


def check_room_under(tx: Tx, quota_mb: int, user_id: str, incoming: int) -> None:
    """check_room_in for a caller that has already read the user's quota (0: no quota)."""
    if quota_mb <= 0:
        return
    quota = quota_mb * MB
    used = sum(library_queries.storage_used(tx, user_id))
    if used + incoming > quota or (incoming == 0 and used >= quota):
        raise StorageQuotaExceeded(
            f"Your storage is full ({used / MB:.1f} MB of {quota_mb} MB used); delete some videos or uploads first.",
            details={"used_bytes": used, "quota_bytes": quota, "needed_bytes": incoming},
        )


async def check_room(ctx: ServiceContext, user_id: str, incoming: int) -> None:
    await ctx.db.read(lambda tx: check_room_in(tx, ctx.config.storage_quota_mb, user_id, incoming))


def _warning_cutoff(ctx: ServiceContext, now: datetime) -> datetime | None:
    days = ctx.config.retention_days
    if days <= 0:
        return None
    return now - timedelta(days=max(days - WARNING_DAYS, 0))


async def storage_use(ctx: ServiceContext, user_id: str) -> StorageUse:
    cutoff = _warning_cutoff(ctx, ctx.clock())
    keep = ctx.config.retention_keep_favorites

    def read(tx: Tx) -> StorageUse:
        outputs, uploads = library_queries.storage_used(tx, user_id)
        quota_mb = quota_mb_in(tx, ctx.config.storage_quota_mb, user_id)
        expiring = 0 if cutoff is None else library_queries.expiring_of_user(tx, user_id, cutoff, keep_favorites=keep)
        return StorageUse(
            outputs, uploads, quota_mb * MB if quota_mb > 0 else None, ctx.config.retention_days, expiring
        )

    return await ctx.db.read(read)


@dataclass(frozen=True)
class AccountStorage:
    user_id: str
    email: str
    outputs_bytes: int
    uploads_bytes: int
    quota_mb: int  # the quota that applies (0: none)
    overridden: bool


async def storage_of_everyone(ctx: ServiceContext) -> list[AccountStorage]:
    rows = await ctx.db.read(library_queries.storage_of_everyone)
    default = ctx.config.storage_quota_mb
    return [
        AccountStorage(uid, email, outputs, uploads, applicable_quota_mb(default, override), override is not None)
        for uid, email, outputs, uploads, override in rows
    ]


async def set_quota(ctx: ServiceContext, user_id: str, quota_mb: int | None) -> None:
    """An administrator's quota for one user (0: none for this user); None returns them to the default."""
    if quota_mb is not None and quota_mb < 0:
        raise ValidationFailed("quota_mb", "A quota is 0 (none) or more megabytes.", allowed={"min": 0})

    def write(tx: Tx) -> None:
        if user_queries.user_by_id(tx, user_id) is None:
            raise NotFound("User not found.")
        library_queries.set_quota_override(tx, user_id, quota_mb, ctx.clock())

    await ctx.db.write(write)


@dataclass
class RetentionReport:
    generations: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = False


async def run_retention(ctx: ServiceContext, *, dry_run: bool = False) -> RetentionReport:
    """Removes (or, with `dry_run`, lists) the media of generations past retention."""
    report = RetentionReport(dry_run=dry_run)
    days = ctx.config.retention_days
    if days <= 0:
        return report
    cutoff = ctx.clock() - timedelta(days=days)
    keep = ctx.config.retention_keep_favorites
    if dry_run:
        found = await ctx.db.read(
            lambda tx: library_queries.past_retention(tx, cutoff, keep_favorites=keep, limit=_DRY_RUN_LIMIT)
        )
        report.generations = [g.id for g in found]
        report.bytes_freed = sum((g.output_size or 0) for g in found if g.output_key)
        return report
    while True:
        batch = await ctx.db.read(
            lambda tx: library_queries.past_retention(tx, cutoff, keep_favorites=keep, limit=_BATCH)
        )
        for generation in batch:  # each one's keys are cleared, so the next batch holds new rows
            report.generations.append(generation.id)
            report.bytes_freed += await library.remove_media(ctx, generation, uploads=False)
        if len(batch) < _BATCH:
            break
    if report.generations:
        log.info(
            "retention removed the media of %d generations (%d bytes)", len(report.generations), report.bytes_freed
        )
    return report


async def retention_housekeeping(ctx: ServiceContext) -> int:
    return len((await run_retention(ctx)).generations)
