"""Each ledger operation applies once per (kind, reference) on both databases: a retried grant, hold or
settlement changes nothing (PostgreSQL's upsert rowcount is not trusted for this)."""

from __future__ import annotations

import pytest

from reelgate.db.codec import utc_now
from reelgate.db.database import open_database
from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.queries import users
from reelgate.db.records import User
from reelgate.db.sql import Tx
from reelgate.domain.ledger import EntryKind
from reelgate.services import ledger


async def test_operations_apply_once(database_url: str) -> None:
    db = await open_database(database_url)
    user = User("usr_once", "once@example.com", None, "", False, False, False, utc_now())

    def first(tx: Tx) -> None:
        users.insert_user(tx, user)
        ledger_queries.open_account(tx, user.id)
        assert ledger_queries.credit_account(tx, user.id, 50, kind=EntryKind.GRANT, reference="g1") is True
        assert ledger_queries.credit_account(tx, user.id, 50, kind=EntryKind.GRANT, reference="g1") is False
        ledger_queries.hold_credits(tx, user.id, 20, generation_id="gen_a")
        with pytest.raises(RuntimeError):
            ledger_queries.hold_credits(tx, user.id, 20, generation_id="gen_a")

    def second(tx: Tx) -> None:
        assert ledger_queries.settle_hold(tx, user.id, 20, generation_id="gen_a", capture=True) is True
        assert ledger_queries.settle_hold(tx, user.id, 20, generation_id="gen_a", capture=True) is False
        assert ledger_queries.settle_hold(tx, user.id, 20, generation_id="gen_a", capture=False) is False
        assert ledger.credits_in(tx, user.id) == ledger.Credits(available=30, held=0, captured=20)

    try:
        await db.write(first)
        await db.write(second)
        assert await db.read(ledger._check, snapshot=True) == []
    finally:
        await db.close()
