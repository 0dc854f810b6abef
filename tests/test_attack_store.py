"""Attacks on the store's script batches (batcher.py, pipe.py, node_pipes.py): connections
killed mid-batch, scripts flushed, bad arguments, slots migrated while calls flow. After
each: every caller got an answer or StoreUnavailable, no call ran twice, a call answered
ran exactly once, the in-flight count is back to 0, and later calls still succeed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.store import Store, StoreUnavailable
from smsgw.store.script import Script
from smsgw.store.shared import CONFIRM
from tests.attacks import tried
from tests.conftest import RedisCluster, RedisServer


class CountKeys(NamedTuple):
    counts: str  # a hash: how many times each call ran


class CountArgs(NamedTuple):
    id: str


COUNT = Script(Path(__file__).with_name("lua") / "count_call.lua", CountKeys, CountArgs, int)


def counts_key(tag: int) -> str:
    return f"t:{{atk{tag}}}:counts"


def ran(client: redis.Redis, tags: int) -> dict[str, int]:
    """How many times each call id ran, over every counts hash."""
    total: dict[str, int] = {}
    for tag in range(tags):
        for call_id, count in client.hgetall(counts_key(tag)).items():
            total[call_id.decode()] = total.get(call_id.decode(), 0) + int(count)
    return total


async def all_settled(futures: dict[str, asyncio.Future[Any]],
                      timeout: float) -> dict[str, object]:
    """Every call's outcome (its answer or its exception), once all are in."""
    done = await asyncio.wait_for(asyncio.gather(*futures.values(), return_exceptions=True),
                                  timeout)
    return dict(zip(futures, done, strict=True))


async def turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def check_outcomes(outcomes: dict[str, object], runs: dict[str, int]) -> None:
    """Each call answered ran once; each failed as unavailable ran at most once; none
    failed otherwise."""
    for call_id, outcome in outcomes.items():
        if outcome == 1:
            assert runs.get(call_id) == 1, (call_id, runs.get(call_id))
        else:
            assert isinstance(outcome, StoreUnavailable), (call_id, outcome)
            assert runs.get(call_id, 0) <= 1, (call_id, runs.get(call_id))
    assert set(runs) <= set(outcomes)


# -- an argument that cannot be sent fails its own caller, never the batch --------------

async def _a_bad_argument_fails_only_its_caller(store: Store) -> None:
    await store.load_scripts()
    await store.run(CONFIRM, ["s:{1}:r:x"], ["f"])  # connected: the next batch is written at once
    good = [store.run(CONFIRM, [f"s:{{{n}}}:r:x"], ["f"]) for n in range(20)]
    bad = store.run(CONFIRM, ["s:{1}:r:x"], [None])  # a hand-edited journal's null, say
    results = await asyncio.wait_for(asyncio.gather(*good, bad, return_exceptions=True), 10)
    assert results[:-1] == [1] * 20
    assert isinstance(results[-1], TypeError)
    assert store._batcher._in_flight == 0
    assert await asyncio.wait_for(store.run(CONFIRM, ["s:{2}:r:x"], ["f"]), 10) == 1


async def test_a_bad_argument_fails_only_its_own_call(redis_url: str) -> None:
    store = Store.connect(redis_url)
    try:
        await _a_bad_argument_fails_only_its_caller(store)
    finally:
        await store.close()


async def test_a_bad_argument_fails_only_its_own_call_on_a_cluster(cluster_url: str) -> None:
    from tests.conftest import CLUSTER_PREFIX

    store = Store.connect(cluster_url.removeprefix(CLUSTER_PREFIX), cluster=True)
    try:
        await store.load_scripts()
        await store.run(CONFIRM, ["s:{1}:r:x"], ["f"])
        await asyncio.sleep(0.3)  # the node connections made
        await _a_bad_argument_fails_only_its_caller(store)
    finally:
        await store.close()


# -- a plain server: kills, flushes and bursts in any order -----------------------------

ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("burst"), st.integers(1, 600)),
    st.tuples(st.just("kill"), st.just(0)),  # CLIENT KILL every other client
    st.tuples(st.just("flush"), st.just(0)),  # SCRIPT FLUSH (as a restart does)
    st.tuples(st.just("turn"), st.integers(0, 3)),  # let the loop run a few turns
    st.tuples(st.just("settle"), st.just(0)),  # wait for the answers so far
), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ACTIONS)
def test_interleaved_kills_and_flushes_never_hang_repeat_or_leak(
        redis_server: RedisServer | str, steps: list[tuple[str, int]]) -> None:
    tried("a plain server's batches: every call answered once, no leak")
    url = redis_server if isinstance(redis_server, str) else redis_server.url
    sync = redis.Redis.from_url(url)
    sync.flushdb()
    tags = 7

    async def run() -> None:
        store = Store.connect(url)
        admin = aioredis.Redis.from_url(url)
        futures: dict[str, asyncio.Future[Any]] = {}
        try:
            for action, n in steps:
                if action == "burst":
                    for _ in range(n):
                        call_id = str(len(futures))
                        futures[call_id] = asyncio.ensure_future(store.run(
                            COUNT, CountKeys(counts_key(len(futures) % tags)),
                            CountArgs(call_id)))
                elif action == "kill":
                    with contextlib.suppress(redis.RedisError):
                        await admin.client_kill_filter(_type="normal", skipme=True)
                elif action == "flush":
                    await admin.script_flush()
                elif action == "turn":
                    await turns(n)
                else:
                    await all_settled(futures, 30)
            outcomes = await all_settled(futures, 30)
            assert store._batcher._in_flight == 0
            check_outcomes(outcomes, ran(sync, tags))
            assert await asyncio.wait_for(store.run(
                COUNT, CountKeys(counts_key(0)), CountArgs("after")), 10) == 1
            assert store._batcher._in_flight == 0
        finally:
            await admin.aclose()
            await store.close()

    asyncio.run(run())


# -- a cluster of our own: slots migrated, scripts flushed on one node, kills -----------

@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    cluster = RedisCluster(tmp_path_factory.mktemp("attacked-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


class _Cluster:
    """Moves slots and flushes or kills on the nodes of `own_cluster`, as an operator
    resharding it would."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.ports = cluster.ports
        self.nodes = [aioredis.Redis(port=port) for port in self.ports]
        self.migrating: dict[int, tuple[int, int]] = {}  # slot: (from, to) node index

    async def ids(self) -> list[str]:
        return [(await node.execute_command("CLUSTER MYID")).decode() for node in self.nodes]

    async def owner(self, slot: int) -> int:
        for start, end, primary, *_ in await self.nodes[0].execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return self.ports.index(int(primary[1]))
        raise AssertionError(f"slot {slot} not covered")

    async def begin(self, slot: int, to: int) -> None:
        """Slot `slot` MIGRATING to node `to` (its keys still where they were)."""
        if slot in self.migrating:
            return
        source = await self.owner(slot)
        if source == to:
            return
        ids = await self.ids()
        await self.nodes[to].execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source])
        await self.nodes[source].execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[to])
        self.migrating[slot] = (source, to)

    async def move_keys(self, slot: int) -> None:
        """The migrating slot's keys MIGRATEd (the calls for them now meet ASK)."""
        if slot not in self.migrating:
            return
        source, to = self.migrating[slot]
        keys = await self.nodes[source].execute_command("CLUSTER GETKEYSINSLOT", slot, 1000)
        if keys:
            await self.nodes[source].execute_command(
                "MIGRATE", "127.0.0.1", self.ports[to], "", 0, 5000, "KEYS", *keys)

    async def finish(self, slot: int) -> None:
        """The slot handed over: the old owner answers MOVED."""
        if slot not in self.migrating:
            return
        await self.move_keys(slot)
        source, to = self.migrating.pop(slot)
        ids = await self.ids()
        order = [to, source] + [i for i in range(len(self.nodes)) if i not in (to, source)]
        for index in order:
            await self.nodes[index].execute_command("CLUSTER SETSLOT", slot, "NODE", ids[to])

    async def finish_all(self) -> None:
        for slot in list(self.migrating):
            await self.finish(slot)

    async def close(self) -> None:
        for node in self.nodes:
            await node.aclose()


CLUSTER_ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("burst"), st.integers(1, 400), st.just(0)),
    st.tuples(st.just("kill"), st.integers(0, 2), st.just(0)),  # CLIENT KILL on a node
    st.tuples(st.just("flush"), st.integers(0, 2), st.just(0)),  # SCRIPT FLUSH on a node
    st.tuples(st.just("begin"), st.integers(0, 6), st.integers(0, 2)),  # tag, to node
    st.tuples(st.just("move_keys"), st.integers(0, 6), st.just(0)),
    st.tuples(st.just("finish"), st.integers(0, 6), st.just(0)),
    st.tuples(st.just("turn"), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("settle"), st.just(0), st.just(0)),
), min_size=1, max_size=12)


@settings(max_examples=30, deadline=None, database=None)
@given(CLUSTER_ACTIONS)
def test_a_cluster_resharded_flushed_and_killed_never_runs_a_call_twice_nor_hangs(
        own_cluster: RedisCluster, steps: list[tuple[str, int, int]]) -> None:
    from redis.crc import key_slot

    tried("a cluster's batches: resharding, flushes, kills; every call answered once")
    tags = 7
    own_cluster.flush()
    check = redis.RedisCluster.from_url(own_cluster.url)

    async def run() -> None:
        store = Store.connect(own_cluster.url, cluster=True)
        ops = _Cluster(own_cluster)
        futures: dict[str, asyncio.Future[Any]] = {}
        try:
            await store.load_scripts()
            await store.run(COUNT, CountKeys(counts_key(0)), CountArgs("warm"))
            await asyncio.sleep(0.2)  # the node connections made: the direct path is taken
            for action, a, b in steps:
                slot = key_slot(f"atk{a}".encode())
                if action == "burst":
                    for _ in range(a):
                        call_id = str(len(futures))
                        futures[call_id] = asyncio.ensure_future(store.run(
                            COUNT, CountKeys(counts_key(len(futures) % tags)),
                            CountArgs(call_id)))
                elif action == "kill":
                    with contextlib.suppress(redis.RedisError):
                        await ops.nodes[a].client_kill_filter(_type="normal", skipme=True)
                elif action == "flush":
                    await ops.nodes[a].script_flush()
                elif action == "begin":
                    await ops.begin(slot, b)
                elif action == "move_keys":
                    await ops.move_keys(slot)
                elif action == "finish":
                    await ops.finish(slot)
                elif action == "turn":
                    await turns(a)
                else:
                    await all_settled(futures, 60)
            outcomes = await all_settled(futures, 60)
            assert store._batcher._in_flight == 0
            await ops.finish_all()
            runs = ran(check, tags)  # type: ignore[arg-type]
            runs.pop("warm", None)
            check_outcomes(outcomes, runs)
            for tag in range(tags):  # every slot reached again (a killed link may cost
                for attempt in range(50):  # ... redis-py's pool a temporary error first)
                    try:
                        assert await asyncio.wait_for(store.run(
                            COUNT, CountKeys(counts_key(tag)),
                            CountArgs(f"after{tag}-{attempt}")), 20) == 1
                        break
                    except StoreUnavailable:
                        await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"slot of tag {tag} never reached again")
            assert store._batcher._in_flight == 0
        finally:
            with contextlib.suppress(Exception):
                await ops.finish_all()
            await ops.close()
            await store.close()

    try:
        asyncio.run(run())
    finally:
        check.close()


async def test_scripts_flushed_again_before_the_resend_is_a_temporary_error(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """NOSCRIPT, the scripts loaded, and flushed again before the calls go again (a
    server restarting twice, an operator's SCRIPT FLUSH): the calls did not run; their
    callers hear "later" (StoreUnavailable), not a script error, and the next call loads
    the scripts again."""
    store = Store.connect(redis_url)
    try:
        await store.load_scripts()
        assert await store.run(CONFIRM, ["s:{1}:r:x"], ["f"]) == 1
        batcher = store._batcher
        load = batcher._load

        async def load_then_lose(*args: Any) -> None:
            await load(*args)
            await store.redis.script_flush()
        with monkeypatch.context() as patch:
            patch.setattr(batcher, "_load", load_then_lose)
            await store.redis.script_flush()
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(store.run(CONFIRM, ["s:{1}:r:x"], ["f"]), 10)
        assert batcher._in_flight == 0
        assert await asyncio.wait_for(store.run(CONFIRM, ["s:{1}:r:x"], ["f"]), 10) == 1
    finally:
        await store.close()


async def test_a_slot_redirected_back_and_forth_is_a_temporary_error(
        own_cluster: RedisCluster) -> None:
    """A slot MIGRATING on its owner while the other node is not (yet) IMPORTING: a key
    not there is ASKed to the other node, which answers MOVED back, and redis-py gives up
    after 16 redirections (ClusterError, "TTL exhausted"). The call never ran: its caller
    hears "later" (StoreUnavailable), not a cluster error."""
    from redis.crc import key_slot

    own_cluster.flush()
    store = Store.connect(own_cluster.url, cluster=True)
    ops = _Cluster(own_cluster)
    key = counts_key(3)
    slot = key_slot(b"atk3")
    try:
        await store.load_scripts()
        source = await ops.owner(slot)
        other = (source + 1) % len(ops.nodes)
        ids = await ops.ids()
        await ops.nodes[source].execute_command("CLUSTER SETSLOT", slot, "MIGRATING",
                                                ids[other])
        try:
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(store.run(COUNT, CountKeys(key), CountArgs("x")), 30)
        finally:
            await ops.nodes[source].execute_command("CLUSTER SETSLOT", slot, "STABLE")
        assert store._batcher._in_flight == 0
        assert await asyncio.wait_for(store.run(COUNT, CountKeys(key), CountArgs("y")), 30) == 1
        assert redis.RedisCluster.from_url(own_cluster.url).hgetall(key) == {b"y": b"1"}
    finally:
        await ops.close()
        await store.close()


# -- the script connection's descriptor ---------------------------------------------------

def test_a_connection_dropped_unannounced_leaves_the_descriptor_to_its_owner() -> None:
    """The idle-link peek's socket object shares the transport's descriptor: if the
    protocol goes without connection_lost (an event loop closed under it), that object
    must not close the descriptor, a second time, maybe another connection's by then."""
    import gc
    import socket

    from smsgw.store.pipe import _Resp

    mine, peer = socket.socketpair()

    class Transport:
        def get_extra_info(self, name: str) -> object:
            return mine

    async def made_and_dropped() -> None:
        protocol = _Resp(None, 5.0)
        protocol.connection_made(Transport())  # type: ignore[arg-type]
        del protocol

    try:
        asyncio.run(made_and_dropped())
        gc.collect()
        mine.send(b"x")  # EBADF if the descriptor was closed under its owner
        assert peer.recv(1) == b"x"
    finally:
        mine.close()
        peer.close()


async def test_a_connection_under_way_when_the_store_closes_is_dropped(
        redis_url: str) -> None:
    """A node connection started in the background (connect_soon) and the store closed
    meanwhile: the connection is not left open, owned by nobody."""
    from smsgw.store.pipe import ScriptPipe

    client = redis.Redis.from_url(redis_url)
    before = int(client.info("clients")["connected_clients"])
    pipe = ScriptPipe(dict(aioredis.Redis.from_url(redis_url).connection_pool
                           .connection_kwargs))
    pipe.connect_soon()
    await asyncio.sleep(0)
    pipe.close()
    await asyncio.sleep(0.3)
    assert pipe._protocol is None
    assert int(client.info("clients")["connected_clients"]) == before
    with pytest.raises(ConnectionError):
        await pipe.connected()
    client.close()


async def test_a_cluster_call_whose_link_broke_after_it_ran_is_not_sent_again(
        own_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through redis-py (the node path resting), a node's link breaks after the server
    ran the batch's calls (a kill mid-write): redis-py retried the pipeline and ran them
    again, answered as if once (found by the resharding attack: a call ran twice). They
    must fail as StoreUnavailable, having run once."""
    from redis.asyncio.cluster import ClusterNode

    own_cluster.flush()
    store = Store.connect(own_cluster.url, cluster=True)
    real = ClusterNode.execute_pipeline
    broken: list[str] = []

    async def ran_then_lost(self: ClusterNode, commands: list[Any]) -> bool:
        await real(self, commands)
        if not broken and any(cmd.args[0] == "EVALSHA" for cmd in commands):
            broken.append(self.name)
            for cmd in commands:
                cmd.result = None
            raise redis.ConnectionError("lost after the write")
        return False

    try:
        await store.load_scripts()
        assert store._batcher._nodes is not None
        store._batcher._nodes.rest()  # every batch through redis-py
        monkeypatch.setattr(ClusterNode, "execute_pipeline", ran_then_lost)
        calls = [store.run(COUNT, CountKeys(counts_key(tag)), CountArgs(str(tag)))
                 for tag in range(7)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
        assert broken
        runs = ran(redis.RedisCluster.from_url(own_cluster.url), 7)  # type: ignore[arg-type]
        check_outcomes({str(tag): outcome for tag, outcome in enumerate(outcomes)}, runs)
        assert store._batcher._in_flight == 0
    finally:
        await store.close()
