"""An administrator's actions on users, through HTTP on both databases, and from the CLI: disable (sessions and
API keys stop at once, a running job finishes and is charged once), enable, promote and demote, each written
to an audit log administrators read; credit grants are logged too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from reelgate.services import user_admin
from tests.conftest import Account, Running, make_account, make_settings, start_app
from tests.helpers import assert_ledger_ok, wait_for_terminal

PASSWORD = "correct horse battery"


async def _studio_session(client: httpx.AsyncClient, email: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/signup")).text)
    assert token
    signed_in = await client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)})
    assert signed_in.status_code == 303, signed_in.text[:300]
    csrf = re.search(r'data-csrf="([^"]+)"', (await client.get("/studio")).text)
    assert csrf
    return csrf.group(1)


async def test_disabling_stops_sessions_and_keys_at_once_and_lets_running_jobs_finish(
    running: Running, bob: Account
) -> None:
    admin = await make_account(running.ctx, email="root@example.com")
    await accounts_promote(running, admin)
    transport = httpx.ASGITransport(app=running.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        await _studio_session(browser, bob.email)
        job = await running.client.post(
            "/api/v1/generations", headers=bob.headers, json={"model": "sandbox-t2v", "prompt": "a quiet lake"}
        )
        assert job.status_code == 202
        disabled = await running.client.post(
            f"/api/v1/admin/users/{bob.id}/disable", headers=admin.headers, json={"reason": "chargeback fraud"}
        )
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        assert (await browser.get("/api/v1/me")).status_code == 401
        assert (await running.client.get("/api/v1/me", headers=bob.headers)).status_code == 401
        assert (await _try_sign_in(browser, bob.email)).status_code == 401

    # The running job finishes and is charged once; nothing is refunded for the disabling.
    enabled = await running.client.post(f"/api/v1/admin/users/{bob.id}/enable", headers=admin.headers)
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    final = await wait_for_terminal(running.client, job.json()["id"], bob.headers)
    assert final["status"] == "succeeded" and final["credits_refunded"] == 0
    assert final["credits_charged"] == job.json()["credits_held"]
    assert (await running.client.get("/api/v1/me", headers=bob.headers)).status_code == 200
    await assert_ledger_ok(running.ctx)

    audit = await running.client.get("/api/v1/admin/audit", headers=admin.headers)
    actions = [(e["action"], e["email"], e["actor_id"]) for e in audit.json()["data"]]
    assert actions[:2] == [("user.enable", bob.email, admin.id), ("user.disable", bob.email, admin.id)]
    assert audit.json()["data"][1]["detail"] == "chargeback fraud"
    assert (await running.client.get("/api/v1/admin/audit", headers=bob.headers)).status_code == 403


async def accounts_promote(running: Running, account: Account) -> None:
    await user_admin.set_admin(running.ctx, None, account.id, True)


async def _try_sign_in(client: httpx.AsyncClient, email: str) -> httpx.Response:
    token = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/signup")).text)
    assert token
    return await client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)})


async def test_promote_demote_grants_and_the_guard_rails(running: Running, bob: Account) -> None:
    admin = await make_account(running.ctx, email="root@example.com")
    await accounts_promote(running, admin)
    assert (await running.client.get("/api/v1/admin/audit", headers=bob.headers)).status_code == 403
    promoted = await running.client.post(f"/api/v1/admin/users/{bob.id}/promote", headers=admin.headers)
    assert promoted.json()["is_admin"] is True
    assert (await running.client.get("/api/v1/admin/audit", headers=bob.headers)).status_code == 200
    demoted = await running.client.post(f"/api/v1/admin/users/{bob.id}/demote", headers=admin.headers)
    assert demoted.json()["is_admin"] is False
    assert (await running.client.get("/api/v1/admin/audit", headers=bob.headers)).status_code == 403

    # Nobody disables or demotes themselves, and the last enabled administrator stays one.
    itself = await running.client.post(f"/api/v1/admin/users/{admin.id}/disable", headers=admin.headers)
    assert itself.status_code == 409
    assert (
        await running.client.post(f"/api/v1/admin/users/{admin.id}/demote", headers=admin.headers)
    ).status_code == 409
    missing = await running.client.post("/api/v1/admin/users/usr_nobody/disable", headers=admin.headers)
    assert missing.status_code == 404

    granted = await running.client.post(
        "/api/v1/admin/credits",
        headers=admin.headers,
        json={"user_id": bob.id, "amount": 250, "reason": "beta tester", "kind": "grant"},
    )
    assert granted.status_code == 200
    audit = (await running.client.get(f"/api/v1/admin/audit?user_id={bob.id}", headers=admin.headers)).json()["data"]
    assert [e["action"] for e in audit] == ["credits.grant", "user.demote", "user.promote"]
    assert audit[0]["data"] == {"amount": 250} and audit[0]["detail"] == "beta tester"


async def test_admin_pages_disable_a_user_and_show_the_audit_log(running: Running, bob: Account) -> None:
    admin = await make_account(running.ctx, email="root@example.com")
    await accounts_promote(running, admin)
    csrf = await _studio_session(running.client, admin.email)
    users = await running.client.get(f"/admin?q={bob.email}")
    assert f"/admin/users/{bob.id}/disable" in users.text
    done = await running.client.post(f"/admin/users/{bob.id}/disable", data={"csrf_token": csrf})
    assert done.status_code == 303
    assert (await running.client.get("/api/v1/me", headers=bob.headers)).status_code == 401
    assert f"/admin/users/{bob.id}/enable" in (await running.client.get(f"/admin?q={bob.email}")).text
    granted = await running.client.post(
        f"/admin/users/{bob.id}/grant", data={"csrf_token": csrf, "amount": "40", "reason": "sorry for the outage"}
    )
    assert granted.status_code == 303
    page = await running.client.get("/admin/audit")
    assert page.status_code == 200
    assert "disabled" in page.text and "credits granted" in page.text and "sorry for the outage" in page.text
    assert page.text.count(bob.email) >= 2 and admin.email in page.text


async def test_the_cli_disables_and_enables_users(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(REELGATE_DATA_DIR=str(tmp_path / "data"), COLUMNS="120")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reelgate", *args], env=env, capture_output=True, text=True, timeout=120
        )

    made = run("user", "create", "cli@example.com", "--password", PASSWORD, "--api-key")
    assert made.returncode == 0, made.stderr
    bearer = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
    assert run("users", "disable", "cli@example.com").stdout.strip() == "disabled cli@example.com"
    async for running in start_app(make_settings(tmp_path / "data", None)):
        assert (await running.client.get("/api/v1/me", headers=bearer)).status_code == 401
        log = await user_admin.audit_log(running.ctx)
        assert [(e.action, e.actor_id, e.target_email) for e in log] == [("user.disable", None, "cli@example.com")]
    assert run("users", "enable", "cli@example.com").stdout.strip() == "enabled cli@example.com"
    assert "nothing to change" in run("users", "enable", "cli@example.com").stdout
    async for running in start_app(make_settings(tmp_path / "data", None)):
        assert (await running.client.get("/api/v1/me", headers=bearer)).status_code == 200
