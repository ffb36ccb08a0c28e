"""The SSRF guard: every URL the server fetches is checked, resolved, pinned to a public address and size-capped."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import anyio
import httpcore
import httpx

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"http": 80, "https": 443}
# Only these characters can make a host that the C resolver (inet_aton) reads as an IPv4 address:
# "2130706433", "0177.0.0.1", "0x7f.1" and "127.1" all mean 127.0.0.1 to getaddrinfo.
NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")
RETRYABLE_STATUSES = frozenset({408, 425, 429})
CHUNK_SIZE = 256 * 1024


class UnsafeURL(Exception):
    """Refused before any connection was made; .reason says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchFailed(Exception):
    """The fetch failed after connecting (or could not connect); .retryable says whether trying again may help."""

    def __init__(
        self, message: str, *, status: int | None = None, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class FetchTooLarge(FetchFailed):
    """The body is (or announced it would be) larger than the cap; retrying cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class FetchResult:
    size: int
    sha256: str
    content_type: str | None


# --- address rules -------------------------------------------------------------------------------


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def parse_ip_literal(host: str) -> IPAddress | None:
    """Read host as an IP address the way the system resolver would, including legacy IPv4 spellings."""
    host = _normal_host(host)
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded = [address.ipv4_mapped, address.sixtofour]
    if address.teredo is not None:
        embedded.extend(address.teredo)
    return [a for a in embedded if a is not None]


def is_public(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses.

    `is_global` alone is not enough on Python 3.11: it calls multicast, ::/96 and 6to4/NAT64 forms global.
    """
    if not address.is_global or address.is_multicast or address.is_reserved or address.is_unspecified:
        return False
    if address.is_loopback or address.is_link_local or address.is_private:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            return False
        return all(is_public(inner) for inner in _embedded_ipv4(address))
    return True


def _allow_entries(allow_hosts: Iterable[str]) -> Iterable[tuple[str, int | None]]:
    """Split allow-list entries into (host, port or None): "h", "h:port", "[v6]", "[v6]:port" or a bare IPv6."""
    for entry in allow_hosts:
        entry = entry.strip().lower()
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            yield host, int(rest[1:]) if rest.startswith(":") else None
        elif entry.count(":") == 1:
            host, _, port = entry.partition(":")
            yield host, int(port)
        else:
            yield entry, None


def is_allowed(host: str, port: int, allow_hosts: Iterable[str]) -> bool:
    """Whether host (and port) is on the explicit allow-list that skips the public-address rule."""
    host = _normal_host(host)
    literal = parse_ip_literal(host)
    for allowed_host, allowed_port in _allow_entries(allow_hosts):
        same = allowed_host.rstrip(".") == host
        if not same and literal is not None:
            same = parse_ip_literal(allowed_host) == literal
        if same and allowed_port in (None, port):
            return True
    return False


def check_url(url: str, *, allow_hosts: frozenset[str] = frozenset()) -> None:
    """Refuse, without any network access, URLs that are not plain http(s) to a public host."""
    if any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in url):
        raise UnsafeURL("URL contains whitespace, control characters or backslashes")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UnsafeURL(f"invalid URL: {exc}") from exc
    if parsed.scheme not in DEFAULT_PORTS:
        raise UnsafeURL(f"scheme {parsed.scheme or '(none)'!r} is not allowed; only http and https")
    if parsed.userinfo:
        raise UnsafeURL("credentials in the URL are not allowed")
    host = _normal_host(parsed.raw_host.decode("ascii"))
    if not host:
        raise UnsafeURL("URL has no host")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    if is_allowed(host, port, allow_hosts):
        return
    if host == "localhost" or host.endswith(".localhost"):
        raise UnsafeURL("localhost is not allowed")
    literal = parse_ip_literal(host)
    if literal is not None and not is_public(literal):
        raise UnsafeURL(f"address {literal} is not public")


async def resolve_public(host: str, port: int, *, allow_hosts: frozenset[str] = frozenset()) -> list[str]:
    """Resolve host and return its addresses, refusing if ANY of them is not public (unless allow-listed)."""
    literal = parse_ip_literal(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = await anyio.getaddrinfo(_normal_host(host), port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise FetchFailed(f"cannot resolve {host!r}: {exc}", retryable=True) from exc
        addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if is_allowed(host, port, allow_hosts):
        return addresses
    for address in addresses:
        if not is_public(ipaddress.ip_address(address)):
            # One private answer is enough to refuse: a rebinding name mixes public and private records.
            raise UnsafeURL(f"{host!r} resolves to non-public address {address}")
    return addresses


# --- transport -----------------------------------------------------------------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and validates the host itself, then connects to the validated IP only.

    This closes the DNS-rebinding gap between "check the name" and "connect to the name"; TLS still
    verifies the certificate against the original host name because httpcore passes it to start_tls.
    """

    def __init__(self, allow_hosts: frozenset[str]) -> None:
        self._allow_hosts = allow_hosts
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with anyio.move_on_after(timeout) as scope:
            addresses = await resolve_public(host, port, allow_hosts=self._allow_hosts)
        if scope.cancelled_caught:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out")
        error: Exception = httpcore.ConnectError(f"no address for {host!r}")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeURL("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool rebuilt on the guarded network backend.

    httpx 0.28 has no public hook for a network backend, so the pool (its `_pool`) is replaced.
    """

    def __init__(self, *, allow_hosts: frozenset[str] = frozenset()) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allow_hosts),
        )


def make_guarded_client(*, allow_hosts: frozenset[str] = frozenset(), timeout: float = 60.0) -> httpx.AsyncClient:
    """An AsyncClient that can only reach public addresses (or allow-listed ones) and never follows redirects.

    trust_env is off so an HTTP(S)_PROXY variable cannot route requests around the guard.
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_hosts=allow_hosts),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )


# --- fetching ------------------------------------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110, section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    retryable = status in RETRYABLE_STATUSES or status >= 500
    retry_after = parse_retry_after(response.headers.get("retry-after")) if retryable else None
    # 403/404/410 usually mean an expired signed output URL: asking again will not bring it back.
    raise FetchFailed(f"HTTP {status}", status=status, retryable=retryable, retry_after=retry_after)


async def _stream_body(response: httpx.Response, dest: Path, max_bytes: int) -> FetchResult:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise FetchTooLarge(f"Content-Length {declared} exceeds the {max_bytes}-byte cap")
    part = anyio.Path(f"{dest}.part")
    digest, size = hashlib.sha256(), 0
    try:
        async with await anyio.open_file(part, "wb") as out:
            async for chunk in response.aiter_bytes(CHUNK_SIZE):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchTooLarge(f"body exceeds the {max_bytes}-byte cap")
                digest.update(chunk)
                await out.write(chunk)
        await part.replace(dest)
    except BaseException:
        await part.unlink(missing_ok=True)
        raise
    return FetchResult(size=size, sha256=digest.hexdigest(), content_type=response.headers.get("content-type"))


async def _follow(
    client: httpx.AsyncClient,
    request: httpx.Request,
    dest: Path,
    max_bytes: int,
    allow_hosts: frozenset[str],
    max_redirects: int,
) -> FetchResult:
    for _hop in range(max_redirects + 1):
        response = await client.send(request, stream=True)
        try:
            if response.next_request is None:
                _raise_for_status(response)
                return await _stream_body(response, dest, max_bytes)
            request = response.next_request
            try:
                check_url(str(request.url), allow_hosts=allow_hosts)
            except UnsafeURL:
                # Only the host is logged: query strings of signed URLs are secrets.
                log.warning("refused redirect to %s", request.url.host)
                raise
        finally:
            await response.aclose()
    raise FetchFailed(f"more than {max_redirects} redirects", retryable=False)


async def fetch_to_file(
    url: str,
    dest: str | Path,
    *,
    max_bytes: int,
    allow_hosts: frozenset[str] = frozenset(),
    timeout: float = 60.0,
    max_redirects: int = 5,
    headers: Mapping[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
) -> FetchResult:
    """Download url to dest through the guard: checked, pinned, redirects re-checked, size-capped, hashed.

    A client passed in should come from make_guarded_client; a plain client would skip the DNS pinning.
    The body lands in dest + ".part" and is renamed only when complete.
    """
    check_url(url, allow_hosts=allow_hosts)
    http = client or make_guarded_client(allow_hosts=allow_hosts, timeout=timeout)
    try:
        request = http.build_request("GET", url, headers=dict(headers or {}), timeout=httpx.Timeout(timeout))
        return await _follow(http, request, Path(dest), max_bytes, allow_hosts, max_redirects)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise UnsafeURL(f"invalid redirect target: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise FetchFailed(f"timed out: {type(exc).__name__}", retryable=True) from exc
    except httpx.TransportError as exc:
        # Resets, refused connections and bodies cut short are worth another try.
        raise FetchFailed(f"transport error: {type(exc).__name__}", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"HTTP error: {type(exc).__name__}", retryable=False) from exc
    finally:
        if client is None:
            await http.aclose()
