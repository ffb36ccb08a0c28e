"""`kill -9` of the server while a generation is processing, then a restart: the generation ends and
nothing stays held or non-terminal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

REELGATE = [sys.executable, "-m", "reelgate"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path, port: int, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(
        REELGATE_DATA_DIR=str(data_dir),
        REELGATE_PORT=str(port),
        REELGATE_DATABASE_URL=database_url,
        REELGATE_SANDBOX_DELAY_SECONDS="4",
        REELGATE_EMBEDDED_WORKER="true",
        REELGATE_POLL_INITIAL_SECONDS="0.2",
        REELGATE_POLL_MAX_SECONDS="0.5",
        REELGATE_SECRET_KEY="crash-test-secret-key",
        # On PostgreSQL a restarted server cannot tell a dead process's lease from another worker's, so it waits
        # for the lease to lapse; keep that within the test's patience.
        REELGATE_LEASE_SECONDS="10",
    )
    return env


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen([*REELGATE, "serve"], env=env, stdout=handle, stderr=subprocess.STDOUT)


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("server did not start")


def test_kill_9_while_processing_then_restart(tmp_path: Path, database_url: str) -> None:
    port = _free_port()
    env = _env(tmp_path / "data", port, database_url)
    url = f"http://127.0.0.1:{port}"
    created = subprocess.run(
        [
            *REELGATE,
            "user",
            "create",
            "crash@example.com",
            "--password",
            "crash-test-pw",
            "--credits",
            "50",
            "--api-key",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    headers = {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}
    server = _start(env, tmp_path / "server.log")
    try:
        _wait_ready(url)
        ids = []
        for prompt in ("a fox that survives a crash", "a second fox mid flight"):
            r = httpx.post(
                f"{url}/api/v1/generations",
                headers=headers,
                json={"model": "sandbox-t2v", "prompt": prompt, "duration": 2},
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/api/v1/generations/{ids[0]}", headers=headers).json()["status"] != "processing":
            assert time.monotonic() < deadline, "never reached processing"
            time.sleep(0.1)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        server = _start(env, tmp_path / "server.log")
        _wait_ready(url)
        deadline = time.monotonic() + 60
        finals = {}
        while len(finals) < len(ids):
            assert time.monotonic() < deadline, f"not finished after restart: {finals}"
            for gid in ids:
                body = httpx.get(f"{url}/api/v1/generations/{gid}", headers=headers).json()
                if body["status"] in ("succeeded", "failed", "canceled", "expired"):
                    finals[gid] = body
            time.sleep(0.2)
        for body in finals.values():
            assert body["status"] == "succeeded", body
        me = httpx.get(f"{url}/api/v1/me", headers=headers).json()
        assert me["credits"]["held"] == 0
        assert me["credits"]["available"] == 50 - sum(b["credits_charged"] for b in finals.values())
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    check = subprocess.run([*REELGATE, "ledger", "check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
