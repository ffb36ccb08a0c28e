"""Embedded mode when the disk fails under it: a database capped by max_page_count, a full file system, an I/O
error on COMMIT. Through the HTTP API: every 202 keeps its generation and its hold, every refusal is a 503 in the
contract's shape, the ledger balances, and the server takes work again once the fault is gone."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reelgate.db.sql import query
from reelgate.services import ledger
from tests.conftest import Running, make_account, make_settings, start_app
from tests.helpers import assert_ledger_ok

BODY = {"model": "sandbox-t2v", "prompt": "[hang] a fox waiting out the fault", "duration": 2}
CREDITS = 100_000
ROOT = Path(__file__).resolve().parents[2]


def check_outcomes(report: dict[str, Any]) -> None:
    """The promises of the data layer under a fault, read off one run."""
    accepted = []
    for phase in ("before", "during", "after"):
        for status, body in report[phase]:
            if status == 202:
                accepted.append(body["id"])
            else:
                assert status == 503, (phase, status, body)
                assert body["error"]["code"] == "service_unavailable", body
    assert all(status == 202 for status, _ in report["before"] + report["after"]), report
    assert any(status == 503 for status, _ in report["during"]), "the fault never reached a submit"
    assert set(accepted) == set(report["listed"])  # every 202 kept its generation; no refusal left one
    assert report["credits"] == {"available": CREDITS - report["quoted"], "held": report["quoted"]}
    assert report["ledger_problems"] == []


@pytest.fixture
async def capped(tmp_path: Path) -> Any:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'reelgate.db'}", max_in_flight=0)
    async for running in start_app(settings):
        yield running


async def _submit_all(running: Running, headers: dict[str, str], n: int) -> list[tuple[int, Any]]:
    async def one() -> tuple[int, Any]:
        response = await running.client.post("/api/v1/generations", headers=headers, json=BODY)
        return response.status_code, response.json()

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_a_database_that_reaches_its_page_cap(capped: Running) -> None:
    running = capped
    user = await make_account(running.ctx, credits=CREDITS)
    before = await _submit_all(running, user.headers, 4)
    pages = int(await running.ctx.db.write(lambda tx: tx.scalar(query("PRAGMA page_count"))))
    await running.ctx.db.write(lambda tx: tx.scalar(query(f"PRAGMA max_page_count = {pages + 3}")))
    during = await _submit_all(running, user.headers, 40)
    await running.ctx.db.write(lambda tx: tx.scalar(query("PRAGMA max_page_count = 1073741823")))
    after = await _submit_all(running, user.headers, 4)
    listed = (await running.client.get("/api/v1/generations?limit=100", headers=user.headers)).json()["data"]
    credits = (await running.client.get("/api/v1/me", headers=user.headers)).json()["credits"]
    problems = [p.message for p in await ledger.check_ledger(running.ctx)]
    check_outcomes(
        {
            "before": before,
            "during": during,
            "after": after,
            "listed": [g["id"] for g in listed],
            "quoted": sum(g["credits_quoted"] for g in listed),
            "credits": credits,
            "ledger_problems": problems,
        }
    )
    await assert_ledger_ok(running.ctx)


def _scenario_command(fault: str, directory: Path) -> list[str]:
    return [sys.executable, "-m", "tests.reliability.sqlite_fault_scenario", fault, str(directory)]


def _run_scenario(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)  # noqa: S603
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_an_io_error_on_commit(tmp_path: Path) -> None:
    """libfiu makes fsync and fdatasync fail in the server process: every COMMIT then fails with an I/O error."""
    if shutil.which("fiu-run") is None:
        if os.environ.get("CI"):
            pytest.fail("fiu-run (Debian's fiu-utils) is missing; the Makefile installs it")
        pytest.skip("fiu-run is not installed (Debian's fiu-utils); `make test` installs it where it can")
    check_outcomes(_run_scenario(["fiu-run", "-x", *_scenario_command("io", tmp_path)]))


def test_a_full_file_system(tmp_path: Path) -> None:
    """The data dir on a 4 MiB tmpfs, filled up mid-run: SQLite meets ENOSPC from the file system itself."""
    directory = tmp_path / "small-disk"
    directory.mkdir()
    script = f'mount -t tmpfs -o size=4m tmpfs "{directory}" && exec "$@"'
    probe = subprocess.run(  # noqa: S603
        ["unshare", "--mount", "--map-root-user", "sh", "-c", f'mount -t tmpfs -o size=1m tmpfs "{directory}"'],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs in a mount namespace here: {probe.stderr}")
        pytest.skip(f"this machine does not allow a tmpfs in a mount namespace: {probe.stderr.strip()}")
    namespace = ["unshare", "--mount", "--map-root-user", "sh", "-c", script, "scenario"]
    check_outcomes(_run_scenario([*namespace, *_scenario_command("full", directory)]))
