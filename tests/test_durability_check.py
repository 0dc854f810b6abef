"""The store's durability check: what `smsgw run` warns of at start (README "The Redis
server"), read off real redis-servers configured as an operator might leave them."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from pathlib import Path

import pytest
import redis

from smsgw.store import Store
from smsgw.store.connect import cluster_client, server_client
from smsgw.testing import RedisCluster, RedisServer, free_port
from tests.conftest import TEST_KEY
from tests.test_processes import SMSGW, env_for


@pytest.mark.parametrize(("durable", "fsync", "config", "warned", "to_set"), [
    (False, "always", {}, "keeps no append-only file", "appendonly yes"),
    (True, "everysec", {}, "last second or two", "appendfsync always"),
    (True, "no", {}, "~30 s", "appendfsync always"),
    (True, "always", {"no-appendfsync-on-rewrite": "yes"}, "while it rewrites",
     "no-appendfsync-on-rewrite no"),
    (True, "always", {}, None, None),
])
async def test_a_store_that_a_power_cut_could_roll_back_is_named(
        tmp_path: Path, durable: bool, fsync: str, config: dict[str, str],
        warned: str | None, to_set: str | None) -> None:
    server = RedisServer(free_port(), tmp_path, durable=durable, fsync=fsync, config=config)
    server.start()
    store = Store(server_client(server.url), embedded=False)
    try:
        gaps = await store.durability_gaps()
    finally:
        await store.redis.aclose()
        server.stop()
    if warned is None:
        assert gaps == []
    else:
        assert len(gaps) == 1 and warned in gaps[0] and f"set {to_set}" in gaps[0]


async def test_a_user_refused_info_and_config_is_served_and_not_judged(
        tmp_path: Path) -> None:
    """A managed Redis's ACL may refuse INFO and CONFIG (both @dangerous): nothing can
    be told, so nothing is said; the store (and `smsgw run`'s start) still works."""
    server = RedisServer(free_port(), tmp_path, durable=True, fsync="everysec")
    server.start()
    admin = redis.Redis(port=server.port)
    admin.acl_setuser("gw", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                      commands=["+@all", "-@dangerous"])
    store = Store(server_client(f"redis://gw:pw@127.0.0.1:{server.port}/0"), embedded=False)
    try:
        assert await store.durability_gaps() == []
        await store.check_mode()  # refused INFO: not taken for a cluster node, no error
        assert await store.redis.set("probe", "1")
    finally:
        await store.redis.aclose()
        admin.close()
        server.stop()


async def test_each_primary_of_a_cluster_is_checked(redis_cluster: RedisCluster) -> None:
    store = Store(cluster_client(redis_cluster.url), embedded=False, cluster=True)
    try:
        gaps = await store.durability_gaps()  # the suite's cluster keeps nothing on disk
    finally:
        await store.redis.aclose()
    assert len(gaps) == len(redis_cluster.ports)
    for port in redis_cluster.ports:
        assert sum(f":{port} keeps no append-only file" in gap for gap in gaps) == 1


async def test_the_embedded_store_is_not_taken_for_a_redis(tmp_path: Path) -> None:
    from smsgw.store.connect import embedded_client

    store = Store(embedded_client(), embedded=True)
    assert await store.durability_gaps() == []


@pytest.mark.parametrize("redis_first", [True, False], ids=["up-at-start", "up-later"])
async def test_run_warns_of_a_redis_that_fsyncs_each_second(tmp_path: Path,
                                                           redis_first: bool) -> None:
    """At start, or, for a Redis down then, once it answers."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(free_port(), tmp_path / "redis", durable=True, fsync="everysec")
    if redis_first:
        server.start()
    process = await asyncio.create_subprocess_exec(
        *SMSGW, "run", "--redis", server.url, cwd=tmp_path,
        env=env_for(SMSGW_SMSC_PORT=str(free_port()), SMSGW_SECURITY_HASH_KEY=TEST_KEY,
                    SMSGW_HTTP_PORT=str(free_port()), SMSGW_LOG_DIR=str(tmp_path / "log"),
                    SMSGW_LOG_FORMAT="json"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert process.stderr is not None
        if not redis_first:
            await asyncio.wait_for(_event_containing(process.stderr, "does not answer"), 30)
            server.start()
        warning = await asyncio.wait_for(_event_containing(process.stderr, "each second"), 60)
    finally:
        process.terminate()
        await process.wait()
        server.stop()
    assert warning["level"] == "warning" and "set appendfsync always" in warning["event"]


async def _event_containing(stream: asyncio.StreamReader, text: str) -> dict[str, str]:
    while line := await stream.readline():
        if line.startswith(b"{") and text in (event := json.loads(line))["event"]:
            return dict(event)
    raise AssertionError(f"no log event with {text!r}")


async def test_every_combination_of_the_settings_is_warned_of_iff_unsafe(
        tmp_path: Path) -> None:
    """The whole space of the three settings, set on one live server: a warning exactly
    when a power cut could take back an answer, and each names what to set."""
    server = RedisServer(free_port(), tmp_path, durable=True, fsync="always")
    server.start()
    admin = redis.Redis(port=server.port, decode_responses=True)
    store = Store(server_client(server.url), embedded=False)
    try:
        for appendonly, fsync, skip in itertools.product(
                ("yes", "no"), ("always", "everysec", "no"), ("yes", "no")):
            admin.config_set("appendfsync", fsync)
            admin.config_set("no-appendfsync-on-rewrite", skip)
            admin.config_set("appendonly", appendonly)
            while admin.info("persistence")["aof_rewrite_in_progress"]:
                await asyncio.sleep(0.05)
            gaps = await store.durability_gaps()
            safe = appendonly == "yes" and fsync == "always" and skip == "no"
            assert (gaps == []) == safe, (appendonly, fsync, skip, gaps)
            assert all("(set " in gap for gap in gaps)
    finally:
        await store.redis.aclose()
        admin.close()
        server.stop()
