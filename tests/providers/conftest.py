"""Fixtures for adapter tests: simulators on loopback, and a guard that refuses any other address."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path

import pytest

# The simulators are imported as `tests.simulators`; make the repository root importable however
# pytest was started (`pytest` does not put the working directory on sys.path, `python -m pytest` does).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = address[0]
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise AssertionError(f"adapter tests must stay on loopback; tried to connect to {address!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here talks to 127.0.0.1 only: a real vendor or metadata address fails loudly."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


@pytest.fixture
def receiver():
    from tests.simulators.base import WebhookReceiver

    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def runpod_sim():
    from tests.simulators.runpod import RunPodSimulator

    with RunPodSimulator() as sim:
        yield sim


@pytest.fixture
def replicate_sim():
    from tests.simulators.replicate import ReplicateSimulator

    with ReplicateSimulator() as sim:
        yield sim


@pytest.fixture
def pollo_sim():
    from tests.simulators.pollo import PolloSimulator

    with PolloSimulator() as sim:
        yield sim
