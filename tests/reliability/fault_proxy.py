"""A small TCP proxy that injects database faults: added latency, connection resets, a blackhole, and a COMMIT
whose answer is lost (the server commits; the client never hears so)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    mode: str = "pass"  # pass | latency | reset | blackhole
    latency: float = 0.02
    # Armed by a test: the next COMMIT goes through, then the connection drops before its answer comes back.
    lose_next_commit_answer: bool = False
    port: int = 0
    _server: asyncio.AbstractServer | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def set_mode(self, mode: str) -> None:
        """Changing mode ends every open connection, as a real network fault (or its repair) would."""
        self.mode = mode
        self.cut_all()

    def cut_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            _reset(client_writer)
            return
        self._writers.add(client_writer)
        if self.mode == "blackhole":
            with contextlib.suppress(Exception):
                while await client_reader.read(65536):
                    pass  # swallow everything, answer nothing
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            _reset(client_writer)
            return
        self._writers.add(up_writer)
        answers_lost = asyncio.Event()
        await asyncio.gather(
            self._pipe(client_reader, up_writer, answers_lost, requests=True),
            self._pipe(up_reader, client_writer, answers_lost, requests=False),
            return_exceptions=True,
        )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        answers_lost: asyncio.Event,
        *,
        requests: bool,
    ) -> None:
        try:
            while data := await reader.read(65536):
                # The armed COMMIT is delivered whatever the mode, so a test can also refuse what comes after it.
                losing = requests and self.lose_next_commit_answer and b"COMMIT\x00" in data
                if losing:
                    self.lose_next_commit_answer = False
                    answers_lost.set()
                elif self.mode == "latency":
                    await asyncio.sleep(self.latency)
                elif self.mode != "pass":
                    return
                if not requests and answers_lost.is_set():
                    continue
                writer.write(data)
                await writer.drain()
                if losing:
                    await asyncio.sleep(0.3)  # the server commits and answers into the void
                    return
        finally:
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), the way a crashed peer or a middlebox drop looks to the client."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.close()
