"""The official TypeScript SDK (`@openrouter/sdk`) under node against a live reelgate. Installed from npm into a
temporary folder; skipped where node or npm is missing or the package cannot be installed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import png_bytes
from tests.openai_compat.conftest import LiveServer

SCRIPT = Path(__file__).with_name("sdk_check.mjs")
PACKAGE = "@openrouter/sdk@^1.3"


@pytest.fixture(scope="module")
def node_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the TypeScript SDK check")
    folder = tmp_path_factory.mktemp("openrouter-ts")
    (folder / "package.json").write_text(json.dumps({"name": "reelgate-sdk-check", "private": True, "type": "module"}))
    try:
        subprocess.run(  # noqa: S603 - fixed arguments
            [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", PACKAGE],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=180,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{PACKAGE} could not be installed from npm: {exc}")
    shutil.copy(SCRIPT, folder / SCRIPT.name)
    return folder


def test_typescript_sdk_end_to_end(live: LiveServer, node_sdk: Path) -> None:
    # 30 credits: the 2 s and 1 s videos take 6, so the 10 s 1080p one (30 credits) is refused with 402.
    account = live.account(credits=30)
    env = {
        **os.environ,
        "REELGATE_URL": live.url,
        "REELGATE_KEY": account.key,
        "FIRST_FRAME": "data:image/png;base64," + base64.b64encode(png_bytes(640, 360)).decode(),
    }
    node = shutil.which("node") or "node"
    run = subprocess.run(  # noqa: S603 - fixed arguments
        [node, SCRIPT.name], cwd=node_sdk, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    assert {m["id"] for m in seen["models"]} == {"sandbox-t2v", "sandbox-i2v"}
    t2v = next(m for m in seen["models"] if m["id"] == "sandbox-t2v")
    assert t2v["durations"] == list(range(1, 11)) and t2v["price720p5s"] == "10"
    assert seen["submitted"]["status"] == "pending" and seen["submitted"]["pollingUrl"].startswith("/api/v1/videos/")
    assert seen["text"]["status"] == "completed" and seen["text"]["cost"] == pytest.approx(0.04)
    assert seen["textVideo"]["ftyp"] == "ftyp" and seen["textVideo"]["bytes"] > 1000
    assert seen["image"] == {"status": "completed"}
    assert seen["failed"]["status"] == "failed" and seen["failed"]["error"]
    assert seen["badRequest"]["name"] == "BadRequestResponseError" and seen["badRequest"]["code"] == 400
    assert seen["tooExpensive"]["name"] == "PaymentRequiredResponseError" and seen["tooExpensive"]["code"] == 402
    assert seen["unknownJob"]["name"] == "NotFoundResponseError" and seen["unknownJob"]["statusCode"] == 404
    assert all(seen[k]["isOpenRouterError"] for k in ("badRequest", "tooExpensive", "unknownJob"))
