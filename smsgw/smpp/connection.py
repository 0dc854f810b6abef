"""One SMPP TCP connection, either side: framing, sequence numbers, request/response.

Requests from the peer go to `on_request`; it is called in the read loop and must not
block (handlers that do real work start a task). Responses resolve the futures of our
own requests by sequence number, so any number may be outstanding at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

from smsgw.smpp.pdu import (
    ESME_RINVCMDLEN,
    FramingError,
    RawPdu,
    generic_nack,
    read_pdu,
)

MAX_SEQUENCE = 0x7FFFFFFF


class ConnectionClosed(Exception):
    """The link is gone; what was outstanding on it has no answer."""


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_request: Callable[[RawPdu], None],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_request = on_request
        self._sequence = itertools.count(1)
        self._pending: dict[int, asyncio.Future[RawPdu]] = {}
        self.closed = asyncio.Event()
        self.peer = writer.get_extra_info("peername")

    def next_sequence(self) -> int:
        return (next(self._sequence) - 1) % MAX_SEQUENCE + 1

    def write(self, data: bytes) -> None:
        if self.closed.is_set() or self._writer.is_closing():
            raise ConnectionClosed("write on a closed link")
        self._writer.write(data)

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(str(exc)) from exc

    async def request(self, build: Callable[[int], bytes], timeout: float) -> RawPdu:
        """Send a request built for a fresh sequence number; await its response."""
        sequence = self.next_sequence()
        future: asyncio.Future[RawPdu] = asyncio.get_running_loop().create_future()
        self._pending[sequence] = future
        try:
            self.write(build(sequence))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(sequence, None)

    async def read_loop(self) -> None:
        """Read until the link closes; then fail everything still outstanding."""
        try:
            while True:
                raw = await read_pdu(self._reader)
                if raw.is_response:
                    self._resolve(raw)
                else:
                    self._on_request(raw)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except FramingError:
            with contextlib.suppress(ConnectionClosed):
                self.write(generic_nack(ESME_RINVCMDLEN, 0))
        finally:
            self.close()

    def _resolve(self, raw: RawPdu) -> None:
        future = self._pending.get(raw.sequence)
        if future is not None and not future.done():
            future.set_result(raw)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed("link closed"))
        self._pending.clear()
        with contextlib.suppress(Exception):
            self._writer.close()

    async def wait_closed(self) -> None:
        await self.closed.wait()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
