"""A guard for tests that must never leave this machine: every TCP connection the process attempts is
recorded, and any to a non-loopback address is refused (and fails the test that made it)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


@dataclass
class Connections:
    """Every TCP connection attempted in this process; anything off loopback is refused and recorded."""

    attempted: list[tuple[str, int]] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)

    def check(self, sock: socket.socket, address: object) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return
        host, port = str(address[0]), int(address[1])
        self.attempted.append((host, port))
        if host not in ("127.0.0.1", "::1", "localhost"):
            self.refused.append((host, port))
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"tests stay on loopback, not {host}")


def guard_loopback(monkeypatch: pytest.MonkeyPatch, *, refusals_fail: bool = True) -> Iterator[Connections]:
    """Use as a fixture body: `yield from guard_loopback(monkeypatch)`. With `refusals_fail=False` attempts off
    loopback are still refused, but expected (a sweep that feeds the server made-up URLs)."""
    record = Connections()

    def connect(sock: socket.socket, address: object) -> None:
        record.check(sock, address)
        _real_connect(sock, address)  # type: ignore[arg-type]

    def connect_ex(sock: socket.socket, address: object) -> int:
        record.check(sock, address)
        return _real_connect_ex(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield record
    if refusals_fail:
        assert record.refused == [], f"connections attempted off loopback: {record.refused}"
