"""Scenario 10, soak: a bounded run at a steady rate with low-rate faults (failing jobs, cancels, bad requests).
Memory and file descriptors stay flat, the invariant holds at every checkpoint, and no secret (provider key,
webhook secret) appears in any log line or response. `make test` runs a short variant; `make soak` the long one."""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.test_crash_recovery import REELGATE, _env, _free_port, _start, _wait_ready

SECRETS = {
    "RUNPOD_API_KEY": "rpa_SOAKSECRET0123456789",
    "REPLICATE_API_TOKEN": "r8_SOAKSECRET0123456789",
    "REPLICATE_WEBHOOK_SECRET": "whsec_U09BS1NFQ1JFVDAxMjM0NTY3ODk=",
    "POLLO_API_KEY": "pollo_SOAKSECRET0123456789",
    "STRIPE_SECRET_KEY": "sk_test_SOAKSECRET0123456789",
    "STRIPE_WEBHOOK_SECRET": "whsec_stripeSOAKSECRET0123456789",
}
LONG = bool(os.environ.get("REELGATE_SOAK"))
WARM_UP = 5.0  # load before the first sample: imports, caches and allocator arenas fill here, not leaks
DURATION = 600.0 if LONG else 25.0
CHECKPOINTS = 10 if LONG else 3  # ledger checks during the run
SAMPLE_EVERY = 1.0  # RSS and descriptors are cheap to read: enough samples for a median at each end


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _one_round(client: httpx.Client, users: list[dict[str, str]], rng: random.Random, seen: list[str]) -> None:
    headers = rng.choice(users)
    roll = rng.random()
    prompt = "a soak-test fox" + (" [fail]" if roll < 0.1 else "")
    r = client.post(
        "/api/v1/generations",
        headers=headers,
        json={"model": "sandbox-t2v", "prompt": prompt, "duration": 1, "resolution": "480p"},
    )
    seen.append(r.text)
    if r.status_code == 202 and roll > 0.9:
        seen.append(client.post(f"/api/v1/generations/{r.json()['id']}/cancel", headers=headers).text)
    if roll < 0.05:  # low-rate bad input
        seen.append(client.post("/api/v1/generations", headers=headers, json={"model": "nope", "x": 1}).text)
    seen.append(client.get("/api/v1/me", headers=headers).text)
    seen.append(client.get("/readyz").text)


@pytest.mark.slow
@pytest.mark.soak
@pytest.mark.timeout(WARM_UP + DURATION + 300)  # the run itself plus start-up and checkpoints
def test_soak(tmp_path: Path, sqlite_url: str) -> None:
    port = _free_port()
    env = _env(tmp_path / "data", port, sqlite_url)
    env.update(SECRETS)
    env.update(REELGATE_SANDBOX_DELAY_SECONDS="0.3", REELGATE_LOG_LEVEL="DEBUG")
    users = []
    for n in range(2):
        made = subprocess.run(
            [
                *REELGATE,
                "user",
                "create",
                f"soak{n}@example.com",
                "--password",
                "soak-password",
                "--credits",
                "1000000",
                "--api-key",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        users.append({"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"})
    log = tmp_path / "server.log"
    server = _start(env, log)
    seen: list[str] = []
    samples: list[tuple[int, int]] = []
    rng = random.Random(7)
    try:
        _wait_ready(f"http://127.0.0.1:{port}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            warm_until = time.monotonic() + WARM_UP
            while time.monotonic() < warm_until:
                _one_round(client, users, rng, seen)
                time.sleep(0.05)
            started = time.monotonic()
            next_checkpoint = started + DURATION / CHECKPOINTS
            next_sample = started
            while time.monotonic() - started < DURATION:
                _one_round(client, users, rng, seen)
                time.sleep(0.05)  # about half of what one core sustains for this mix
                if time.monotonic() >= next_sample:
                    next_sample += SAMPLE_EVERY
                    samples.append((_rss_kb(server.pid), _fds(server.pid)))
                if time.monotonic() >= next_checkpoint:
                    next_checkpoint += DURATION / CHECKPOINTS
                    check = subprocess.run([*REELGATE, "ledger", "check"], env=env, capture_output=True, text=True)
                    assert check.returncode == 0, check.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert len(samples) >= 6, samples
    print(f"soak: (RSS KiB, open fds) once a second: {samples}")
    # A leak is a trend, not a peak: renders in flight move RSS by tens of MB from one second to the next, so
    # the typical level at the end is compared with the typical level at the start.
    third = len(samples) // 3
    rss_start, rss_end = (statistics.median(rss for rss, _ in part) for part in (samples[:third], samples[-third:]))
    fds_start = statistics.median(fds for _, fds in samples[:third])
    assert rss_end - rss_start < 40_000, f"memory grew: {samples}"
    assert max(fds for _, fds in samples[-third:]) - fds_start < 25, f"file descriptors grew: {samples}"
    text = log.read_text(errors="replace") + "\n".join(seen)
    for name, value in SECRETS.items():
        assert value not in text, f"{name} leaked"
    check = subprocess.run([*REELGATE, "ledger", "check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
