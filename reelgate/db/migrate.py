"""Runs Alembic migrations (at start-up and for `reelgate migrate`); blocking, so callers use a thread."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("reelgate.db") / "migrations"))
    return config


def upgrade_to_head(sqlalchemy_url: str) -> None:
    engine = create_engine(sqlalchemy_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            # "heads": feature migrations may branch from the same parent; all of them are applied.
            command.upgrade(config, "heads")
    finally:
        engine.dispose()
