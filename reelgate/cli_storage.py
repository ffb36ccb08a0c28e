"""Storage commands for `reelgate`: `storage usage`, `storage quota` and `retention run` (registered by
reelgate.cli)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from reelgate.cli_billing import _run, console
from reelgate.services import accounts, storage_quota
from reelgate.services.context import ServiceContext

storage_app = typer.Typer(help="Storage use and per-user quotas.", no_args_is_help=True)
retention_app = typer.Typer(help="Remove the media of old generations (REELGATE_RETENTION_DAYS).", no_args_is_help=True)


def _mb(size: int) -> str:
    return f"{size / storage_quota.MB:,.1f}"


@storage_app.command("usage")
def storage_usage(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Every account's storage use (outputs and uploads, in MB) and the quota that applies to it."""

    async def body(ctx: ServiceContext) -> list[storage_quota.AccountStorage]:
        return await storage_quota.storage_of_everyone(ctx)

    rows = _run(body)
    if as_json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return
    table = Table("email", "outputs MB", "uploads MB", "total MB", "quota MB")
    for row in rows:
        quota = "none" if row.quota_mb <= 0 else f"{row.quota_mb:,}"
        table.add_row(
            row.email, _mb(row.outputs_bytes), _mb(row.uploads_bytes), _mb(row.outputs_bytes + row.uploads_bytes),
            quota + (" (set for this user)" if row.overridden else ""),
        )  # fmt: skip
    table.add_row(
        "all", _mb(sum(r.outputs_bytes for r in rows)), _mb(sum(r.uploads_bytes for r in rows)),
        _mb(sum(r.outputs_bytes + r.uploads_bytes for r in rows)), "",
    )  # fmt: skip
    console.print(table)


@storage_app.command("quota")
def storage_quota_set(
    email: str,
    megabytes: Annotated[
        int | None, typer.Argument(help="MB for this user (0: no quota); leave out for the default")
    ] = None,
) -> None:
    """Set one user's storage quota, overriding REELGATE_STORAGE_QUOTA_MB."""

    async def body(ctx: ServiceContext) -> None:
        user = await accounts.find_user_by_email(ctx, email)
        await storage_quota.set_quota(ctx, user.id, megabytes)

    _run(body)
    console.print(f"{email}: " + ("the default quota" if megabytes is None else f"{megabytes} MB"))


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed")] = False,
) -> None:
    """Remove now the media of generations past REELGATE_RETENTION_DAYS (the worker also does it hourly)."""

    async def body(ctx: ServiceContext) -> storage_quota.RetentionReport:
        if ctx.config.retention_days <= 0:
            console.print("REELGATE_RETENTION_DAYS is 0: media are kept forever, nothing to do.")
        return await storage_quota.run_retention(ctx, dry_run=dry_run)

    report = _run(body)
    verb = "would remove" if dry_run else "removed"
    for generation_id in report.generations:
        console.print(generation_id)
    console.print(f"{verb} the media of {len(report.generations)} generations ({_mb(report.bytes_freed)} MB)")


def register(app: typer.Typer) -> None:
    app.add_typer(storage_app, name="storage")
    app.add_typer(retention_app, name="retention")
