"""Each ledger operation applies once per (kind, reference) on both databases: a retried grant, hold or
settlement changes nothing (PostgreSQL's upsert rowcount is not trusted for this)."""

from __future__ import annotations

import pytest

from reelgate.db.engine import Database
from reelgate.db.migrate import upgrade_to_head
from reelgate.db.tables import User
from reelgate.domain.ledger import EntryKind
from reelgate.services import ledger


async def test_operations_apply_once(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade_to_head(db.engine)
        async with db.transaction() as session:
            session.add(User(id="usr_once", email="once@example.com"))
            await session.flush()
            await ledger.open_account(session, "usr_once")
            assert await ledger.credit(session, "usr_once", 50, kind=EntryKind.GRANT, reference="g1") is True
            assert await ledger.credit(session, "usr_once", 50, kind=EntryKind.GRANT, reference="g1") is False
            await ledger.hold(session, "usr_once", 20, generation_id="gen_a")
            with pytest.raises(RuntimeError):
                await ledger.hold(session, "usr_once", 20, generation_id="gen_a")
        async with db.transaction() as session:
            assert await ledger.settle(session, "usr_once", 20, generation_id="gen_a", capture=True) is True
            assert await ledger.settle(session, "usr_once", 20, generation_id="gen_a", capture=True) is False
            assert await ledger.settle(session, "usr_once", 20, generation_id="gen_a", capture=False) is False
            assert await ledger.credits_of(session, "usr_once") == ledger.Credits(available=30, held=0, captured=20)
            assert await ledger.check_ledger(session) == []
    finally:
        await db.dispose()
