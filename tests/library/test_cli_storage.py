"""The operator's commands: `reelgate storage usage`, `storage quota`, `retention run [--dry-run]`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

REELGATE = [sys.executable, "-m", "reelgate"]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REELGATE, *args], env=env, capture_output=True, text=True, timeout=120)


def test_storage_usage_quota_and_retention_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(
        REELGATE_DATA_DIR=str(tmp_path / "data"),
        REELGATE_SANDBOX_DELAY_SECONDS="0.1",
        REELGATE_POLL_INITIAL_SECONDS="0.1",
        REELGATE_POLL_MAX_SECONDS="0.3",
        REELGATE_RETENTION_DAYS="30",
        COLUMNS="160",
    )
    assert (
        _run(env, "user", "create", "ops@example.com", "--password", "ops-password", "--credits", "20").returncode == 0
    )
    out = tmp_path / "clip.mp4"
    made = _run(
        env, "generate", "a red fox running through snow", "--model", "sandbox-t2v", "--duration", "1",
        "--resolution", "480p", "--out", str(out), "--user", "ops@example.com",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    size = out.stat().st_size

    usage = _run(env, "storage", "usage", "--json")
    assert usage.returncode == 0, usage.stderr
    assert '"outputs_bytes": ' + str(size) in usage.stdout
    table = _run(env, "storage", "usage")
    assert "ops@example.com" in table.stdout and "none" in table.stdout
    quota = _run(env, "storage", "quota", "ops@example.com", "50")
    assert quota.returncode == 0, quota.stdout + quota.stderr
    assert "50 (set for this user)" in _run(env, "storage", "usage").stdout

    # Nothing is old yet; then the video is made 40 days old.
    assert "would remove the media of 0 generations" in _run(env, "retention", "run", "--dry-run").stdout
    with sqlite3.connect(tmp_path / "data" / "reelgate.db") as db:
        db.execute("UPDATE generations SET completed_at = '2020-01-01 00:00:00.000000'")
    media = tmp_path / "data" / "media" / "generations"
    dry = _run(env, "retention", "run", "--dry-run")
    assert "would remove the media of 1 generations" in dry.stdout, dry.stdout + dry.stderr
    assert len(list(media.rglob("*.mp4"))) == 1
    done = _run(env, "retention", "run")
    assert "removed the media of 1 generations" in done.stdout, done.stdout + done.stderr
    assert list(media.rglob("*.mp4")) == [] and list(media.rglob("*.jpg")) == []
