"""Optional Sentry: with SENTRY_DSN set, errors reach the server the DSN names (here a loopback one that
receives the SDK's envelopes), with every secret scrubbed; without it nothing is started."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk

from reelgate.error_reporting import configure_error_reporting
from tests.conftest import make_settings

PROVIDER_KEY = "rpa_LIVEPROVIDERKEY123456"
API_KEY = "rg_live_0123456789abcdef"
DSN_KEY = "".join(["public", "key", "0123456789"])


class Receiver:
    """Collects the events of the envelopes POSTed to /api/<project>/envelope/."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.item_types: list[str] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                return None

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                elif encoding == "br":  # the SDK compresses with brotli whenever that module is installed
                    import brotli

                    body = brotli.decompress(body)
                receiver.paths.append(self.path)
                lines = body.split(b"\n")
                # An envelope: a header line, then (item header, item payload) pairs.
                for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                    receiver.item_types.append(json.loads(header).get("type", ""))
                    if json.loads(header).get("type") == "event":
                        receiver.events.append(json.loads(payload))
                        receiver.arrived.set()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        sentry_sdk.get_client().close(timeout=2)
        sentry_sdk.init()  # back to a client that sends nothing
        receiver.server.shutdown()


def test_without_a_dsn_nothing_is_started(tmp_path: Path) -> None:
    assert configure_error_reporting(make_settings(tmp_path)) is False


def test_errors_reach_the_dsn_with_secrets_scrubbed(receiver: Receiver, tmp_path: Path) -> None:
    # The DSN's key is joined here so that the source lines the SDK attaches as context do not hold it.
    dsn = f"http://{DSN_KEY}@127.0.0.1:{receiver.port}/42"
    settings = make_settings(tmp_path, sentry_dsn=dsn, sentry_environment="test", runpod_api_key=PROVIDER_KEY)
    assert configure_error_reporting(settings) is True

    try:
        raise RuntimeError(f"runpod refused key {PROVIDER_KEY}; caller sent Bearer {API_KEY}")
    except RuntimeError:
        sentry_sdk.set_context("request", {"headers": {"Authorization": f"Bearer {API_KEY}", "Accept": "*/*"}})
        sentry_sdk.capture_exception()
    # Errors logged by reelgate become events too (the SDK's logging integration).
    logging.getLogger("reelgate.test").error("webhook for ?g=gen_1&t=tok-secret-0123456789 failed")
    # Lines below ERROR are breadcrumbs of the next event at most, never items of their own (SDK 3 would send
    # each as a Sentry log by default).
    logging.getLogger("reelgate.test").warning("retrying a poll")
    sentry_sdk.flush(timeout=10)

    assert receiver.arrived.wait(10)
    assert receiver.paths[0] == "/api/42/envelope/"
    text = json.dumps(receiver.events)
    assert len(receiver.events) == 2, text
    assert "log" not in receiver.item_types and "span" not in receiver.item_types, receiver.item_types
    for secret in (PROVIDER_KEY, API_KEY, "tok-secret-0123456789", DSN_KEY):
        assert secret not in text, text[max(0, text.find(secret) - 300) : text.find(secret) + 60]
    exception = receiver.events[0]["exception"]["values"][-1]
    assert exception["type"] == "RuntimeError" and "[redacted]" in exception["value"]
    assert receiver.events[0]["environment"] == "test"
    assert receiver.events[0]["contexts"]["request"]["headers"] == {"Authorization": "[redacted]", "Accept": "*/*"}
