"""One dedicated connection to a plain Redis server for script batches: RESP written by
the batcher, answers read by hiredis straight off the socket, in order.

redis-py's pooled connection costs a pool checkout, a coroutine per answer and a release
per batch (about a third of the gateway's store time); here a batch is one `write` and
its answers go, as they arrive, to the receiver it was written with (`Answers`: the
batcher's batch itself, so no future per answer). Redis answers a connection's commands
in the order they were sent, so the n-th answer belongs to the n-th command waiting.

A broken link, a garbled answer or no answer within `timeout` seconds fails every call
still waiting with ConnectionError (none of them is known to have run; the callers answer
"deliver again"), and the next batch connects anew. A link that the server closed while
nothing was waiting (a restarted Redis) is noticed before a batch is written to it, even
if the event loop has not read its end yet: that batch goes to a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections import deque
from itertools import repeat
from typing import Any, Protocol

import hiredis
from redis._parsers.base import BaseParser


class Answers(Protocol):
    """Where a batch's answers go: `answer` once per command, in order (an error answer
    as an exception value); or `fail` once the link is lost with answers still owed (it
    may be called more than once: the receiver keeps the first)."""

    def answer(self, value: Any) -> None: ...

    def fail(self, error: Exception) -> None: ...


class _FutureAnswers:
    """Answers into one future per command (the connection's own AUTH/SELECT, tests)."""

    __slots__ = ("_next", "futures")

    def __init__(self, futures: list[asyncio.Future[Any]]) -> None:
        self.futures = futures
        self._next = 0

    def answer(self, value: Any) -> None:
        future = self.futures[self._next]
        self._next += 1
        if not future.done():
            future.set_result(value)

    def fail(self, error: Exception) -> None:
        for future in self.futures[self._next:]:
            if not future.done():
                future.set_exception(error)
                future.exception()  # the caller's last future reports it; no "never retrieved"


class _BorrowedSocket(socket.socket):
    """A socket object on a descriptor that another owns (the transport's): it never
    closes it, even if dropped without `detach` (a connection the event loop never told
    us it lost: a loop closed under it). socket.socket would close the descriptor then,
    a second time, perhaps after it was given to another connection."""

    __slots__ = ()

    def __del__(self) -> None:
        self.detach()


class _Resp(asyncio.Protocol):
    def __init__(self, encoding: str | None, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        # errors as redis-py types them: LOADING is a BusyLoadingError (the store is
        # unavailable, not the script wrong), NOSCRIPT a NoScriptError, and so on
        self._reader = hiredis.Reader(encoding=encoding, replyError=BaseParser.parse_error)
        self._waiting: deque[Answers] = deque()  # one entry per command owed an answer
        self._timeout = timeout
        self._progress = 0.0  # when an answer last arrived, or the queue last started
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self._peek: socket.socket | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        wrapped = transport.get_extra_info("socket")
        # a socket object on the transport's descriptor, made once, to peek with
        self._peek = None if wrapped is None else _BorrowedSocket(
            wrapped.family, wrapped.type, wrapped.proto, fileno=wrapped.fileno())

    def send(self, payload: bytes, count: int, answers: Answers) -> None:
        """Write `count` commands; their answers go to `answers`. Raises ConnectionError."""
        if self.closed or self.transport is None:
            raise ConnectionError("connection to Redis lost")
        if not self._waiting:
            self._progress = self._loop.time()
        self._waiting.extend(repeat(answers, count))
        self.transport.write(payload)
        if self._timer is None:
            self._timer = self._loop.call_later(self._timeout, self._check_progress)

    def usable(self) -> bool:
        """Whether a batch may be written here: open, and, when idle, not closed by the
        server meanwhile (answers still waiting: it was alive a moment ago)."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        if not self._waiting and self._peer_gone():
            self.abort()
            return False
        return True

    def _peer_gone(self) -> bool:
        """Whether the server closed or reset the link, read off the socket without
        taking anything from it (MSG_PEEK), before the event loop has seen it."""
        peek = self._peek
        if peek is None:
            return False
        try:
            return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False  # nothing to read: the link is up
        except OSError:
            return True  # reset

    def eof_received(self) -> bool | None:
        self._fail_waiting()  # the server closed its side: nothing more will come
        return None

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self._waiting
        try:
            while (answer := self._reader.gets()) is not False:
                waiting.popleft().answer(answer)
        except (hiredis.ProtocolError, IndexError):  # garbage, or an answer nobody asked for
            self.abort()
            return
        self._progress = self._loop.time()

    def _check_progress(self) -> None:
        self._timer = None
        if not self._waiting or self.closed:
            return
        idle = self._loop.time() - self._progress
        if idle >= self._timeout:
            self.abort()
        else:
            self._timer = self._loop.call_later(self._timeout - idle, self._check_progress)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # connection_lost follows
        self._fail_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        self.closed = True
        if self._peek is not None:
            self._peek.detach()  # the transport owns the descriptor: never close it here
            self._peek = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error = ConnectionError("connection to Redis lost")
        owed, self._waiting = self._waiting, deque()
        for answers in dict.fromkeys(owed):  # each receiver once, in order
            answers.fail(error)


class ScriptPipe:
    """Connects on first use and again after a loss; `send` returns one future per
    command, resolved with its answer (an error answer as an exception value)."""

    def __init__(self, connection_kwargs: dict[str, Any], timeout: float = 5.0,
                 connect_timeout: float = 2.0) -> None:
        self._kwargs = connection_kwargs
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._protocol: _Resp | None = None
        self._connecting = asyncio.Lock()
        self._connecting_task: asyncio.Task[None] | None = None
        self._closed = False  # for good: a connection made after `close` is dropped

    @staticmethod
    def supports(connection_class: type) -> bool:
        """Plain TCP or a unix socket; TLS stays with redis-py."""
        from redis.asyncio.connection import Connection, UnixDomainSocketConnection

        return connection_class in (Connection, UnixDomainSocketConnection)

    async def send(self, payload: bytes, count: int) -> list[asyncio.Future[Any]]:
        """Write `count` commands; one future per answer."""
        loop = asyncio.get_running_loop()
        answers = _FutureAnswers([loop.create_future() for _ in range(count)])
        await self.connected()
        self.write(payload, count, answers)
        return answers.futures

    def ready(self) -> bool:
        """Whether `write` may go now, without connecting first."""
        return self._protocol is not None and self._protocol.usable()

    def connect_soon(self) -> None:
        """Start connecting in the background (once at a time); `ready()` says when."""
        if self._connecting_task is None or self._connecting_task.done():
            self._connecting_task = asyncio.get_running_loop().create_task(self._connect_quietly())

    async def _connect_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the next batch that needs it says why
            await self._connect()

    async def connected(self) -> None:
        if not self.ready():
            await self._connect()

    def write(self, payload: bytes, count: int, answers: Answers) -> None:
        """Write on the connection made (after `ready()` or `connected()`); answers go to
        `answers`. Raises ConnectionError."""
        if self._protocol is None:
            raise ConnectionError("not connected to Redis")
        self._protocol.send(payload, count, answers)

    async def _connect(self) -> _Resp:
        async with self._connecting:
            if self._closed:
                raise ConnectionError("the script connection is closed")
            if self._protocol is not None and self._protocol.usable():
                return self._protocol
            loop = asyncio.get_running_loop()
            kwargs = self._kwargs
            encoding = kwargs.get("encoding", "utf-8") if kwargs.get("decode_responses") else None
            factory = functools.partial(_Resp, encoding, self._timeout)
            if kwargs.get("path"):
                opening = loop.create_unix_connection(factory, kwargs["path"])
            else:
                opening = loop.create_connection(factory, kwargs.get("host", "localhost"),
                                                 kwargs.get("port", 6379))
            _, protocol = await asyncio.wait_for(opening, self._connect_timeout)
            try:
                await self._hello(protocol)
                if self._closed:  # closed meanwhile (the store shut down)
                    raise ConnectionError("the script connection is closed")
            except BaseException:
                protocol.abort()
                raise
            self._protocol = protocol
            return protocol

    async def _hello(self, protocol: _Resp) -> None:
        """AUTH and SELECT as the URL says, before any script call."""
        commands: list[list[str]] = []
        password, username = self._kwargs.get("password"), self._kwargs.get("username")
        if password:
            commands.append(["AUTH", *([username] if username else []), password])
        if int(self._kwargs.get("db") or 0):
            commands.append(["SELECT", str(self._kwargs["db"])])
        if not commands:
            return
        payload = b"".join(pack_command([part.encode() for part in command])
                           for command in commands)
        answers = _FutureAnswers([asyncio.get_running_loop().create_future()
                                  for _ in commands])
        protocol.send(payload, len(commands), answers)
        for future in answers.futures:
            answer = await future
            if isinstance(answer, Exception):
                raise ConnectionError(f"Redis refused the connection: {answer}")

    def close(self) -> None:
        """For good: a connection under way (connect_soon) is dropped too."""
        self._closed = True
        if self._connecting_task is not None:
            self._connecting_task.cancel()
        if self._protocol is not None:
            with contextlib.suppress(Exception):
                self._protocol.abort()
            self._protocol = None


def pack_command(parts: list[bytes]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(
        b"$%d\r\n%b\r\n" % (len(part), part) for part in parts)
