"""Faults: a gateway killed with -9 mid-load and restarted (on a Redis server and on a
Redis Cluster); a storm of concurrent commands.

SMSGW_FAULT_SCALE=N multiplies the traffic of these tests (bench/faults runs the long
versions); each prints its figures (see them with pytest -s).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from smsgw import admin
from smsgw.app import build_app
from smsgw.core.clock import now
from smsgw.messages import Inbound
from smsgw.store import HISTORY_LENGTH, money_total
from smsgw.store.keys import subscriber_key
from smsgw.transport.smpp.fake_smsc import FakeSmsc
from tests.conftest import CLUSTER_PREFIX, TEST_KEY, add_subscribers, free_port, make_settings

RECIPIENT = "989351234567"
SCALE = max(1, int(os.environ.get("SMSGW_FAULT_SCALE", "1")))


@pytest.fixture(params=["redis", "cluster"])
def server_url(request: pytest.FixtureRequest) -> str:
    """A store that another process can share: a Redis server, or a Redis Cluster."""
    return str(request.getfixturevalue("cluster_url" if request.param == "cluster"
                                       else "redis_url"))


def spawn_gateway(redis_url: str, smsc_port: int, log_dir: Path,
                  lease_seconds: float = 1.0) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update(SMSGW_SMSC_PORT=str(smsc_port),
               SMSGW_OUTBOX_LEASE_SECONDS=str(lease_seconds),
               SMSGW_REDIS_URL=redis_url.removeprefix(CLUSTER_PREFIX),
               SMSGW_REDIS_CLUSTER=str(redis_url.startswith(CLUSTER_PREFIX)).lower(),
               SMSGW_SECURITY_HASH_KEY=TEST_KEY, SMSGW_HTTP_PORT=str(free_port()),
               SMSGW_LOG_DIR=str(log_dir), SMSGW_SMSC_RECONNECT_MAX_SECONDS="0.5")
    log_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "smsgw", "run"], env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=(log_dir / "stderr.log").open("wb"))


async def test_kill_9_mid_load_then_restart_applies_everything_exactly_once(
        server_url: str, tmp_path: Path) -> None:
    redis_url = server_url
    app = build_app(make_settings(redis_url))
    senders = [f"98936{n:07d}" for n in range(60 * SCALE)]
    await add_subscribers(app.store, (RECIPIENT, "prepaid", 0, 0),
                          *[(s, "prepaid", 1_000_000, 0) for s in senders])
    for sender in senders:
        await app.store.redis.hset(subscriber_key(sender), "pin",
                                   app.hasher.pin_digest(sender, "55555"))
    before = await app.store.money()
    # every MO a distinct text, so a redelivery can only ever be matched to itself
    texts = [(s, f"09351234567:{1000 + k}:55555") for s in senders for k in range(6)]
    expected = sum(1000 + k for _ in senders for k in range(6))
    async with FakeSmsc(redeliver_after=0.3, response_timeout=2.0) as smsc:
        first = spawn_gateway(redis_url, smsc.port, tmp_path / "one")
        try:
            await smsc.wait_bound(30)
            mos = [smsc.inject_mo(sender, "1112", text) for sender, text in texts]
            while sum(mo.answered.is_set() for mo in mos) < len(mos) // 3:
                await asyncio.sleep(0.005)
        finally:
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 10)
        answered_before_kill = sum(mo.answered.is_set() for mo in mos)
        assert answered_before_kill < len(mos)  # the kill did land mid-load
        second = spawn_gateway(redis_url, smsc.port, tmp_path / "two")
        try:
            await asyncio.wait_for(asyncio.gather(*(smsc.wait_answered(mo, 60) for mo in mos)),
                                   90)
            # every acknowledged command got its confirmations (the outbox: those the
            # first gateway had decided but not sent when it died, too)
            unconfirmed = await confirmations_missing(smsc, texts, 60)
        finally:
            second.send_signal(signal.SIGTERM)  # it drains through our fake SMSC: keep the
            await asyncio.to_thread(second.wait, 30)  # event loop free while it does
    balance = int((await app.store.subscriber(RECIPIENT))["balance"])
    redelivered = sum(mo.attempts > 1 for mo in mos)
    print(f"\nkill -9 ({'cluster' if app.store.cluster else 'redis'}): {len(mos)} transfers, "
          f"{answered_before_kill} answered before the kill, {redelivered} delivered again; "
          f"recipient {balance} of {expected} rials")
    assert balance == expected  # nothing lost, nothing applied twice
    assert unconfirmed == {}
    assert await app.store.money() == before
    assert await app.store.journal_senders() == []  # nothing left half-done
    if len(texts) < HISTORY_LENGTH:  # (the history keeps the latest 1,000 entries)
        history = await app.store.history(RECIPIENT)
        assert sum(entry["kind"] == "transfer_in" for entry in history) == len(texts)
    await app.close()


async def confirmations_missing(smsc: FakeSmsc, commands: list[tuple[str, str]],
                                timeout: float) -> dict[str, int]:
    """Who still lacks confirmations once `timeout` ran out (none: {}): each sender one
    per command, the recipient one per transfer."""
    wanted = Counter(sender for sender, _ in commands)
    wanted[RECIPIENT] = len(commands)
    deadline = time.monotonic() + timeout
    while True:
        got = Counter(mt.destination for mt in smsc.mt)
        missing = {who: count - got[who] for who, count in wanted.items() if got[who] < count}
        if not missing or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(0.1)


async def test_storm_10000_commands_1000_subscribers(redis_url: str) -> None:
    app = build_app(make_settings(redis_url))
    rng = random.Random(11)
    people = [f"98936{n:07d}" for n in range(1000)]
    await add_subscribers(app.store, *[
        (m, "postpaid" if n % 7 == 0 else "prepaid", rng.randrange(0, 60_000), 0)
        for n, m in enumerate(people)])
    for m in people:
        await app.store.redis.hset(subscriber_key(m), "pin", app.hasher.pin_digest(m, "55555"))
    before = money_total(await app.store.all_subscribers())
    busy = people[:20]  # a few senders get most of the traffic, in both directions
    commands = []
    for _ in range(10_000 * SCALE):
        a = rng.choice(busy) if rng.random() < 0.5 else rng.choice(people)
        b = rng.choice(busy) if rng.random() < 0.5 else rng.choice(people)
        pin = "55555" if rng.random() < 0.95 else "11111"
        amount = rng.choice([999, 1000, 5000, 10_000, 10_001])
        commands.append(Inbound(a, "1112", f"0{b[2:]}:{amount}:{pin}", now()))
    semaphore = asyncio.Semaphore(500)

    async def one(message: Inbound) -> None:
        async with semaphore:
            await app.router.handle(message)

    started = time.monotonic()
    await asyncio.gather(*(one(m) for m in commands))
    elapsed = time.monotonic() - started
    after = money_total(await app.store.all_subscribers())
    print(f"\nstorm: {len(commands)} commands from {len(people)} subscribers in "
          f"{elapsed:.1f} s ({len(commands) / elapsed:.0f}/s), money {before} -> {after}")
    assert after == before
    for m in people:
        shown = await admin.show(app.store, m, now(), app.settings.transfer)
        assert shown["sent_today"] <= 50_000 and shown["sent_this_month"] <= 100_000
        assert shown["balance"] >= 0
    await app.close()
