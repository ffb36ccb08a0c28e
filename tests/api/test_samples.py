"""docs/samples: every sample (curl, Python, JavaScript) run against a live server, flow by flow: estimate,
generate, poll, download, and verifying a webhook the server really sent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.app import create_app
from tests.conftest import make_account, make_settings
from tests.openai_compat.conftest import LiveServer, serve

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"
RUNNERS: dict[str, tuple[list[str], list[str]]] = {
    # language: (how to run one flow, the tools it needs)
    "curl": (["bash", str(SAMPLES / "curl" / "{flow}.sh")], ["bash", "curl", "jq", "openssl"]),
    "python": ([sys.executable, str(SAMPLES / "python" / "reelgate_client.py"), "{command}"], []),
    "javascript": (["node", str(SAMPLES / "javascript" / "reelgate_client.mjs"), "{command}"], ["node"]),
}


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A client's webhook endpoint on loopback: keeps every delivery, answers 200."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                return None

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivery_for(self, generation_id: str, seconds: float = 30) -> Delivery:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for delivery in self.deliveries:
                if json.loads(delivery.body)["data"]["id"] == generation_id:
                    return delivery
            time.sleep(0.1)
        raise AssertionError(f"no webhook for {generation_id}")


@dataclass
class Site:
    url: str
    key: str
    secret: str
    receiver: Receiver


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("samples")
    receiver = Receiver()
    settings = make_settings(
        tmp / "data", None, sandbox_delay_seconds=0.3, public_url="http://127.0.0.1", fetch_allow_hosts="127.0.0.1"
    )
    app = create_app(settings)
    try:
        for url, loop in serve(app):
            live = LiveServer(url=url, app=app, loop=loop)
            account = live.call(make_account(live.ctx, credits=1000))
            created = httpx.post(
                f"{url}/api/v1/webhook-endpoints", headers=account.headers, json={"url": receiver.url}, timeout=30
            )
            assert created.status_code == 201, created.text
            yield Site(url, account.key, created.json()["secret"], receiver)
    finally:
        receiver.server.shutdown()


def run(language: str, flow: str, *args: str, env: dict[str, str], check: bool = True) -> str:
    command, tools = RUNNERS[language]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    argv = [part.format(flow=flow, command=flow.replace("_", "-")) for part in command] + list(args)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"{argv}: {done.stdout} {done.stderr}"
    return done.stdout.strip() if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()}"


@pytest.mark.parametrize("language", list(RUNNERS))
def test_every_flow(language: str, site: Site, tmp_path: Path) -> None:
    env = {**os.environ, "REELGATE_URL": site.url, "REELGATE_API_KEY": site.key, "REELGATE_MODEL": "sandbox-t2v"}
    expected = httpx.post(
        f"{site.url}/api/v1/estimate",
        headers={"Authorization": f"Bearer {site.key}"},
        json={"model": "sandbox-t2v", "duration": 2, "resolution": "480p"},
    ).json()

    assert json.loads(run(language, "estimate", env=env))["total"] == expected["total"]
    generation_id = run(language, "generate", env=env)
    assert generation_id.startswith("gen_"), generation_id
    assert run(language, "poll", generation_id, env=env) == "succeeded"
    video = tmp_path / "video.mp4"
    run(language, "download", generation_id, str(video), env=env)
    assert video.read_bytes()[4:8] == b"ftyp"

    delivery = site.receiver.delivery_for(generation_id)
    body = tmp_path / "body.json"
    body.write_bytes(delivery.body)
    hook_env = {
        **env,
        "WEBHOOK_SECRET": site.secret,
        "WEBHOOK_ID": delivery.headers["webhook-id"],
        "WEBHOOK_TIMESTAMP": delivery.headers["webhook-timestamp"],
        "WEBHOOK_SIGNATURE": delivery.headers["webhook-signature"],
    }
    assert run(language, "verify_webhook", str(body), env=hook_env) == f"genuine: generation.succeeded {generation_id}"
    body.write_bytes(delivery.body.replace(b"succeeded", b"failed"))
    assert run(language, "verify_webhook", str(body), env=hook_env, check=False).startswith("exit 1")
    body.write_bytes(delivery.body)
    stale = {**hook_env, "WEBHOOK_TIMESTAMP": str(int(delivery.headers["webhook-timestamp"]) - 3600)}
    assert run(language, "verify_webhook", str(body), env=stale, check=False).startswith("exit 1")
