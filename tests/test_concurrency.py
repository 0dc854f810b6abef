"""Simultaneous messages never overspend, never pass a cap, and conserve money."""

from __future__ import annotations

import asyncio
import random

from smsgw import admin
from smsgw.app import App
from smsgw.messages import Inbound
from smsgw.store import money_total
from smsgw.store.keys import subscriber_key
from tests.conftest import add_subscribers
from tests.test_transfer_rules import NOON


async def test_one_sender_many_simultaneous_transfers_respects_daily_cap(app: App) -> None:
    sender, recipients = "989331234567", [f"98935000{n:04d}" for n in range(20)]
    await add_subscribers(app.store, (sender, "prepaid", 1_000_000, 0),
                          *[(r, "prepaid", 0, 0) for r in recipients])
    before = money_total(await app.store.all_subscribers())
    messages = [Inbound(sender, "1112", f"0{recipients[n % 20][2:]}:10000:55555", NOON)
                for n in range(60)]
    results = await asyncio.gather(*(app.router.handle(m) for m in messages))
    sent = sum(1 for replies in results if replies[0].kind.startswith("transfer.sent"))
    capped = sum(1 for replies in results if replies[0].kind == "transfer.daily_cap")
    assert (sent, capped) == (5, 55)
    shown = await admin.show(app.store, sender, NOON, app.settings.transfer)
    assert shown["sent_today"] == 50_000 and shown["balance"] == 1_000_000 - 5 * 10_500
    assert money_total(await app.store.all_subscribers()) == before


async def test_one_sender_many_simultaneous_transfers_never_overspends(app: App) -> None:
    sender, recipient = "989331234567", "989351234567"
    await add_subscribers(app.store, (sender, "prepaid", 35_000, 0), (recipient, "prepaid", 0, 0))
    messages = [Inbound(sender, "1112", "09351234567:10000:55555", NOON) for _ in range(40)]
    results = await asyncio.gather(*(app.router.handle(m) for m in messages))
    kinds = [replies[0].kind for replies in results]
    assert sum(k.startswith("transfer.sent") for k in kinds) == 3  # 3 x 10,500 <= 35,000
    assert kinds.count("transfer.insufficient") == 37
    assert (await app.store.subscriber(sender))["balance"] == str(35_000 - 3 * 10_500)
    assert (await app.store.subscriber(recipient))["balance"] == "30000"


async def test_storm_between_pairs_conserves_money_and_caps(app: App) -> None:
    rng = random.Random(7)
    people = [f"98936{n:07d}" for n in range(40)]
    plans = ["postpaid" if n % 5 == 0 else "prepaid" for n in range(40)]
    await add_subscribers(app.store, *[
        (m, plan, rng.randrange(0, 80_000) if plan == "prepaid" else 0,
         rng.randrange(0, 50_000) if plan == "postpaid" else 0)
        for m, plan in zip(people, plans, strict=True)])
    for m in people:  # every sender's PIN is 55555
        await app.store.redis.hset(subscriber_key(m), "pin", app.hasher.pin_digest(m, "55555"))
    before = money_total(await app.store.all_subscribers())
    texts = []
    for _ in range(600):
        a, b = rng.sample(people, 2)
        pin = "55555" if rng.random() < 0.9 else "11111"
        texts.append(Inbound(a, "1112", f"0{b[2:]}:{rng.choice([1000, 5000, 10000])}:{pin}", NOON))
    await asyncio.gather(*(app.router.handle(m) for m in texts))
    everyone = await app.store.all_subscribers()
    assert money_total(everyone) == before
    for m in people:
        shown = await admin.show(app.store, m, NOON, app.settings.transfer)
        assert shown["sent_today"] <= 50_000
        assert shown["balance"] >= 0
