"""Runs Alembic migrations programmatically (at start-up and for `reelgate migrate`)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("reelgate.db") / "migrations"))
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    def _run(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        # "heads": feature migrations may branch from the same parent; all of them are applied.
        command.upgrade(config, "heads")

    async with engine.begin() as conn:
        await conn.run_sync(_run)
