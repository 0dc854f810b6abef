"""One SMPP TCP connection, either side: framing, sequence numbers, request/response.

Requests from the peer go to `on_request`; it is called as the bytes arrive and must not
block (handlers that do real work start a task). Responses resolve the futures of our
own requests by sequence number, so any number may be outstanding at once.

Bytes come in through `feed`: from `SmppProtocol` (the gateway's client: the event loop
calls it as data arrives, with no task or future per read) or from `read_loop` over a
stream (the fake SMSC).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Protocol

from smsgw.observability.logs import get_logger
from smsgw.transport.smpp.pdu import (
    ENQUIRE_LINK,
    ESME_RINVCMDLEN,
    ESME_ROK,
    ESME_RSYSERR,
    UNBIND,
    FramingError,
    PduFramer,
    RawPdu,
    generic_nack,
    response_pdu,
)

log = get_logger("smsgw.transport.smpp")
MAX_SEQUENCE = 0x7FFFFFFF
READ_SIZE = 256 * 1024


def _expire(future: asyncio.Future[RawPdu]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("no response"))


class ConnectionClosed(Exception):
    """The link is gone; what was outstanding on it has no answer."""


class Writer(Protocol):
    """What a Connection writes through: an asyncio Transport or StreamWriter."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...
    def get_extra_info(self, name: str, default: object = None) -> object: ...


class Connection:
    def __init__(self, writer: Writer, on_request: Callable[[RawPdu], None]) -> None:
        self._writer = writer
        self._on_request = on_request
        self._framer = PduFramer()
        self._sequence = itertools.count(1)
        self._pending: dict[int, asyncio.Future[RawPdu]] = {}
        self._outgoing: list[bytes] = []
        # callback-style requests (the submit hot path): sequence -> (callback, deadline)
        self._callbacks: dict[int, tuple[Callable[[RawPdu | Exception], None], float]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.peer = writer.get_extra_info("peername")

    def next_sequence(self) -> int:
        return (next(self._sequence) - 1) % MAX_SEQUENCE + 1

    def write(self, data: bytes) -> None:
        """Queue a PDU; all PDUs queued in one turn of the event loop go in one syscall."""
        if self.closed.is_set() or self._writer.is_closing():
            raise ConnectionClosed("write on a closed link")
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self.flush)
        self._outgoing.append(data)

    def flush(self) -> None:
        """Write what was queued (at the turn's end, or now when called)."""
        if self._outgoing and not self._writer.is_closing():
            self._writer.write(b"".join(self._outgoing))
        self._outgoing.clear()

    async def request(self, build: Callable[[int], bytes], timeout: float) -> RawPdu:
        """Send a request built for a fresh sequence number; await its response."""
        sequence = self.next_sequence()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RawPdu] = loop.create_future()
        self._pending[sequence] = future
        timer = loop.call_later(timeout, _expire, future)  # cheaper than wait_for
        try:
            self.write(build(sequence))
            return await future
        finally:
            timer.cancel()
            self._pending.pop(sequence, None)

    def answer_session_request(self, raw: RawPdu) -> bool:
        """Answer enquire_link and unbind (the same on both sides of a link); False for
        anything else, which the caller handles."""
        if raw.command_id == ENQUIRE_LINK:
            self.write(response_pdu(ENQUIRE_LINK, ESME_ROK, raw.sequence))
            return True
        if raw.command_id == UNBIND:
            self.write(response_pdu(UNBIND, ESME_ROK, raw.sequence))
            self.close()
            return True
        return False

    def send_request(self, build: Callable[[int], bytes],
                     callback: Callable[[RawPdu | Exception], None], timeout: float) -> None:
        """Send a request; `callback` gets its response, TimeoutError or ConnectionClosed.
        No task or timer per request: deadlines are swept once a second."""
        sequence = self.next_sequence()
        self.write(build(sequence))
        self._callbacks[sequence] = (callback, time.monotonic() + timeout)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while not self.closed.is_set():
            await asyncio.sleep(1.0)
            now = time.monotonic()
            expired = [seq for seq, (_, deadline) in self._callbacks.items() if deadline < now]
            for sequence in expired:
                callback, _ = self._callbacks.pop(sequence)
                callback(TimeoutError("no response"))

    def feed(self, chunk: bytes) -> None:
        """Bytes from the peer: each whole PDU handled; a broken frame ends the link
        (answered generic_nack first: nothing after it can be framed)."""
        if self.closed.is_set():
            return
        try:
            for raw in self._framer.feed(chunk):
                self._dispatch(raw)
        except FramingError:
            with contextlib.suppress(ConnectionClosed):
                self.write(generic_nack(ESME_RINVCMDLEN, 0))
            self.close()

    async def read_loop(self, reader: asyncio.StreamReader) -> None:
        """Read a stream until the link closes; then fail everything still outstanding."""
        try:
            while not self.closed.is_set() and (chunk := await reader.read(READ_SIZE)):
                self.feed(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def _dispatch(self, raw: RawPdu) -> None:
        """One PDU from the peer. Whatever it holds, the link lives on: a request that
        makes its handler fail is answered generic_nack (ESME_RSYSERR), a response that
        makes its waiter fail is dropped."""
        try:
            if raw.is_response:
                self._resolve(raw)
            else:
                self._on_request(raw)
        except ConnectionClosed:
            pass  # the link is going: the read loop ends with it
        except Exception:
            log.exception("a PDU from the peer could not be handled",
                          command_id=f"{raw.command_id:#010x}")
            if not raw.is_response:
                with contextlib.suppress(ConnectionClosed):
                    self.write(generic_nack(ESME_RSYSERR, raw.sequence))

    def _resolve(self, raw: RawPdu) -> None:
        entry = self._callbacks.pop(raw.sequence, None)
        if entry is not None:
            entry[0](raw)
            return
        future = self._pending.get(raw.sequence)
        if future is not None and not future.done():
            future.set_result(raw)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.flush()
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed("link closed"))
        self._pending.clear()
        callbacks, self._callbacks = self._callbacks, {}
        for callback, _ in callbacks.values():
            callback(ConnectionClosed("link closed"))
        if self._sweeper is not None:
            self._sweeper.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()



class SmppProtocol(asyncio.Protocol):
    """The event loop's side of a client link: bytes straight into its Connection."""

    def __init__(self) -> None:
        self._conn: Connection | None = None
        self._early: list[bytes] = []  # arrived before the Connection was attached
        self._lost = False

    def attach(self, conn: Connection) -> None:
        self._conn = conn
        for chunk in self._early:
            conn.feed(chunk)
        self._early.clear()
        if self._lost:
            conn.close()

    def data_received(self, data: bytes) -> None:
        if self._conn is None:
            self._early.append(data)
        else:
            self._conn.feed(data)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost ends the Connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._conn is not None:
            self._conn.close()
