"""A real SMTP server in the test process (aiosmtpd) that receives and parses every email, SMTP servers that
refuse, stall or drop the connection, and fast retries."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from reelgate.db.queries import mail as mail_queries
from reelgate.db.records import OutboxEmail
from reelgate.services import mail
from reelgate.services.context import ServiceContext
from reelgate.settings import Settings
from tests.conftest import make_settings

SMTP_USER = "mailer"
SMTP_PASSWORD = "p@ss:word/1"  # characters that must be percent-encoded in the URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


@dataclass
class Mailbox:
    """What the SMTP server accepted, parsed; and the logins it saw."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        if ok:
            with self.lock:
                self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    def url(self, *, with_login: bool = True) -> str:
        login = f"{SMTP_USER}:{SMTP_PASSWORD.replace('@', '%40').replace(':', '%3A').replace('/', '%2F')}@"
        return f"smtp://{login if with_login else ''}127.0.0.1:{self.port}"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.recipients]

    def kinds(self, address: str) -> list[str]:
        return [str(r.message["X-Reelgate-Kind"]) for r in self.to(address)]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=box.authenticate,
        auth_require_tls=False,  # loopback in the test process; production relays use STARTTLS or smtps
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class BadServer:
    """A TCP server that misbehaves as SMTP: 'refuse' greets with 554, 'stall' never says a word, 'drop' closes
    the connection as soon as it is made. Counts the connections it got."""

    behaviour: str
    port: int = 0
    connections: int = 0
    server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.behaviour == "refuse":
            writer.write(b"554 5.7.1 no service for you\r\n")
            await writer.drain()
            await reader.read(1000)
        elif self.behaviour == "stall":
            await asyncio.sleep(30)
        writer.close()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
async def bad_server(request: pytest.FixtureRequest) -> AsyncIterator[BadServer]:
    bad = BadServer(behaviour=request.param)
    bad.server = await asyncio.start_server(bad._handle, "127.0.0.1", 0)
    bad.port = bad.server.sockets[0].getsockname()[1]
    try:
        yield bad
    finally:
        bad.server.close()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mail, "RETRY_DELAYS", (0.3, 0.3, 0.3))


@pytest.fixture
def settings(tmp_path: Path, database_url: str, mailbox: Mailbox) -> Settings:
    return make_settings(
        tmp_path / "data",
        database_url,
        smtp_url=mailbox.url(),
        smtp_timeout_seconds=1.0,
        low_credit_threshold=20,
        signup_credits=50,
    )


async def outbox(ctx: ServiceContext, user_id: str) -> list[OutboxEmail]:
    return await ctx.db.read(lambda tx: mail_queries.emails_of_user(tx, user_id))


async def pump(ctx: ServiceContext, done: Callable[[], bool], *, timeout: float = 20.0) -> None:
    """Sends due emails until `done()` (the embedded worker sends some of them too)."""
    deadline = time.monotonic() + timeout
    while True:
        await mail.run_due(ctx)
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError("the emails did not arrive in time")
        await asyncio.sleep(0.05)
