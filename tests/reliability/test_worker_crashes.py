"""Scenario 5, crash: the process dies (a) right after the provider accepted the job, (b) during the output
download, (c) between the storage write and the commit. After a restart each generation completes once:
no double charge, no second provider job, no partial file ever served."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from reelgate import faults
from tests.test_crash_recovery import REELGATE, _env, _free_port, _start, _wait_ready

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "point", [faults.AFTER_PROVIDER_ACCEPTED, faults.DURING_OUTPUT_FETCH, faults.AFTER_STORE_BEFORE_COMMIT]
)
def test_sigkill_at_each_point_then_restart(tmp_path: Path, sqlite_url: str, point: str) -> None:
    port = _free_port()
    env = _env(tmp_path / "data", port, sqlite_url)
    env.update(
        REELGATE_SANDBOX_DELAY_SECONDS="0.5", REELGATE_CRASH_AT=point, REELGATE_CRASH_MARKER=str(tmp_path / "crashed")
    )
    made = subprocess.run(
        [*REELGATE, "user", "create", "k@example.com", "--password", "crash-test-pw", "--credits", "50", "--api-key"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    headers = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
    url = f"http://127.0.0.1:{port}"
    server = _start(env, tmp_path / "server.log")
    try:
        _wait_ready(url)
        created = httpx.post(
            f"{url}/api/v1/generations",
            headers=headers,
            json={
                "model": "sandbox-t2v",
                "prompt": "a fox that dies and lives again",
                "duration": 2,
                "resolution": "480p",
            },
        )
        assert created.status_code == 202, created.text
        gid, price = created.json()["id"], created.json()["credits_quoted"]
        assert server.wait(timeout=60) == 137, "the crash point was never reached"
        assert (tmp_path / "crashed").read_text() == point
        server = _start(env, tmp_path / "server.log")
        _wait_ready(url)
        deadline = time.monotonic() + 60
        while (body := httpx.get(f"{url}/api/v1/generations/{gid}", headers=headers).json())["status"] not in (
            "succeeded",
            "failed",
            "canceled",
            "expired",
        ):
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert body["status"] == "succeeded", body
        assert body["credits_charged"] == price and body["credits_refunded"] == 0
        me = httpx.get(f"{url}/api/v1/me", headers=headers).json()["credits"]
        assert me == {"available": 50 - price, "held": 0}
        video = httpx.get(f"{url}/api/v1/generations/{gid}/content", headers=headers)
        assert hashlib.sha256(video.content).hexdigest() == body["output"]["sha256"]
        assert len(video.content) == body["output"]["size"]
    finally:
        server.terminate()
        server.wait(timeout=20)
    spool = tmp_path / "data" / "sandbox"
    assert [p.name for p in spool.glob("*.json")] == [f"sbx_{gid}.json"], "one provider job, never two"
    media = tmp_path / "data" / "media"
    assert not [p for p in media.rglob("*") if p.name.endswith(".part")], "no partial object left behind"
    check = subprocess.run([*REELGATE, "ledger", "check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
