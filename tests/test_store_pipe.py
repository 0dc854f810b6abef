"""The store's own script connection: the URL's database and password hold, and a silent
or garbled server fails the calls waiting (the gateway answers "deliver again") instead
of hanging them; the next call connects anew."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.store import Store, StoreUnavailable
from smsgw.store.pipe import ScriptPipe
from smsgw.store.shared import CONFIRM
from tests.attacks import tried
from tests.conftest import RedisServer, free_port


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


async def test_script_calls_land_in_the_database_the_url_names(redis_url: str) -> None:
    url = _with_db(redis_url, 3)
    redis.Redis.from_url(url).flushdb()
    store = Store.connect(url)
    try:
        assert await store.run(CONFIRM, ["s:{989360000001}:r:x"], ["f"]) == 1
        await store.redis.hset("s:{989360000001}:r:x", "f", "1")
        assert await store.run(CONFIRM, ["s:{989360000001}:r:x"], ["f"]) == 1
    finally:
        await store.close()
    assert redis.Redis.from_url(url).dbsize() == 0  # confirm deleted the field it was given
    assert redis.Redis.from_url(_with_db(redis_url, 0)).dbsize() == 0


async def test_a_wrong_password_is_a_store_error_not_a_hang(redis_url: str) -> None:
    parts = urlsplit(_with_db(redis_url, 0))
    url = urlunsplit(parts._replace(netloc=f"nobody:wrong@{parts.hostname}:{parts.port}"))
    store = Store.connect(url)
    try:
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.run(CONFIRM, ["s:{1}:r:x"], ["f"]), 10)
    finally:
        await store.close()


async def _server(answer: bytes) -> tuple[asyncio.Server, int, list[int]]:
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.read(1024)
        writer.write(answer)
        await writer.drain()
        await reader.read()  # keep the link open, say nothing more

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connections


@pytest.mark.parametrize("answer", [b"", b"?garbage\r\n"], ids=["silent", "garbled"])
async def test_a_silent_or_garbled_server_fails_the_waiting_calls(answer: bytes) -> None:
    server, port, connections = await _server(answer)
    pipe = ScriptPipe({"host": "127.0.0.1", "port": port}, timeout=0.3)
    try:
        for attempt in (1, 2):
            futures = await pipe.send(b"*1\r\n$4\r\nPING\r\n" * 2, 2)
            for future in futures:
                with pytest.raises(ConnectionError):
                    await asyncio.wait_for(future, 5)
            assert len(connections) == attempt  # a fresh connection after each failure
    finally:
        pipe.close()
        server.close()


async def test_many_answers_reach_their_own_callers_in_order() -> None:
    answers = b"".join(b"$5\r\nreply\r\n:%d\r\n" % n for n in range(200))
    server, port, _ = await _server(answers)
    pipe = ScriptPipe({"host": "127.0.0.1", "port": port, "decode_responses": True})
    try:
        futures = await pipe.send(b"*1\r\n$4\r\nPING\r\n", 400)
        results = await asyncio.wait_for(asyncio.gather(*futures), 5)
        assert results == [x for n in range(200) for x in ("reply", n)]
    finally:
        pipe.close()
        server.close()


async def test_a_server_still_loading_its_data_is_unavailable_not_a_script_error() -> None:
    """Right after a restart Redis answers LOADING: the gateway must say "deliver again"
    (StoreUnavailable), as for a server that is down, not fail the message."""
    from smsgw.store.batcher import ScriptBatcher

    server, port, _ = await _server(b"-LOADING Redis is loading the dataset in memory\r\n")
    pipe = ScriptPipe({"host": "127.0.0.1", "port": port, "decode_responses": True})
    batcher = ScriptBatcher(None, pipe)  # type: ignore[arg-type]
    batcher._loaded = {CONFIRM}  # as if loaded before the restart
    try:
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(batcher.call(CONFIRM, ["s:{1}"], ["x"]), 5)
    finally:
        pipe.close()
        server.close()


# -- a restarted Redis is noticed before the next batch ------------------------------------

@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server that this test alone restarts (an append-only file keeps data)."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("restarted"), durable=True)
    server.start()
    yield server
    server.stop()


async def test_the_first_script_call_after_a_redis_restart_succeeds(
        own_redis: RedisServer) -> None:
    """Nothing waits in between: the event loop has not even read the old links' end
    when the call comes (both the script connection and the pool's, which reloads the
    scripts Redis forgot)."""
    store = Store.connect(own_redis.url)
    try:
        await store.load_scripts()
        assert await store.run(CONFIRM, ["s:{1}:r:x"], ["f"]) == 1
        for _ in range(2):
            own_redis.stop()
            own_redis.start()
            assert await store.run(CONFIRM, ["s:{1}:r:x"], ["f"]) == 1
            assert await store.subscriber("989360000001") == {}  # a pooled read, too
    finally:
        await store.close()


async def test_the_first_message_after_a_redis_restart_is_applied(
        own_redis: RedisServer, tmp_path: Path) -> None:
    from smsgw.transport.smpp.pdu import ESME_ROK
    from tests.test_smpp_gateway import ALI, SARA, start_rig, stop_rig

    rig = await start_rig(own_redis.url, tmp_path)
    try:
        await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555"))
        own_redis.stop()
        own_redis.start()
        mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:2000:55555")
        await rig.smsc.wait_answered(mo, timeout=20)
        assert mo.statuses == [ESME_ROK]  # at its first delivery, not "deliver again"
        assert await rig.balance(SARA) == 3_000
    finally:
        await stop_rig(rig)


class _Redisish:
    """A server, in a thread of its own, that answers PING with PONG and, as each step of
    a test plans it, keeps the link, closes it or resets it once it has answered, or
    closes it without answering. It counts every PING it received, over all its links."""

    def __init__(self) -> None:
        self.received = 0
        self.plan = "keep"
        self.expected = 0  # PINGs of the batch in flight
        self.done = threading.Event()  # the planned action is complete, server side
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> _Redisish:
        self._thread.start()
        self._started.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen = b""
        while chunk := await reader.read(65536):
            seen += chunk
            if seen.count(b"PING") < self.expected:
                continue
            count, seen = seen.count(b"PING"), b""
            self.received += count
            if self.plan != "drop_unanswered":
                writer.write(b"+PONG\r\n" * count)
                await writer.drain()
            if self.plan == "reset":
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if self.plan != "keep":
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                self.done.set()
                return
            self.done.set()


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(1, 6),
                          st.sampled_from(["keep", "close", "reset", "drop_unanswered"])),
                min_size=1, max_size=6))
def test_a_server_that_goes_away_costs_only_the_batch_in_flight(
        steps: list[tuple[int, str]]) -> None:
    """A link closed or reset after its answers (idle) is noticed before the next batch,
    even before the event loop reads its end: that batch is answered in full. A batch
    whose link died before its answers fails (ConnectionError: it may have run) and is
    never written again."""
    tried("a link that went away is noticed before the next batch")

    async def run(fake: _Redisish) -> None:
        pipe = ScriptPipe({"host": "127.0.0.1", "port": fake.port}, timeout=2.0)
        sent = 0
        try:
            for size, plan in steps:
                fake.plan, fake.expected = plan, size
                fake.done.clear()
                futures = await pipe.send(b"*1\r\n$4\r\nPING\r\n" * size, size)
                sent += size
                results = await asyncio.gather(*futures, return_exceptions=True)
                if plan == "drop_unanswered":
                    assert all(isinstance(r, ConnectionError) for r in results), results
                else:
                    assert results == [b"PONG"] * size, (plan, results)
                # wait without letting this event loop run: the next batch comes before
                # it could read that the server went away, as after a Redis restart
                assert fake.done.wait(5)
        finally:
            pipe.close()
        assert fake.received == sent  # every PING written once: nothing sent again

    with _Redisish() as fake:
        asyncio.run(run(fake))
