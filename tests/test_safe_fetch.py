"""Tests for the SSRF guard: refusals happen before any connection; real fetches go only to 127.0.0.1."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from reelgate.services.safe_fetch import (
    FetchFailed,
    FetchTooLarge,
    UnsafeURL,
    check_url,
    fetch_to_file,
    is_allowed,
    is_public,
    make_guarded_client,
    parse_retry_after,
    resolve_public,
)

LOOPBACK = frozenset({"127.0.0.1"})


def payload(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.accepted = 0
        self.seen_headers: list[dict[str, str]] = []

    def get_request(self) -> tuple[socket.socket, Any]:
        self.accepted += 1
        return super().get_request()


class Handler(BaseHTTPRequestHandler):
    server: CountingServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.server.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
        parts = urlsplit(self.path)
        name, _, arg = parts.path.strip("/").partition("/")
        route = getattr(self, f"route_{name}", None)
        if route is None:
            self.send_error(404)
            return
        route(arg, parse_qs(parts.query))

    def route_bytes(self, arg: str, query: dict[str, list[str]]) -> None:
        body = payload(int(arg))
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_nolength(self, arg: str, query: dict[str, list[str]]) -> None:
        # HTTP/1.0 without Content-Length: the body ends when the connection closes.
        self.send_response(200)
        self.end_headers()
        self.wfile.write(payload(int(arg)))

    def route_truncated(self, arg: str, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(payload(400))

    def route_redirect(self, arg: str, query: dict[str, list[str]]) -> None:
        self.send_response(302)
        self.send_header("Location", query["to"][0])
        self.end_headers()

    def route_chain(self, arg: str, query: dict[str, list[str]]) -> None:
        hops = int(arg)
        self.send_response(302)
        self.send_header("Location", f"/chain/{hops - 1}" if hops > 1 else "/bytes/10")
        self.end_headers()

    def route_status(self, arg: str, query: dict[str, list[str]]) -> None:
        self.send_response(int(arg))
        if int(arg) in (429, 503):
            self.send_header("Retry-After", "7")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_stall(self, arg: str, query: dict[str, list[str]]) -> None:
        time.sleep(3)


@pytest.fixture
def server() -> Iterator[CountingServer]:
    srv = CountingServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def base(srv: CountingServer, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{srv.server_address[1]}"


# --- check_url -----------------------------------------------------------------------------------

REFUSED = [
    "file:///etc/passwd",
    "gopher://example.com/",
    "ftp://example.com/file",
    "data:text/plain,hello",
    "javascript:alert(1)",
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/x",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://127.1/",
    "http://0/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://user:pass@example.com/",
    "http://user@example.com/",
    "http://localhost/",
    "http://api.localhost/",
    "http:///nohost",
    "http://exa mple.com/",
    "http://example.com\\@127.0.0.1/",
    "example.com/no-scheme",
]


@pytest.mark.parametrize("url", REFUSED)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(UnsafeURL) as err:
        check_url(url)
    assert err.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/out.mp4?sig=abc",
        "http://8.8.8.8/x",
        "http://[2606:4700::1]/",
        "https://cdn.example.org:8443/v",
    ],
)
def test_check_url_accepts_public(url: str) -> None:
    check_url(url)


def test_allow_hosts_let_listed_loopback_through_with_optional_port() -> None:
    check_url("http://127.0.0.1:8123/x", allow_hosts=frozenset({"127.0.0.1"}))
    check_url("http://127.0.0.1:8123/x", allow_hosts=frozenset({"127.0.0.1:8123"}))
    check_url("http://localhost:8123/x", allow_hosts=frozenset({"localhost"}))
    check_url("http://[::1]:8123/x", allow_hosts=frozenset({"[::1]:8123"}))
    with pytest.raises(UnsafeURL):
        check_url("http://127.0.0.1:9999/x", allow_hosts=frozenset({"127.0.0.1:8123"}))
    with pytest.raises(UnsafeURL):
        check_url("http://127.0.0.2/x", allow_hosts=frozenset({"127.0.0.1"}))
    assert is_allowed("2130706433", 80, ["127.0.0.1"])  # same address, other spelling
    assert is_allowed("::1", 80, ["::1"])


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1", True),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("::127.0.0.1", False),
        ("2002:7f00:1::", False),
        ("64:ff9b::7f00:1", False),
        ("fec0::1", False),
        ("169.254.169.254", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# --- resolve_public ------------------------------------------------------------------------------


async def test_resolve_public_refuses_localhost() -> None:
    with pytest.raises(UnsafeURL):
        await resolve_public("localhost", 80, allow_hosts=frozenset())
    assert "127.0.0.1" in await resolve_public("localhost", 80, allow_hosts=frozenset({"localhost"}))


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    """Answer DNS from a table, as a hostile resolver would; the guard itself runs unmodified."""
    real = anyio.getaddrinfo

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> Any:
        if host in answers:
            family = {4: socket.AF_INET, 6: socket.AF_INET6}
            return [
                (family[ipaddress.ip_address(a).version], socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]
            ]
        return await real(host, port, **kwargs)

    monkeypatch.setattr(anyio, "getaddrinfo", getaddrinfo)


async def test_resolve_public_refuses_if_any_answer_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"mixed.example": ["93.184.216.34", "10.1.2.3"], "good.example": ["93.184.216.34"]})
    with pytest.raises(UnsafeURL):
        await resolve_public("mixed.example", 443, allow_hosts=frozenset())
    assert await resolve_public("good.example", 443, allow_hosts=frozenset()) == ["93.184.216.34"]
    with pytest.raises(UnsafeURL):
        await resolve_public("2130706433", 80, allow_hosts=frozenset())


# --- fetching from a real loopback server ---------------------------------------------------------


async def test_fetch_allowed_loopback(server: CountingServer, tmp_path: Path) -> None:
    dest = tmp_path / "out.mp4"
    result = await fetch_to_file(f"{base(server)}/bytes/300000", dest, max_bytes=1_000_000, allow_hosts=LOOPBACK)
    assert result.size == 300000 == dest.stat().st_size
    assert result.sha256 == hashlib.sha256(payload(300000)).hexdigest()
    assert result.content_type == "video/mp4"
    assert not Path(f"{dest}.part").exists()


async def test_fetch_loopback_without_allow_list_never_connects(server: CountingServer, tmp_path: Path) -> None:
    for host in ("127.0.0.1", "localhost", "2130706433", "127.1"):
        with pytest.raises(UnsafeURL):
            await fetch_to_file(f"{base(server, host)}/bytes/10", tmp_path / "x", max_bytes=100)
    with pytest.raises(UnsafeURL):
        await fetch_to_file(
            f"{base(server)}/bytes/10", tmp_path / "x", max_bytes=100, allow_hosts=frozenset({"127.0.0.1:1"})
        )
    assert server.accepted == 0
    assert list(tmp_path.iterdir()) == []


async def test_allow_entry_with_port(server: CountingServer, tmp_path: Path) -> None:
    allow = frozenset({f"127.0.0.1:{server.server_address[1]}"})
    result = await fetch_to_file(f"{base(server)}/bytes/10", tmp_path / "x", max_bytes=100, allow_hosts=allow)
    assert result.size == 10


async def test_dns_rebinding_is_caught_at_connect_time(
    server: CountingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name passes the syntax check; only the guarded transport sees it resolve to loopback.
    fake_dns(monkeypatch, {"rebind.example": ["127.0.0.1"]})
    url = f"{base(server, 'rebind.example')}/bytes/10"
    check_url(url)
    with pytest.raises(UnsafeURL):
        await fetch_to_file(url, tmp_path / "x", max_bytes=100)
    async with make_guarded_client() as client:
        with pytest.raises(UnsafeURL):
            await client.get(url)
    assert server.accepted == 0
    # Allow-listed, the same name connects to the address the guard resolved.
    result = await fetch_to_file(url, tmp_path / "x", max_bytes=100, allow_hosts=frozenset({"rebind.example"}))
    assert result.size == 10 and server.accepted == 1


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "http://[::1]/", "http://10.0.0.1/"]
)
async def test_redirect_to_internal_address_is_refused(server: CountingServer, tmp_path: Path, target: str) -> None:
    with pytest.raises(UnsafeURL):
        await fetch_to_file(f"{base(server)}/redirect?to={target}", tmp_path / "x", max_bytes=100, allow_hosts=LOOPBACK)
    assert server.accepted == 1
    assert list(tmp_path.iterdir()) == []


async def test_redirects_are_followed_and_bounded(server: CountingServer, tmp_path: Path) -> None:
    result = await fetch_to_file(f"{base(server)}/chain/3", tmp_path / "x", max_bytes=100, allow_hosts=LOOPBACK)
    assert result.size == 10
    with pytest.raises(FetchFailed) as err:
        await fetch_to_file(
            f"{base(server)}/chain/9", tmp_path / "y", max_bytes=100, allow_hosts=LOOPBACK, max_redirects=5
        )
    assert not err.value.retryable
    assert server.accepted == 4 + 6


async def test_cross_origin_redirect_drops_credentials(server: CountingServer, tmp_path: Path) -> None:
    target = f"{base(server, 'localhost')}/bytes/10"
    await fetch_to_file(
        f"{base(server)}/redirect?to={target}",
        tmp_path / "x",
        max_bytes=100,
        allow_hosts=frozenset({"127.0.0.1", "localhost"}),
        headers={"Authorization": "Bearer secret-token"},
    )
    first, second = server.seen_headers
    assert first["authorization"] == "Bearer secret-token"
    assert "authorization" not in second


@pytest.mark.parametrize("path", ["/bytes/5000", "/nolength/5000"])
async def test_body_over_cap_is_refused_and_leaves_nothing(server: CountingServer, tmp_path: Path, path: str) -> None:
    with pytest.raises(FetchTooLarge) as err:
        await fetch_to_file(f"{base(server)}{path}", tmp_path / "x", max_bytes=1000, allow_hosts=LOOPBACK)
    assert not err.value.retryable
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("status", "retryable", "retry_after"),
    [(500, True, None), (503, True, 7.0), (429, True, 7.0), (404, False, None), (403, False, None), (410, False, None)],
)
async def test_http_errors(
    server: CountingServer, tmp_path: Path, status: int, retryable: bool, retry_after: float | None
) -> None:
    with pytest.raises(FetchFailed) as err:
        await fetch_to_file(f"{base(server)}/status/{status}", tmp_path / "x", max_bytes=100, allow_hosts=LOOPBACK)
    assert (err.value.status, err.value.retryable, err.value.retry_after) == (status, retryable, retry_after)
    assert list(tmp_path.iterdir()) == []


async def test_stalled_server_times_out_as_retryable(server: CountingServer, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed) as err:
        await fetch_to_file(f"{base(server)}/stall", tmp_path / "x", max_bytes=100, allow_hosts=LOOPBACK, timeout=0.5)
    assert err.value.retryable and err.value.status is None
    assert time.monotonic() - started < 2.5


async def test_truncated_body_is_retryable_and_leaves_nothing(server: CountingServer, tmp_path: Path) -> None:
    with pytest.raises(FetchFailed) as err:
        await fetch_to_file(f"{base(server)}/truncated", tmp_path / "x", max_bytes=10_000, allow_hosts=LOOPBACK)
    assert err.value.retryable
    assert list(tmp_path.iterdir()) == []


async def test_refused_connection_is_retryable(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchFailed) as err:
        await fetch_to_file(f"http://127.0.0.1:{port}/", tmp_path / "x", max_bytes=100, allow_hosts=LOOPBACK)
    assert err.value.retryable
