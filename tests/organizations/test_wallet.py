"""An organization's wallet is an account of the same ledger: administrators grant and adjust it, and the ledger
check covers it; the migration that made it possible keeps every existing balance."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from reelgate.db.database import sqlalchemy_url
from reelgate.db.migrate import alembic_config
from reelgate.services import ledger
from tests.conftest import Account, Running
from tests.helpers import make_admin
from tests.organizations.conftest import create_org


async def test_administrators_credit_an_organizations_wallet(running: Running, alice: Account, bob: Account) -> None:
    client, ctx = running.client, running.ctx
    await make_admin(ctx, bob.id)
    org_id = await create_org(client, alice)
    before = await client.get(f"/api/v1/organizations/{org_id}", headers=alice.headers)
    assert before.json()["credits"] == {"available": 0, "held": 0}

    grant = {"organization_id": org_id, "amount": 500, "reason": "team trial", "kind": "grant"}
    answer = await client.post("/api/v1/admin/credits", json=grant, headers=bob.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["organization_id"] == org_id and answer.json()["available"] == 500
    adjust = {"organization_id": org_id, "amount": -700, "reason": "correction", "kind": "adjust"}
    taken = await client.post("/api/v1/admin/credits", json=adjust, headers=bob.headers)
    assert taken.json()["applied"] == -500 and taken.json()["available"] == 0
    again = {**grant, "amount": 300}
    assert (await client.post("/api/v1/admin/credits", json=again, headers=bob.headers)).status_code == 200

    after = await client.get(f"/api/v1/organizations/{org_id}", headers=alice.headers)
    assert after.json()["credits"] == {"available": 300, "held": 0}
    # The members' own accounts are apart from the wallet.
    assert (await ledger.credits_of(ctx, alice.id)).available == 100
    assert await ledger.check_ledger(ctx) == []

    unknown = {**grant, "organization_id": "org_nothing"}
    assert (await client.post("/api/v1/admin/credits", json=unknown, headers=bob.headers)).status_code == 404
    both = {**grant, "user_id": alice.id}
    assert (await client.post("/api/v1/admin/credits", json=both, headers=bob.headers)).status_code == 422
    audit = await client.get("/api/v1/admin/audit", headers=bob.headers)
    assert audit.status_code == 200
    assert any(e["data"].get("organization_id") == org_id for e in audit.json()["data"])


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return str(request.getfixturevalue("empty_pg_database_url"))


def test_the_migration_keeps_balances_and_opens_the_ledger_to_organizations(empty_url: str) -> None:
    url = sqlalchemy_url(empty_url)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0015_organizations")
            connection.execute(
                text(
                    "INSERT INTO users (id, email, display_name, is_admin, flagged, disabled, created_at) "
                    "VALUES ('usr_1', 'a@example.com', '', FALSE, FALSE, FALSE, '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO balances (user_id, available, held, captured, updated_at, in_flight) "
                    "VALUES ('usr_1', 70, 20, 10, '2026-01-01 00:00:00', 1)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO ledger_entries (user_id, kind, amount, reference, note, created_at) "
                    "VALUES ('usr_1', 'grant', 100, 'g1', '', '2026-01-01 00:00:00')"
                )
            )
            command.upgrade(config, "heads")
            row = connection.execute(text("SELECT available, held, captured, in_flight FROM balances")).one()
            assert tuple(row) == (70, 20, 10, 1)
            assert connection.execute(text("SELECT count(*) FROM ledger_entries")).scalar() == 1
            # An organization's id is an account of its own now.
            connection.execute(
                text(
                    "INSERT INTO balances (user_id, available, held, captured, updated_at, in_flight) "
                    "VALUES ('org_1', 0, 0, 0, '2026-01-01 00:00:00', 0)"
                )
            )
    finally:
        engine.dispose()
