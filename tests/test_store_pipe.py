"""The store's own script connection: the URL's database and password hold, and a silent
or garbled server fails the calls waiting (the gateway answers "deliver again") instead
of hanging them; the next call connects anew."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from smsgw.store import Store, StoreUnavailable
from smsgw.store.pipe import ScriptPipe


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


async def test_script_calls_land_in_the_database_the_url_names(redis_url: str) -> None:
    url = _with_db(redis_url, 3)
    redis.Redis.from_url(url).flushdb()
    store = Store.connect(url)
    try:
        assert await store.run_script("confirm", ["s:{989360000001}:r:x"], ["f"]) == 1
        await store.redis.hset("s:{989360000001}:r:x", "f", "1")
        assert await store.run_script("confirm", ["s:{989360000001}:r:x"], ["f"]) == 1
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
            await asyncio.wait_for(store.run_script("confirm", ["s:{1}:r:x"], ["f"]), 10)
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
    batcher = ScriptBatcher(None, {}, pipe)  # type: ignore[arg-type]
    batcher._shas = {"transfer": "f" * 40}  # as if loaded before the restart
    try:
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(batcher.call("transfer", ["s:{1}"], ["x"]), 5)
    finally:
        pipe.close()
        server.close()
