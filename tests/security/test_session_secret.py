"""Sessions on the default setup: no operator key means a random key made on first start, never a public one."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer

from reelgate.bootstrap import build_context
from reelgate.data_dir import SECRET_KEY_FILE
from reelgate.settings import PUBLIC_PLACEHOLDER_KEY, Settings
from tests.conftest import Running, make_account, make_settings, start_app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", None, secret_key=None)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async for value in start_app(settings):
        yield value


def _forge(key: str, user_id: str) -> str:
    return URLSafeTimedSerializer(key, salt="reelgate-session").dumps({"u": user_id, "c": "forged"})


async def test_a_session_signed_with_the_public_placeholder_is_refused(running: Running) -> None:
    admin = await make_account(running.ctx, email="boss@example.com")
    forged = _forge(PUBLIC_PLACEHOLDER_KEY, admin.id)
    me = await running.client.get("/api/v1/me", headers={"Cookie": f"rg_session={forged}"})
    assert me.status_code == 401, me.text
    minted = await running.client.post(
        "/api/v1/api-keys",
        json={"name": "stolen"},
        headers={"Cookie": f"rg_session={forged}", "x-csrf-token": "forged"},
    )
    assert minted.status_code == 401


async def test_the_key_is_made_once_kept_private_and_shared_by_restarts(running: Running, settings: Settings) -> None:
    path = settings.data_dir / SECRET_KEY_FILE
    key = path.read_text().strip()
    assert len(key) >= 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    # A second process on the same data dir (a restart, the CLI) signs with the same key.
    again = make_settings(settings.data_dir, None, secret_key=None)
    assert again.session_secret == key
    # Sessions are rows on the server: even the key itself forges no session cookie.
    account = await make_account(running.ctx)
    me = await running.client.get("/api/v1/me", headers={"Cookie": f"rg_session={_forge(key, account.id)}"})
    assert me.status_code == 401


async def test_production_needs_a_key_and_nobody_may_use_the_placeholder(tmp_path: Path) -> None:
    production = Settings(data_dir=tmp_path, database_url="postgresql://postgres@127.0.0.1/none")
    with pytest.raises(RuntimeError, match="REELGATE_SECRET_KEY is not set"):
        await build_context(production)
    for database_url in (None, "postgresql://postgres@127.0.0.1/none"):
        published = Settings(data_dir=tmp_path, database_url=database_url, secret_key=PUBLIC_PLACEHOLDER_KEY)
        with pytest.raises(RuntimeError, match="placeholder"):
            await build_context(published)
    assert not (tmp_path / SECRET_KEY_FILE).exists()
