"""A provider from outside: examples/provider_plugin is installed beside reelgate as its own package, and a
real `reelgate serve` sells its models, prices them, generates through its loopback simulator, takes its
signed webhooks and refunds a failure, without a line of reelgate knowing about it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "provider_plugin"
REELGATE = [sys.executable, "-m", "reelgate"]
WEBHOOK_SECRET = "acme-webhook-secret-0123456789"
MODEL = "acme-motion-1"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@dataclass
class Shop:
    url: str
    headers: dict[str, str]

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json() if "json" in response.headers.get("content-type", "") else response.content

    def post(self, path: str, body: dict[str, Any], expect: int = 200) -> Any:
        response = httpx.post(self.url + path, headers=self.headers, json=body, timeout=30)
        assert response.status_code == expect, response.text
        return response.json()

    def available(self) -> int:
        return int(self.get("/api/v1/me")["credits"]["available"])

    def finish(self, generation_id: str, seconds: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            generation = self.get(f"/api/v1/generations/{generation_id}")
            if generation["status"] in ("succeeded", "failed", "canceled", "expired"):
                return dict(generation)
            time.sleep(0.2)
        raise AssertionError(f"{generation_id} did not finish")


@pytest.fixture(scope="module")
def site_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed the way an operator would, into its own directory: no index, no network."""
    source = tmp_path_factory.mktemp("plugin-source") / "provider_plugin"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    target = tmp_path_factory.mktemp("plugin-site")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation"]
    subprocess.run([*command, "--target", str(target), str(source)], check=True, timeout=300)
    assert (target / "reelgate_acme" / "catalog.yaml").is_file()
    return target


@pytest.fixture(scope="module")
def shop(site_packages: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    data = tmp_path_factory.mktemp("shop")
    sim_port, port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGATE_", "ACME_"))}
    env.update(
        PYTHONPATH=str(site_packages),
        REELGATE_DATA_DIR=str(data / "data"),
        REELGATE_SECRET_KEY="plugin-test-secret-key-0123456789",
        REELGATE_PORT=str(port),
        REELGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        # The simulator's host only; nothing else on loopback may be fetched.
        REELGATE_FETCH_ALLOW_HOSTS=f"127.0.0.1:{sim_port}",
        # The first poll waits 5 minutes: whatever finishes a job within the test came by webhook.
        REELGATE_POLL_INITIAL_SECONDS="300",
        REELGATE_POLL_MAX_SECONDS="600",
        ACME_API_KEY="acme-test-key",
        ACME_WEBHOOK_SECRET=WEBHOOK_SECRET,
        REELGATE_ACME_BASE_URL=f"http://127.0.0.1:{sim_port}",
    )
    simulator = subprocess.Popen(
        [sys.executable, "-m", "reelgate_acme.simulator", "--port", str(sim_port), "--webhook-secret", WEBHOOK_SECRET],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = None
    try:
        _wait_for(f"http://127.0.0.1:{sim_port}/nowhere", simulator)
        created = subprocess.run(
            [*REELGATE, "user", "create", "buyer@example.com", "--password", "buyer-password-1", "--credits", "1000"]
            + ["--api-key"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        key = created.stdout.strip().splitlines()[-1]
        server = subprocess.Popen(
            [*REELGATE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        _wait_for(f"http://127.0.0.1:{port}/healthz", server)
        yield Shop(f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"})
    finally:
        for process in (server, simulator):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def test_reelgate_itself_does_not_know_the_plugin() -> None:
    for path in (ROOT / "reelgate").rglob("*"):
        if path.is_file() and path.suffix in (".py", ".yaml", ".toml", ".html"):
            assert "acme" not in path.read_text(encoding="utf-8").lower(), path
    assert "acme" not in (ROOT / "pyproject.toml").read_text(encoding="utf-8").lower()


def test_its_models_are_listed_and_priced(shop: Shop) -> None:
    models = {m["id"]: m for m in shop.get("/api/v1/models")["models"]}
    assert models[MODEL]["provider"] == "acme" and models[MODEL]["available"] is True
    # 5 credits a second, doubled at 720p (the plugin's own catalog entry).
    estimate = shop.post("/api/v1/estimate", {"model": MODEL, "duration": 4, "resolution": "720p"})
    assert estimate["total"] == 40


def test_it_generates_by_webhook_and_refunds_a_failure(shop: Shop) -> None:
    before = shop.available()
    order = {"model": MODEL, "duration": 4, "resolution": "720p", "prompt": "a paper boat on a pond"}
    created = shop.post("/api/v1/generations", order, expect=202)
    assert created["credits_held"] == 40
    done = shop.finish(created["id"])
    assert done["status"] == "succeeded", done
    video = shop.get(f"/api/v1/generations/{created['id']}/content")
    assert video[4:8] == b"ftyp"
    assert shop.available() == before - 40

    failing = shop.post("/api/v1/generations", {**order, "prompt": "[fail] a paper boat"}, expect=202)
    done = shop.finish(failing["id"])
    assert done["status"] == "failed", done
    assert shop.available() == before - 40  # the failed job's hold went back
