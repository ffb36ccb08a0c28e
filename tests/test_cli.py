"""The CLI: users, keys, credits, models, estimate and `generate` writing a real video."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av

REELGATE = [sys.executable, "-m", "reelgate"]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REELGATE, *args], env=env, capture_output=True, text=True, timeout=120)


def test_cli_user_credits_estimate_and_generate(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(
        REELGATE_DATA_DIR=str(tmp_path / "data"),
        REELGATE_SANDBOX_DELAY_SECONDS="0.2",
        REELGATE_POLL_INITIAL_SECONDS="0.1",
        REELGATE_POLL_MAX_SECONDS="0.3",
        COLUMNS="120",
    )
    made = _run(env, "user", "create", "cli@example.com", "--password", "cli-password", "--credits", "20", "--api-key")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().splitlines()[-1].startswith("rg_")
    granted = _run(env, "credits", "grant", "cli@example.com", "10", "--reason", "welcome back")
    assert granted.returncode == 0 and "available now 30" in granted.stdout, granted.stdout + granted.stderr
    estimate = _run(env, "estimate", "--model", "sandbox-t2v", "--duration", "5", "--resolution", "720p")
    assert '"total": 10' in estimate.stdout, estimate.stdout + estimate.stderr
    assert "sandbox-t2v" in _run(env, "models").stdout

    out = tmp_path / "fox.mp4"
    generated = _run(
        env,
        "generate",
        "a red fox running through snow",
        "--model",
        "sandbox-t2v",
        "--duration",
        "5",
        "--resolution",
        "720p",
        "--out",
        str(out),
        "--user",
        "cli@example.com",
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        assert abs(container.duration / 1e6 - 5.0) <= 0.1
    assert "charged 10 credits" in generated.stdout
    check = _run(env, "ledger", "check")
    assert check.returncode == 0, check.stdout
    refused = _run(
        env,
        "generate",
        "too expensive a fox movie",
        "--duration",
        "10",
        "--resolution",
        "1080p",
        "--user",
        "cli@example.com",
        "--out",
        str(tmp_path / "x.mp4"),
    )
    assert refused.returncode == 1 and "needs 30 credits" in refused.stdout
