"""A receiving MX that misbehaves on purpose, over a real socket: it never greets, greets with
garbage, answers EHLO with garbage, drops or hangs after the final dot, answers 421/451 or a
code no SMTP server sends, puts control characters in its replies, or talks a byte a second.

Only the lines of the protocol the misbehaviour needs are spoken; everything else is the
minimum of RFC 5321 for a client to get to the final dot."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

# The misbehaviours, by name (the fault suite and the tests refer to them by these).
BEHAVIOURS = (
    "never_greet",
    "garbage_greeting",
    "garbage_ehlo",
    "huge_ehlo_line",
    "reply_421",
    "reply_451",
    "drop_after_dot",
    "hang_after_dot",
    "truncated_reply_after_dot",
    "code_999_after_dot",
    "nul_in_reply",
    "byte_per_second",
)


@dataclass
class HostileMx:
    behaviour: str
    connections: int = 0
    dots: int = 0  # messages sent up to their final dot
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    port: int = 0

    async def start(self, host: str, port: int = 0) -> int:
        assert self.behaviour in BEHAVIOURS, self.behaviour
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        b = self.behaviour

        async def say(line: bytes) -> None:
            if b == "byte_per_second":
                for i in range(len(line)):
                    writer.write(line[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(1.0)
            else:
                writer.write(line)
                await writer.drain()

        if b == "never_greet":
            await asyncio.sleep(3600)
        if b == "garbage_greeting":
            await say(b"\x16\x03\x01 HTTP/1.1 400 Bad Request\r\n")
            await reader.read(1024)
            return
        if b == "reply_421":
            await say(b"421 4.7.0 mx.test Too many connections, try later\r\n")
            return
        await say(b"220 mx.test ESMTP\r\n")
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                if b == "garbage_ehlo":
                    await say(b"hello there, friend\r\n")
                elif b == "huge_ehlo_line":
                    await say(b"250-mx.test " + b"x" * 70_000 + b"\r\n250 OK\r\n")
                else:
                    await say(b"250-mx.test\r\n250 8BITMIME\r\n")
            elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                await say(b"250 2.0.0 OK\r\n")
            elif verb == b"QUIT":
                await say(b"221 2.0.0 Bye\r\n")
                return
            elif verb == b"DATA":
                await say(b"354 go ahead\r\n")
                while (await reader.readline()) not in (b".\r\n", b""):
                    pass
                self.dots += 1
                if await self._after_dot(say) is False:
                    return
            else:
                await say(b"502 5.5.1 Not implemented\r\n")

    async def _after_dot(self, say) -> bool:
        b = self.behaviour
        if b == "reply_451":
            await say(b"451 4.3.0 Temporary local problem, try later\r\n")
        elif b == "drop_after_dot":
            return False
        elif b == "hang_after_dot":
            await asyncio.sleep(3600)
        elif b == "truncated_reply_after_dot":
            await say(b"250 2.0.")
            return False
        elif b == "code_999_after_dot":
            await say(b"999 what is this\r\n")
        elif b == "nul_in_reply":
            await say(b"451 4.3.0 try\x00 again\x1b[31m later\r\n")
        else:
            await say(b"250 2.0.0 OK queued\r\n")
        return True
