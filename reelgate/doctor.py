"""`reelgate doctor`: what is configured, and which of the services it depends on cannot be reached."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from reelgate.bootstrap import load_configured_catalog, provider_configs
from reelgate.db.database import Database, database_for
from reelgate.providers.registry import ProviderRegistry
from reelgate.services import health, mail
from reelgate.settings import Settings
from reelgate.storage import store_from_url

_TIMEOUT = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fatal: bool = False  # the core cannot work (database, storage, queue, settings); providers only degrade

    @property
    def status(self) -> str:
        return "ok" if self.ok else ("FAILED" if self.fatal else "unavailable")


async def _probe(name: str, probe: Awaitable[str], *, fatal: bool) -> Check:
    try:
        return Check(name, True, await asyncio.wait_for(probe, timeout=_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is raised
        return Check(name, False, f"{type(exc).__name__}: {exc}"[:200], fatal=fatal)


async def _database(db: Database) -> str:
    await db.open()
    await health.ping_database(db)
    version = await health.schema_versions(db)  # reachable but empty: `serve` and `migrate` create the schema
    return f"{db.dialect}, schema {', '.join(version) or 'not created yet (run `reelgate migrate`)'}"


async def _maintenance(db: Database) -> Check:
    """Not fatal: a database the planner has no statistics for still works, only slower as it grows."""
    try:
        problem = await asyncio.wait_for(health.maintenance_problem(db), timeout=_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - reported like every other probe's failure
        return Check("database statistics", False, f"{type(exc).__name__}: {exc}"[:200])
    if problem is None:
        kept = "autovacuum on" if db.dialect == "postgresql" else "nothing to keep (SQLite)"
        return Check("database statistics", True, kept)
    return Check("database statistics", False, problem)


async def _queue(settings: Settings) -> str:
    from reelgate.queue import Queue

    queue = Queue(settings, pool_size=1)
    await queue.app.open_async()
    try:
        waiting = await queue.jobs_waiting()
    finally:
        await queue.app.close_async()
    return f"procrastinate: {waiting} periodic jobs waiting"


async def _storage(settings: Settings) -> str:
    await store_from_url(settings.resolved_storage_url, s3_endpoint_url=settings.s3_endpoint_url).check()
    return settings.resolved_storage_url.split("?", 1)[0]


async def _provider(registry: ProviderRegistry, name: str) -> str:
    report = await registry.get(name).health()
    if not report.healthy or report.out_of_credit:
        raise RuntimeError(report.detail or "out of provider credit")
    return report.detail or "reachable"


def _settings_checks(settings: Settings) -> list[Check]:
    mode = "embedded (SQLite, in-process worker)" if settings.embedded else "production (PostgreSQL + queue)"
    checks = [Check("mode", True, mode), Check("public url", True, settings.public_url)]
    try:
        settings.check_production_safety()
        kept = "set" if settings.secret_key else f"made on first start, kept in {settings.data_dir}"
        checks.append(Check("secret key", True, kept))
    except RuntimeError as exc:
        checks.append(Check("secret key", False, str(exc), fatal=True))
    try:
        catalog = load_configured_catalog(settings)
        checks.append(Check("catalog", True, f"{len(catalog.models)} models ({settings.catalog or 'built-in'})"))
    except Exception as exc:  # noqa: BLE001 - a broken catalog is reported with its own message
        checks.append(Check("catalog", False, str(exc)[:300], fatal=True))
    return checks


async def diagnose(settings: Settings) -> list[Check]:
    checks = _settings_checks(settings)
    db = database_for(settings.resolved_database_url)
    registry = ProviderRegistry(provider_configs(settings))
    configured = [n for n in registry.names() if registry.get(n).configured()]
    probes: list[Awaitable[Check]] = [
        _probe("database", _database(db), fatal=True),
        _probe("storage", _storage(settings), fatal=True),
    ]
    if not settings.embedded:
        probes.append(_probe("queue", _queue(settings), fatal=True))
    if settings.smtp_url:
        probes.append(_probe("email", mail.probe_smtp(settings.smtp_url, _TIMEOUT), fatal=False))
    probes.extend(_probe(f"provider {n}", _provider(registry, n), fatal=False) for n in configured)
    try:
        results: list[Any] = list(await asyncio.gather(*probes))
        if results[0].ok:  # the database answered: is it kept analyzed?
            results.insert(1, await _maintenance(db))
    finally:
        await registry.aclose()
        await db.close()
    if not settings.smtp_url:
        folder = (
            f"written to {settings.mail_dir} (no REELGATE_SMTP_URL)"
            if settings.mail_dir
            else "off (no REELGATE_SMTP_URL)"
        )
        results.append(Check("email", True, folder))
    unconfigured = sorted(set(registry.names()) - set(configured))
    if unconfigured:
        results.append(Check("providers without keys", True, ", ".join(unconfigured)))
    return checks + results
