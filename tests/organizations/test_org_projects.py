"""Projects owned by an organization (team campaigns), through the API on both databases: managers create and
change them, every member files into them on the organization's wallet, the budget caps all members together
(also under a concurrent burst from two members), outsiders and removed members get 404, a manager opens the
team's generations by id, and deleting the project gives each member's generations back to that member."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest

from reelgate.queue import conninfo
from reelgate.services import generations, ledger
from reelgate.settings import Settings
from tests.budgets.test_project_budgets import (
    HANGING,
    PRICE,
    QUICK,
    _error,  # the contract's error shape, checked
)
from tests.conftest import Account, Running, make_account
from tests.helpers import assert_ledger_ok, wait_for_terminal
from tests.organizations.conftest import Mailbox, create_org, fund, join


async def _team_project(client: httpx.AsyncClient, manager: Account, org_id: str, budget: int | None) -> str:
    body = {"name": "Spring launch", "budget_credits": budget, "organization": org_id}
    made = await client.post("/api/v1/projects", headers=manager.headers, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["organization"] == org_id and made.json()["budget_credits"] == budget
    return str(made.json()["id"])


async def _submit(
    client: httpx.AsyncClient, account: Account, order: dict[str, Any], project: str, org_id: str | None
) -> httpx.Response:
    body = {**order, "project_id": project} | ({"organization": org_id} if org_id else {})
    return await client.post("/api/v1/generations", headers=account.headers, json=body)


async def test_members_file_into_a_team_project_and_its_budget_caps_them_all(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client, ctx = running.client, running.ctx
    carol = await make_account(ctx, credits=100, email="carol@example.com")
    org_id = await create_org(client, alice)
    await join(running, mailbox, alice, org_id, bob, "member")
    await fund(running, org_id, 100)

    # Only owners and admins make team projects; an outsider cannot tell the organization exists.
    refused = await client.post("/api/v1/projects", headers=bob.headers, json={"name": "x", "organization": org_id})
    _error(refused, 403, "forbidden")
    refused = await client.post("/api/v1/projects", headers=carol.headers, json={"name": "x", "organization": org_id})
    _error(refused, 404, "not_found")
    project = await _team_project(client, alice, org_id, 3 * PRICE)

    # Every member sees it, in their project list and the organization's; an outsider gets 404.
    mine = (await client.get("/api/v1/projects", headers=bob.headers)).json()["data"]
    assert [p["organization"] for p in mine if p["id"] == project] == [org_id]
    listed = await client.get(f"/api/v1/organizations/{org_id}/projects", headers=bob.headers)
    assert [p["id"] for p in listed.json()["data"]] == [project]
    _error(await client.get(f"/api/v1/projects/{project}", headers=carol.headers), 404, "not_found")
    _error(await client.get(f"/api/v1/organizations/{org_id}/projects", headers=carol.headers), 404, "not_found")

    # Filed on the team's wallet only: without "organization" the answer says which one; an outsider gets 404.
    details = _error(await _submit(client, bob, HANGING, project, None), 422, "validation_error")
    assert details == {"field": "organization", "allowed": [org_id]}
    _error(await _submit(client, carol, HANGING, project, None), 404, "not_found")
    carol_org = await create_org(client, carol, "Carol's studio")
    _error(await _submit(client, carol, HANGING, project, carol_org), 404, "not_found")

    # Two members' generations count against the one budget; nothing of the refused one is held.
    by_bob = await _submit(client, bob, HANGING, project, org_id)
    by_alice = await _submit(client, alice, HANGING, project, org_id)
    assert by_bob.status_code == 202 and by_alice.status_code == 202, (by_bob.text, by_alice.text)
    assert by_bob.json()["project_id"] == project and by_bob.json()["organization"] == org_id
    quick = await _submit(client, bob, QUICK, project, org_id)
    assert quick.status_code == 202
    await wait_for_terminal(client, quick.json()["id"], bob.headers)
    details = _error(await _submit(client, alice, QUICK, project, org_id), 402, "budget_exceeded")
    assert details == {"project_id": project, "budget": 3 * PRICE, "spent": PRICE, "held": 2 * PRICE, "required": PRICE}
    wallet = await ledger.credits_of(ctx, org_id)
    assert (wallet.available, wallet.held, wallet.captured) == (100 - 3 * PRICE, 2 * PRICE, PRICE)
    spend = (await client.get(f"/api/v1/projects/{project}", headers=bob.headers)).json()
    assert spend["spend"]["credits_captured"] == PRICE and spend["spend"]["credits_held"] == 2 * PRICE
    assert spend["totals"]["generations"] == 3  # every member's, not only the caller's

    # A member may look but not change it; the manager raises the budget and the next one goes through.
    _error(await client.patch(f"/api/v1/projects/{project}", headers=bob.headers, json={"name": "y"}), 403, "forbidden")
    _error(
        await client.patch(f"/api/v1/projects/{project}", headers=bob.headers, json={"budget_credits": 99}),
        403,
        "forbidden",
    )
    _error(await client.delete(f"/api/v1/projects/{project}", headers=bob.headers), 403, "forbidden")
    raised = await client.patch(f"/api/v1/projects/{project}", headers=alice.headers, json={"budget_credits": 20})
    assert raised.status_code == 200 and raised.json()["budget_credits"] == 20
    assert (await _submit(client, alice, QUICK, project, org_id)).status_code == 202

    # A team project is never a member's default, and generations neither move into nor out of it.
    own = await client.post("/api/v1/generations", headers=bob.headers, json=QUICK)
    assert own.status_code == 202 and own.json()["project_id"] != project
    moved = await client.post(
        "/api/v1/generations/move", headers=bob.headers, json={"ids": [own.json()["id"]], "project_id": project}
    )
    _error(moved, 422, "validation_error")
    out = await client.post(
        "/api/v1/generations/move",
        headers=bob.headers,
        json={"ids": [quick.json()["id"]], "project_id": own.json()["project_id"]},
    )
    assert out.status_code == 200 and out.json()["not_found"] == [quick.json()["id"]], out.text
    await assert_ledger_ok(ctx)


async def test_removal_ends_access_and_managers_see_the_teams_generations(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client, ctx = running.client, running.ctx
    dave = await make_account(ctx, credits=0, email="dave@example.com")
    org_id = await create_org(client, alice)
    await join(running, mailbox, alice, org_id, bob, "member")
    await join(running, mailbox, alice, org_id, dave, "admin")
    await fund(running, org_id, 100)
    project = await _team_project(client, alice, org_id, None)
    made = await _submit(client, bob, QUICK, project, org_id)
    assert made.status_code == 202, made.text
    job = made.json()["id"]
    await wait_for_terminal(client, job, bob.headers)

    # An admin opens the member's generation; once no longer an admin, it is 404 again.
    assert (await client.get(f"/api/v1/generations/{job}", headers=dave.headers)).status_code == 200
    video = await client.get(f"/api/v1/generations/{job}/content", headers=dave.headers)
    assert video.status_code == 200 and video.content
    demoted = await client.patch(
        f"/api/v1/organizations/{org_id}/members/{dave.id}", headers=alice.headers, json={"role": "member"}
    )
    assert demoted.status_code == 200, demoted.text
    _error(await client.get(f"/api/v1/generations/{job}", headers=dave.headers), 404, "not_found")

    # Removed: the project and filing into it are 404 with the next request; the member keeps their generation.
    removed = await client.delete(f"/api/v1/organizations/{org_id}/members/{bob.id}", headers=alice.headers)
    assert removed.status_code == 204
    _error(await client.get(f"/api/v1/projects/{project}", headers=bob.headers), 404, "not_found")
    assert project not in {p["id"] for p in (await client.get("/api/v1/projects", headers=bob.headers)).json()["data"]}
    _error(await _submit(client, bob, QUICK, project, org_id), 404, "not_found")
    _error(await _submit(client, bob, QUICK, project, None), 404, "not_found")
    assert (await client.get(f"/api/v1/generations/{job}", headers=bob.headers)).status_code == 200

    # Deleting the project gives each member's generations back to that member's own default project.
    by_alice = await _submit(client, alice, QUICK, project, org_id)
    await wait_for_terminal(client, by_alice.json()["id"], alice.headers)
    _error(await client.delete(f"/api/v1/projects/{project}", headers=alice.headers), 409, "conflict")
    refused = await client.delete(f"/api/v1/projects/{project}?generations=delete", headers=alice.headers)
    _error(refused, 422, "validation_error")
    deleted = await client.delete(f"/api/v1/projects/{project}?generations=move", headers=alice.headers)
    assert deleted.status_code == 200, deleted.text
    alice_default = deleted.json()["generations_moved_to"]
    assert (await client.get(f"/api/v1/generations/{by_alice.json()['id']}", headers=alice.headers)).json()[
        "project_id"
    ] == alice_default
    bobs = (await client.get(f"/api/v1/generations/{job}", headers=bob.headers)).json()
    bob_projects = {p["id"]: p for p in (await client.get("/api/v1/projects", headers=bob.headers)).json()["data"]}
    assert bobs["project_id"] in bob_projects and bob_projects[bobs["project_id"]]["organization"] is None
    _error(await client.get(f"/api/v1/projects/{project}", headers=alice.headers), 404, "not_found")
    await assert_ledger_ok(ctx)


async def test_a_burst_from_two_members_never_passes_the_team_budget(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client, ctx = running.client, running.ctx
    org_id = await create_org(client, alice)
    await join(running, mailbox, alice, org_id, bob, "member")
    await fund(running, org_id, 100)
    project = await _team_project(client, alice, org_id, 5 * PRICE)
    answers = await asyncio.gather(*(_submit(client, member, HANGING, project, org_id) for member in (alice, bob) * 8))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] * 5 + [402] * 11, [a.text for a in answers if a.status_code not in (202, 402)]
    for refused in (a for a in answers if a.status_code == 402):
        _error(refused, 402, "budget_exceeded")
    wallet = await ledger.credits_of(ctx, org_id)
    assert (wallet.available, wallet.held) == (100 - 5 * PRICE, 5 * PRICE)
    await assert_ledger_ok(ctx)


def _waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


async def _until_blocked(url: str) -> None:
    for _ in range(200):
        if await asyncio.to_thread(_waiting_on_a_lock, url):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("nothing waited on the project's row lock")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_deleting_a_team_project_races_a_submit_into_it(
    running: Running, settings: Settings, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    """PostgreSQL only (SQLite's BEGIN IMMEDIATE runs one writer at a time). A submit that commits while the
    deletion waits is moved with the others, never deleted with the project; a submit that waits on the
    deletion answers 404 and holds nothing."""
    client, ctx = running.client, running.ctx
    url = conninfo(settings)
    org_id = await create_org(client, alice)
    await join(running, mailbox, alice, org_id, bob, "member")
    await fund(running, org_id, 100)
    project = await _team_project(client, alice, org_id, None)
    first = await _submit(client, bob, QUICK, project, org_id)
    await wait_for_terminal(client, first.json()["id"], bob.headers)

    # A row committed by a transaction that was inserting into the project when the deletion began.
    with psycopg.connect(url) as inserting:
        columns = [
            str(row[0])
            for row in inserting.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'generations' "
                "ORDER BY ordinal_position"
            ).fetchall()
        ]
        # A copy of the finished one under a new id and token, holding and charging nothing (its credits moved in
        # the original's ledger entries only).
        fresh = {"id": "%(new)s", "webhook_token": "%(new)s", "credits_held": "0", "credits_charged": "0"}
        values = ", ".join(fresh.get(c, c) for c in columns)
        inserting.execute(
            f"INSERT INTO generations ({', '.join(columns)}) SELECT {values} FROM generations WHERE id = %(old)s",
            {"new": "gen_raced", "old": first.json()["id"]},
        )
        deleting = asyncio.create_task(
            client.delete(f"/api/v1/projects/{project}?generations=move", headers=alice.headers)
        )
        await _until_blocked(url)
        inserting.commit()
    deleted = await deleting
    assert deleted.status_code == 200, deleted.text
    raced = await generations.get_generation(ctx, bob.id, "gen_raced")  # moved, not deleted with the project
    assert raced.project_id == (await generations.get_generation(ctx, bob.id, first.json()["id"])).project_id

    # A submit that reaches the project while its deletion holds the row: 404, nothing held.
    second = await _team_project(client, alice, org_id, None)
    wallet = await ledger.credits_of(ctx, org_id)
    with psycopg.connect(url) as deleter:
        deleter.execute("SELECT id FROM projects WHERE id = %s FOR UPDATE", (second,))
        submitting = asyncio.create_task(_submit(client, bob, QUICK, second, org_id))
        await _until_blocked(url)
        deleter.execute("DELETE FROM projects WHERE id = %s", (second,))
        deleter.commit()
    _error(await submitting, 404, "not_found")
    after = await ledger.credits_of(ctx, org_id)
    assert (after.available, after.held) == (wallet.available, wallet.held)
    await assert_ledger_ok(ctx)
