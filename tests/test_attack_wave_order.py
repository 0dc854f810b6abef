"""Generated attack on the replies submitted after their deliver_sm answers
(transport/gateway.py `_send_after_answers`): a wave of transfers, and a link drop or a
stop fired exactly in the loop turn between a wave's answers and its submits (or at a
generated delay). README "Replies that must not be lost": a transfer answered ESME_ROK
is applied once, its replies reach the SMSC (a successor sends what a stopped gateway
left), and a healthy link sends each reply once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from smsgw.app import build_app
from smsgw.core.text import national_form
from smsgw.store.keys import subscriber_key
from smsgw.transport.gateway import Gateway
from smsgw.transport.msglog import MessageLog
from smsgw.transport.smpp.client import SmppClient
from smsgw.transport.smpp.fake_smsc import FakeSmsc
from tests.attacks import tried
from tests.conftest import add_subscribers, make_settings

PIN = "55555"
START_BALANCE = 100_000
_numbers = itertools.count(5_000_000)  # clear of the other tests' subscribers

waves = st.lists(st.integers(min_value=1000, max_value=10_000), min_size=1, max_size=30)
disruptions = st.sampled_from(["none", "drop", "stop", "drop_then_stop"])
# which loop turn of submits the disruption fires in (0: after a delay instead, in ms); a
# wave that arrives in one read is submitted in one turn, so the first is the likeliest
turns = st.sampled_from([0, 1, 1, 2])
delays_ms = st.sampled_from([0.0, 0.5, 2.0, 8.0])


def numbers(count: int) -> list[str]:
    return [f"98935{next(_numbers):07d}" for _ in range(count)]


class Wave:
    """One example: its own subscribers on the test's Redis, its own fake SMSC and
    gateway; a successor gateway where the first was stopped."""

    def __init__(self, redis_url: str, log_dir: Path, amounts: list[int]) -> None:
        self.amounts = amounts
        self.senders = numbers(len(amounts))
        self.recipients = numbers(len(amounts))
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.gateways: list[tuple[Gateway, asyncio.Task[None]]] = []

    async def start(self) -> None:
        self.smsc = await FakeSmsc(redeliver_after=0.2).start()
        self.app = build_app(make_settings(self.redis_url, smsc={
            "port": self.smsc.port, "reconnect_max_seconds": 0.2,
            "enquire_link_seconds": 5.0}, outbox={"lease_seconds": 0.5}))
        await add_subscribers(self.app.store,
                              *[(s, "prepaid", START_BALANCE, 0) for s in self.senders],
                              *[(r, "prepaid", 0, 0) for r in self.recipients])
        for sender in self.senders:
            await self.app.store.redis.hset(subscriber_key(sender), "pin",
                                            self.app.hasher.pin_digest(sender, PIN))
        await self.start_gateway()

    async def start_gateway(self) -> Gateway:
        gateway = Gateway(self.app, SmppClient.from_settings(self.app.settings),
                          MessageLog(str(self.log_dir), 10_000_000, 2))
        self.gateways.append((gateway, asyncio.create_task(gateway.run())))
        await gateway.client.wait_bound(10)
        return gateway

    async def close(self) -> None:
        for gateway, task in self.gateways:
            if not task.done():
                await gateway.stop(drain_timeout=5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        await self.smsc.stop()
        await self.app.close()

    def inject(self) -> list[Any]:
        return [self.smsc.inject_mo(sender, "1112", f"{national_form(recipient)}:{amount}:{PIN}")
                for sender, recipient, amount in zip(self.senders, self.recipients,
                                                     self.amounts, strict=True)]

    async def balance(self, msisdn: str) -> int:
        return int((await self.app.store.subscriber(msisdn))["balance"])

    def texts_to(self, msisdn: str) -> list[str]:
        return [mt.text for mt in self.smsc.mt if mt.destination == msisdn]


def fire_in_submit_turn(gateway: Gateway, turn: int, disrupt: Any) -> None:
    """Call `disrupt` in the `turn`-th loop turn that submits replies, after that turn's
    deliver_sm answers were written and before its submit_sm are."""
    original = gateway.client.write_queued_now
    seen = 0

    def hooked() -> None:
        nonlocal seen
        original()
        seen += 1
        if seen == turn:
            disrupt()

    gateway.client.write_queued_now = hooked  # type: ignore[method-assign]


async def attack(wave: Wave, disruption: str, turn: int, delay_ms: float) -> None:
    await wave.start()
    try:
        gateway = wave.gateways[0][0]
        stopping: list[asyncio.Task[None]] = []
        fired = False

        def disrupt() -> None:  # once: the hooked turn may still come after the fallback
            nonlocal fired
            if fired:
                return
            fired = True
            if disruption in ("drop", "drop_then_stop"):
                wave.smsc.drop_links()
            if disruption in ("stop", "drop_then_stop"):
                stopping.append(asyncio.ensure_future(gateway.stop(drain_timeout=3)))

        if disruption != "none" and turn:
            fire_in_submit_turn(gateway, turn, disrupt)
        mos = wave.inject()
        if disruption != "none" and not turn:
            await asyncio.sleep(delay_ms / 1000)
            disrupt()
        if disruption in ("stop", "drop_then_stop"):
            while not stopping:  # the hooked turn may come only once messages arrive
                await asyncio.sleep(0.005)
                if all(mo.answered.is_set() for mo in mos):
                    disrupt()  # the wave went by in fewer turns: stop now
            await stopping[0]
            await asyncio.wait_for(wave.gateways[0][1], 10)
            successor = await wave.start_gateway()  # sends what the first left
        else:
            successor = gateway
        for mo in mos:
            await wave.smsc.wait_answered(mo, timeout=20)
        await check(wave, successor, healthy=disruption == "none")
    finally:
        await wave.close()


async def check(wave: Wave, gateway: Gateway, healthy: bool) -> None:
    fee = wave.app.settings.transfer.fee
    expected = len(wave.amounts) * 2  # the sender's confirmation, the recipient's notice
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        await gateway.settle()
        got = sum(bool(wave.texts_to(s)) for s in wave.senders + wave.recipients)
        if got == expected or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    for sender, recipient, amount in zip(wave.senders, wave.recipients, wave.amounts,
                                         strict=True):
        assert await wave.balance(sender) == START_BALANCE - amount - fee, wave.texts_to(sender)
        assert await wave.balance(recipient) == amount
        assert wave.texts_to(sender), "a sender's confirmation was lost"
        assert wave.texts_to(recipient), "a recipient's notice was lost"
    if healthy:  # a healthy link sends each reply once
        per_destination = Counter(mt.destination for mt in wave.smsc.mt)
        assert all(per_destination[each] == 1 for each in wave.senders + wave.recipients)


async def test_a_wave_cut_between_its_answers_and_its_submits_loses_nothing(
        redis_url: str, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    examples = itertools.count()

    # no shrinking: an example takes seconds, and the one that fails is reported as is
    @settings(max_examples=12, deadline=None, database=None,
              phases=(Phase.explicit, Phase.generate))
    @given(amounts=waves, disruption=disruptions, turn=turns, delay_ms=delays_ms)
    def each(amounts: list[int], disruption: str, turn: int, delay_ms: float) -> None:
        tried("a wave cut between its answers and its submits: applied once, nothing lost")
        wave = Wave(redis_url, tmp_path / f"example-{next(examples)}", amounts)
        asyncio.run_coroutine_threadsafe(attack(wave, disruption, turn, delay_ms),
                                         loop).result(90)

    await asyncio.to_thread(each)
