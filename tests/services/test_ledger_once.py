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


async def test_a_partial_capture_releases_the_rest_once(database_url: str) -> None:
    """A per-token job captures what it used and releases the rest of its hold in one transaction; the capture is
    the generation's settlement, so a second one (partial, whole or a release) moves nothing."""
    db = await open_database(database_url)
    user = User("usr_part", "part@example.com", None, "", False, False, False, utc_now())

    def held(tx: Tx) -> None:
        users.insert_user(tx, user)
        ledger_queries.open_account(tx, user.id)
        ledger_queries.credit_account(tx, user.id, 50, kind=EntryKind.GRANT, reference="g1")
        ledger_queries.hold_credits(tx, user.id, 20, generation_id="gen_t")

    def settled(tx: Tx) -> None:
        assert ledger_queries.settle_hold_in_part(tx, user.id, 20, 7, generation_id="gen_t") is True
        assert ledger.credits_in(tx, user.id) == ledger.Credits(available=43, held=0, captured=7)

    def again(tx: Tx) -> None:
        assert ledger_queries.settle_hold_in_part(tx, user.id, 20, 7, generation_id="gen_t") is False
        assert ledger_queries.settle_hold(tx, user.id, 20, generation_id="gen_t", capture=False) is False
        assert ledger.credits_in(tx, user.id) == ledger.Credits(available=43, held=0, captured=7)

    try:
        await db.write(held)
        await db.write(settled)
        await db.write(again)
        assert await db.read(ledger._check, snapshot=True) == []
    finally:
        await db.close()
