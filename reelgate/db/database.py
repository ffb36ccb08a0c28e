"""The one way to reach the database: `await db.write(work)` and `await db.read(work)`.

`work` is a plain function of a Tx (db/sql.py) that calls named queries (db/queries/): it runs whole on a
database thread (one hop per transaction, never a statement on the event loop) and its return value comes back.
A write commits when the function returns and rolls back when it raises; the awaiting caller gets the result
only once the commit is durable. SQLite (embedded mode) and PostgreSQL (production) run the same functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from reelgate.db.migrate import upgrade_to_head
from reelgate.db.sql import Tx

T = TypeVar("T")


class Database(Protocol):
    dialect: str

    async def open(self) -> None: ...

    async def write(self, work: Callable[[Tx], T], *, grouped: bool = False, confined_to: str | None = None) -> T:
        """Runs `work` in one write transaction. `grouped` marks a short one (a few statements, no waiting on
        others' locks by design) that may share its COMMIT with other such writes: SQLite groups every write
        anyway, PostgreSQL groups these only (db/postgres.py says why). `confined_to`, with `grouped`: the id of
        the one generation whose rows alone the work changes, which lets PostgreSQL commit it beside other
        generations' writes; a statement outside that generation sends it back to the shared lane."""
        ...

    async def read(self, work: Callable[[Tx], T], *, snapshot: bool = False) -> T:
        """Runs `work` read-only; `snapshot=True` makes all its statements see one committed state."""
        ...

    async def close(self) -> None: ...


def split_url(url: str) -> tuple[str, str]:
    """("sqlite", file path) or ("postgresql", libpq URI), from the URLs operators paste (any driver suffix)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path or path == ":memory:":
            raise ValueError("embedded mode needs a database file (sqlite:///path/to/reelgate.db)")
        return "sqlite", path
    if base in ("postgresql", "postgres"):
        return "postgresql", f"postgresql://{rest}"
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL, for Alembic (the schema's only user of SQLAlchemy)."""
    dialect, target = split_url(url)
    if dialect == "sqlite":
        return f"sqlite:///{target}"
    return "postgresql+psycopg://" + target.split("://", 1)[1]


def database_for(url: str, *, pool_size: int = 10) -> Database:
    """A Database for the URL, not yet opened."""
    dialect, target = split_url(url)
    if dialect == "sqlite":
        from reelgate.db.sqlite import SqliteDatabase

        return SqliteDatabase(target)
    from reelgate.db.postgres import PostgresDatabase

    return PostgresDatabase(target, pool_size=pool_size)


async def open_database(url: str, *, pool_size: int = 10, migrate: bool = True) -> Database:
    """Opens the database, first bringing its schema up to date (Alembic) unless told not to."""
    db = database_for(url, pool_size=pool_size)
    if migrate:
        if db.dialect == "sqlite":
            from reelgate.db.sqlite import prepare_file

            await asyncio.to_thread(prepare_file, split_url(url)[1])
        await asyncio.to_thread(upgrade_to_head, sqlalchemy_url(url))
    await db.open()
    return db
