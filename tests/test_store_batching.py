"""Script calls are pipelined per event-loop turn; a burst never hangs or fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.app import build_app
from smsgw.messages import Outbound
from smsgw.store import Store, StoreUnavailable
from smsgw.store.shared import CONFIRM
from smsgw.transport.outbox import Outbox
from tests.conftest import RedisServer, free_port, make_settings


async def test_a_burst_on_a_fresh_store_is_answered(store_url: str) -> None:
    store = Store.connect(store_url)  # scripts not loaded yet: several batches load at once
    try:
        calls = [store.run(CONFIRM, [f"s:{{98936{n:07d}}}:r:x"], ["f"])
                 for n in range(700)]
        results = await asyncio.wait_for(asyncio.gather(*calls), 20)
        assert results == [1] * 700
    finally:
        await store.close()


async def test_scripts_are_reloaded_after_a_flush(redis_url: str) -> None:
    store = Store.connect(redis_url)
    try:
        assert await store.run(CONFIRM, ["s:{989360000000}:r:x"], ["f"]) == 1
        await store.redis.script_flush()  # as after a Redis restart
        assert await store.run(CONFIRM, ["s:{989360000000}:r:x"], ["f"]) == 1
    finally:
        await store.close()


async def test_a_server_turned_replica_is_the_store_unavailable(tmp_path: Path) -> None:
    """After a failover the old primary is a replica: it refuses a script's first write
    (READONLY). That is "not now" (the gateway asks the SMSC to deliver again, the HTTP
    API sends its SMS from memory), not an error of the call: the outside attack on the
    HTTP OTP got a 500 from it."""
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    primary = RedisServer(free_port(), tmp_path / "primary")
    replica = RedisServer(free_port(), tmp_path / "replica")
    primary.start()
    replica.start()
    app = build_app(make_settings(replica.url))
    try:
        await app.store.redis.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        for _ in range(100):
            if (await app.store.redis.info("replication"))["master_link_status"] == "up":
                break
            await asyncio.sleep(0.05)
        outbox = Outbox(app.store, app.hasher, app.settings)
        with pytest.raises(StoreUnavailable):
            await outbox.hold(None, [Outbound("989351234567", "7000", "code 123456", "otp.x",
                                              secret="123456")])
        assert await app.store.redis.dbsize() == 0  # nothing written
    finally:
        await app.close()
        replica.stop()
        primary.stop()


def test_evalsha_is_packed_as_redis_py_packs_it() -> None:
    from redis.asyncio.connection import Connection

    from smsgw.store.batcher import pack_evalsha

    keys = ["s:{989361111111}", "s:{989361111111}:h"]
    args: list[object] = ["متن", 42, -7, 1.5, 0.1, b"\x00raw", "", "a b", 10**20]
    expected = b"".join(Connection().pack_command("EVALSHA", "f" * 40, len(keys), *keys, *args))
    assert pack_evalsha("f" * 40, keys, args) == expected  # type: ignore[arg-type]
    for unsendable in (True, None, [1], {"a": 1}, bytearray(b"x")):
        with pytest.raises(TypeError):  # refused, not guessed at
            pack_evalsha("f" * 40, keys, ["fine", unsendable])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(), max_size=4),
       st.lists(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False),
                          st.binary()), max_size=12))
def test_any_script_call_is_packed_as_redis_py_packs_it(keys: list[str],
                                                         args: list[object]) -> None:
    """Every key and argument, whatever it holds (any text, huge or negative numbers,
    raw bytes), reaches Redis byte for byte as redis-py would send it."""
    from redis.asyncio.connection import Connection

    from smsgw.store.batcher import pack_evalsha

    expected = b"".join(Connection().pack_command("EVALSHA", "f" * 40, len(keys), *keys, *args))
    assert pack_evalsha("f" * 40, keys, args) == expected
