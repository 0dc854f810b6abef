"""No confirmation lost (issue 14): the SMSC stalls (takes submit_sm, never answers), the
gateway acknowledges the transfers all the same (their replies are in the outbox), then
it dies; a gateway started against a healthy SMSC sends every confirmation to both
parties, once, and nothing is applied twice. The same after a link drop, with Redis
restarted while the successor starts sending, and with two gateways of which one dies.
Real `smsgw run` processes, the fake SMSC, a Redis server or a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from smsgw.app import App, build_app
from smsgw.store.keys import subscriber_key
from smsgw.store.outbox import OutboxStore
from smsgw.transport.smpp.fake_smsc import FakeSmsc, InjectedMo
from tests.conftest import RedisServer, add_subscribers, make_settings
from tests.test_faults import RECIPIENT, confirmations_missing, server_url, spawn_gateway
from tests.test_faults_under_load import durable_server

__all__ = ["durable_server", "server_url"]  # the fixtures, shared with test_faults*
TRANSFERS = 30


async def subscribers(app: App) -> list[tuple[str, str]]:
    """TRANSFERS senders with a PIN, each to send one transfer of its own amount."""
    senders = [f"98936{n:07d}" for n in range(TRANSFERS)]
    await add_subscribers(app.store, (RECIPIENT, "prepaid", 0, 0),
                          *[(s, "prepaid", 100_000, 0) for s in senders])
    for sender in senders:
        await app.store.redis.hset(subscriber_key(sender), "pin",
                                   app.hasher.pin_digest(sender, "55555"))
    return [(s, f"09351234567:{1000 + n}:55555") for n, s in enumerate(senders)]


async def acknowledged_while_stalled(smsc: FakeSmsc, commands: list[tuple[str, str]],
                                     bound_sessions: int = 1) -> list[InjectedMo]:
    """Every transfer answered ESME_ROK while the SMSC takes no reply."""
    smsc.faults.stall_submits = True
    deadline = time.monotonic() + 30
    while smsc.bound_sessions < bound_sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    mos = [smsc.inject_mo(sender, "1112", text) for sender, text in commands]
    await asyncio.wait_for(asyncio.gather(*(smsc.wait_answered(mo, 30) for mo in mos)), 40)
    while smsc.stats["stalled"] == 0:
        await asyncio.sleep(0.05)
    assert smsc.mt == []  # not one confirmation reached anybody yet
    return mos


async def kill(gateway: subprocess.Popen[bytes]) -> None:
    gateway.send_signal(signal.SIGKILL)
    await asyncio.to_thread(gateway.wait, 10)


async def stop(gateway: subprocess.Popen[bytes]) -> None:
    gateway.send_signal(signal.SIGTERM)
    await asyncio.to_thread(gateway.wait, 30)


async def check_everything_once(app: App, smsc: FakeSmsc, commands: list[tuple[str, str]],
                                before: int) -> None:
    missing = await confirmations_missing(smsc, commands, 60)
    assert missing == {}
    got = Counter(mt.destination for mt in smsc.mt)
    assert got[RECIPIENT] == len(commands)  # once each: nothing was accepted before
    assert all(got[sender] == 1 for sender, _ in commands)
    assert await balance(app, RECIPIENT) == sum(1000 + n for n in range(len(commands)))
    assert await app.store.money() == before
    rows = OutboxStore(app.store)
    deadline = time.monotonic() + 10
    while (await rows.census())[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert (await rows.census())[0] == 0  # and the outbox is empty


async def balance(app: App, msisdn: str) -> int:
    return int((await app.store.subscriber(msisdn))["balance"])


async def first_dies_successor_sends(
        url: str, tmp_path: Path, before_kill: Callable[[FakeSmsc], Awaitable[None]] | None = None,
        successor_started: Callable[[FakeSmsc], Awaitable[None]] | None = None) -> None:
    """A gateway acknowledges every transfer while the SMSC stalls, (something happens,)
    is killed; its successor, against a healthy SMSC, sends every confirmation once."""
    app = build_app(make_settings(url))
    commands = await subscribers(app)
    before = await app.store.money()
    async with FakeSmsc(redeliver_after=0.3) as smsc:
        first = spawn_gateway(url, smsc.port, tmp_path / "one")
        try:
            await smsc.wait_bound(30)
            await acknowledged_while_stalled(smsc, commands)
            # one server: one row per transfer, both confirmations in it (held by the
            # transfer's script); a cluster: a row per confirmation
            rows_per_transfer = 2 if app.store.single_slot else 1
            assert (await OutboxStore(app.store).census())[0] == rows_per_transfer * len(commands)
            if before_kill is not None:
                await before_kill(smsc)
        finally:
            await kill(first)
        smsc.faults.stall_submits = False
        second = spawn_gateway(url, smsc.port, tmp_path / "two")
        try:
            if successor_started is not None:
                await smsc.wait_bound(30)
                await successor_started(smsc)
            await check_everything_once(app, smsc, commands, before)
        finally:
            await stop(second)
    await app.close()


async def test_stalled_smsc_kill_9_restart_sends_every_confirmation_once(
        server_url: str, tmp_path: Path) -> None:
    await first_dies_successor_sends(server_url, tmp_path)


async def test_stalled_smsc_link_drop_then_kill_9(redis_url: str, tmp_path: Path) -> None:
    async def drop_link(smsc: FakeSmsc) -> None:
        stalled = smsc.stats["stalled"]
        smsc.drop_links()  # it binds again and sends again, into the stall
        while smsc.stats["stalled"] <= stalled:
            await asyncio.sleep(0.05)

    await first_dies_successor_sends(redis_url, tmp_path, before_kill=drop_link)


async def test_stalled_smsc_kill_9_and_redis_restarted_while_the_successor_sends(
        durable_server: RedisServer, tmp_path: Path) -> None:
    async def restart_redis(_: FakeSmsc) -> None:
        await asyncio.to_thread(durable_server.stop)
        await asyncio.sleep(1.5)  # past the first one's lease: the takeover waits
        await asyncio.to_thread(durable_server.start)

    await first_dies_successor_sends(durable_server.url, tmp_path,
                                     successor_started=restart_redis)


async def test_two_gateways_one_killed_the_other_sends_its_replies(
        server_url: str, tmp_path: Path) -> None:
    app = build_app(make_settings(server_url))
    commands = await subscribers(app)
    before = await app.store.money()
    async with FakeSmsc(redeliver_after=0.3) as smsc:
        doomed = spawn_gateway(server_url, smsc.port, tmp_path / "one")
        survivor = spawn_gateway(server_url, smsc.port, tmp_path / "two")
        try:
            await smsc.wait_bound(30)
            await acknowledged_while_stalled(smsc, commands, bound_sessions=2)
            owners = Counter(w.owner for w in await OutboxStore(app.store).waiting())
            assert len(owners) == 2  # both gateways took a share of the traffic
            await kill(doomed)
            smsc.faults.stall_submits = False
            smsc.drop_links()  # the survivor sends its own stalled replies again at once
            await check_everything_once(app, smsc, commands, before)
        finally:
            if doomed.poll() is None:
                await kill(doomed)
            await stop(survivor)
    await app.close()
