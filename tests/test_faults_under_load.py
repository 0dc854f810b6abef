"""Faults while traffic flows: Redis stopped and started again, and the SMSC link
dropped, refused, throttled and slow. Each test prints its figures (pytest -s);
SMSGW_FAULT_SCALE=N multiplies the traffic (bench/faults runs the long versions)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from smsgw.store.keys import subscriber_key
from smsgw.transport.smpp.fake_smsc import InjectedMo
from smsgw.transport.smpp.pdu import ESME_ROK, ESME_RX_T_APPN
from tests.conftest import RedisServer, add_subscribers, free_port
from tests.test_smpp_gateway import Rig, start_rig, stop_rig

SCALE = max(1, int(os.environ.get("SMSGW_FAULT_SCALE", "1")))
RECIPIENT = "989351234567"


@pytest.fixture
def durable_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="smsgw-aof-") as workdir:
        server = RedisServer(free_port(), Path(workdir), durable=True)
        server.start()
        yield server
        server.stop()


async def load_senders(rig: Rig, count: int) -> list[str]:
    senders = [f"98936{n:07d}" for n in range(count)]
    await add_subscribers(rig.app.store, *[(s, "prepaid", 1_000_000, 0) for s in senders])
    for sender in senders:
        await rig.app.store.redis.hset(subscriber_key(sender), "pin",
                                       rig.app.hasher.pin_digest(sender, "55555"))
    return senders


async def inject_over(rig: Rig, commands: list[tuple[str, str]],
                      seconds: float) -> list[InjectedMo]:
    """Open-loop injection, spread evenly over `seconds`."""
    mos = []
    start = time.monotonic()
    for index, (sender, text) in enumerate(commands):
        delay = start + seconds * index / len(commands) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        mos.append(rig.smsc.inject_mo(sender, "1112", text))
    return mos


async def test_redis_stopped_and_started_during_load(durable_server: RedisServer,
                                                     tmp_path: Path) -> None:
    rig = await start_rig(durable_server.url, tmp_path)
    try:
        senders = await load_senders(rig, 40 * SCALE)
        before = await rig.app.store.money()
        commands = [(s, f"09351234567:{1000 + k}:55555") for k in range(5) for s in senders]
        expected = sum(1000 + k for k in range(5)) * len(senders)
        injecting = asyncio.create_task(inject_over(rig, commands, 2.0 * SCALE))
        await asyncio.sleep(0.6 * SCALE)
        await asyncio.to_thread(durable_server.stop)
        outage_started = time.monotonic()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(durable_server.start)
        outage = time.monotonic() - outage_started
        mos = await injecting
        await asyncio.wait_for(asyncio.gather(*(rig.smsc.wait_answered(m, 60) for m in mos)), 90)
        recovered_in = time.monotonic() - outage_started - outage
        temporary = sum(m.statuses.count(ESME_RX_T_APPN) for m in mos)
        print(f"\nredis restart under load: {len(mos)} transfers, outage {outage:.1f} s, "
              f"{temporary} temporary errors, all answered {recovered_in:.1f} s after restart")
        assert temporary > 0  # the outage did hit traffic
        assert all(m.statuses[-1] == ESME_ROK for m in mos)
        assert await rig.balance(RECIPIENT) == expected  # nothing lost, nothing doubled
        assert await rig.app.store.money() == before
    finally:
        await stop_rig(rig)


async def test_link_dropped_refused_throttled_and_slow_during_load(redis_url: str,
                                                                   tmp_path: Path) -> None:
    rate = 300.0
    rig = await start_rig(redis_url, tmp_path, submit_rate=rate)
    try:
        senders = await load_senders(rig, 150 * SCALE)
        commands = [(s, "09351234567:1000:55555") for s in senders]
        injecting = asyncio.create_task(inject_over(rig, commands, 3.0 * SCALE))
        faults = rig.smsc.faults
        for _ in range(SCALE):
            await asyncio.sleep(0.5)
            faults.throttle_next = 15
            await asyncio.sleep(0.3)
            faults.response_delay = 0.2
            await asyncio.sleep(0.4)
            faults.response_delay = 0.0
            faults.refuse_binds = 2
            rig.smsc.drop_links()
            await asyncio.sleep(0.8)
        mos = await injecting
        await asyncio.wait_for(asyncio.gather(*(rig.smsc.wait_answered(m, 60) for m in mos)), 90)
        await asyncio.wait_for(rig.gateway.settle(), 60)  # every reply accepted by the SMSC
        deadline = time.monotonic() + 30
        while (sum(mt.destination == RECIPIENT for mt in rig.smsc.mt) < len(mos)
               and time.monotonic() < deadline):
            await asyncio.sleep(0.1)
        to = Counter(mt.destination for mt in rig.smsc.mt)
        stats = rig.smsc.stats
        busiest = busiest_second(rig)
        print(f"\nlink faults under load: {len(mos)} transfers, {stats['binds']} binds "
              f"({stats['binds_refused']} refused), {stats['throttled']} throttled, "
              f"{sum(to.values())} replies received ({sum(to.values()) - 2 * len(mos)} sent "
              f"again after a drop), busiest second {busiest} submit_sm (limit {rate:.0f}/s "
              f"+ a burst of a tenth)")
        assert stats["binds_refused"] >= 2 * SCALE and stats["throttled"] >= 15 * SCALE
        assert all(m.statuses[-1] == ESME_ROK for m in mos)
        assert await rig.balance(RECIPIENT) == 1000 * len(mos)  # applied once each
        # no reply lost: every sender's confirmation and every recipient's notice arrived
        assert all(to[s] >= 1 for s in senders) and to[RECIPIENT] >= len(mos)
        assert busiest <= rate * 1.15
    finally:
        await stop_rig(rig)


def busiest_second(rig: Rig) -> int:
    """The most submit_sm parts the SMSC took in any one-second window."""
    times = sorted(mt.received_at for mt in rig.smsc.mt for _ in range(mt.parts))
    most, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most
