"""No money is destroyed by a script that fails half-way (issue 12, point 3).

Every money script checks everything before its first write, and every balance, bill,
amount and counter stays within MONEY_CEILING (10^15 rials). Shown on a real Redis, the
embedded store and a real Redis Cluster (journaled transfers): directly (a recipient near
2^63, or near the ceiling), and by hypothesis targets that drive extreme and random values
through every money script and compare every key of both subscribers before and after.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from smsgw.app import App, build_app
from smsgw.core.clock import parse_timestamp, period_of
from smsgw.core.money import MONEY_CEILING
from smsgw.messages import Inbound
from smsgw.services.transfer.store import (
    TRANSFER_CREDIT,
    TRANSFER_SETTLE,
    CreditArgs,
    CreditKeys,
    SettleArgs,
    SettleKeys,
)
from smsgw.store import SubscriberRow
from smsgw.store.keys import (
    credited_key,
    day_counter_key,
    history_key,
    journal_key,
    month_counter_key,
    reversed_key,
    subscriber_key,
)
from smsgw.store.script import Script
from tests.attacks import tried
from tests.conftest import add_subscribers, make_settings

ALI = "989361111111"  # sender, PIN 55555
SARA = "989351234567"  # recipient
NOON = parse_timestamp("2026-07-23T12:00:00+03:30")
FEE = 500
C = MONEY_CEILING
EXTREMES = [0, 1, C - 1, C, C + 1, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63,
            -1, -C, -C - 1, -(2**63)]
JUNK = ["", "abc", "1e5", "007", "-0", " 5", "1.5", "0x10", "inf", "nan"]

money_values = st.sampled_from(EXTREMES) | st.integers(-(2**64), 2**64) | st.integers(0, 50_000)
stored_values = money_values.map(str) | st.sampled_from(JUNK)
# mostly values a store holds, so that a fair share of calls gets through every check
likely_values = (st.integers(0, C).map(str) | st.integers(0, 10**7).map(str)
                 | st.sampled_from(["0", str(C - 10**6), str(C)]) | stored_values)
likely_amounts = st.integers(1, 10**6) | st.integers(1, C) | money_values


async def send(app: App, text: str, msg_id: str | None = None) -> list[str]:
    """A message from ALI; with an id, as the SMSC sends it (a redelivery is answered from
    its stored outcome)."""
    identity = app.hasher.message_identity("id", ALI, msg_id) if msg_id else None
    message = Inbound(ALI, "1112", text, NOON, msg_id=msg_id, identity=identity,
                      remember_seconds=3600 if msg_id else 0)
    return [reply.kind for reply in await app.router.handle(message)]


async def fields(app: App, msisdn: str) -> dict[str, str]:
    return await app.store.subscriber(msisdn)


@pytest.fixture
async def people(any_store_url: str) -> AsyncIterator[App]:
    app = build_app(make_settings(any_store_url))
    await add_subscribers(app.store, (ALI, "prepaid", 20_000, 0), (SARA, "prepaid", 0, 0))
    await app.store.redis.hset(subscriber_key(ALI), "pin", app.hasher.pin_digest(ALI, "55555"))
    yield app
    await app.close()


# -- direct tests: each fails on the code before the fix -------------------------------

@pytest.mark.parametrize("plan, field, value", [
    ("prepaid", "balance", 2**63 - 1000),  # HINCRBY overflowed after the debit was written
    ("prepaid", "balance", C - 1000),  # the credit would pass the ceiling
    ("postpaid", "bill", -(2**63) + 1000),
    ("postpaid", "bill", -C + 1000),
])
async def test_a_recipient_that_cannot_be_credited_costs_the_sender_nothing(
        people: App, plan: str, field: str, value: int) -> None:
    app = people
    await app.store.redis.hset(subscriber_key(SARA), mapping={"plan": plan, field: str(value)})
    sender_before, recipient_before = await fields(app, ALI), await fields(app, SARA)
    for _ in range(3):  # and again on every redelivery
        assert await send(app, "09351234567:2000:55555", msg_id="m1") == [
            "transfer.recipient_limit"]
        assert await fields(app, ALI) == sender_before
        assert await fields(app, SARA) == recipient_before
    assert await app.store.journal_entries(ALI) == {}


async def test_the_recipient_limit_reply_says_nothing_was_sent(people: App) -> None:
    app = people
    await app.store.redis.hset(subscriber_key(SARA), "balance", str(C))
    (reply,) = await app.router.handle(Inbound(ALI, "1112", "09351234567:2000:55555", NOON))
    assert reply.to == ALI and "۰۹۳۵۱۲۳۴۵۶۷" in reply.text and "انجام نشد" in reply.text


async def test_money_up_to_the_ceiling_is_exact_in_stores_and_replies(people: App) -> None:
    # Lua numbers are doubles and cjson writes 14 digits: 15- and 16-digit values stay exact
    app = people
    rich = C - 123_456_789  # 999,999,876,543,211: 15 significant digits
    await app.store.redis.hset(subscriber_key(ALI), "balance", str(rich))
    await app.store.redis.hset(subscriber_key(SARA), "balance", str(C - 2000 - 11))
    replies = await app.router.handle(Inbound(ALI, "1112", "09351234567:2000:55555", NOON))
    assert [r.kind for r in replies] == ["transfer.sent", "transfer.received_prepaid"]
    assert (await fields(app, ALI))["balance"] == str(rich - 2500)
    assert (await fields(app, SARA))["balance"] == str(C - 11)
    assert "۹۹۹٬۹۹۹٬۸۷۶٬۵۴۰٬۷۱۱" in replies[0].text  # the new balance, every digit
    assert (await app.store.history(ALI))[0]["balance"] == rich - 2500


@pytest.fixture(params=["cluster", "redis-single-slot"])
async def journaled(request: pytest.FixtureRequest) -> AsyncIterator[App]:
    from smsgw.store import Store

    if request.param == "cluster":
        app = build_app(make_settings(str(request.getfixturevalue("cluster_url"))))
    else:
        url = str(request.getfixturevalue("redis_url"))
        app = build_app(make_settings(url), store=Store.connect(url, single_slot=True))
    await add_subscribers(app.store, (ALI, "prepaid", 20_000, 0), (SARA, "prepaid", 0, 0))
    await app.store.redis.hset(subscriber_key(ALI), "pin", app.hasher.pin_digest(ALI, "55555"))
    yield app
    await app.close()


async def test_a_recipient_filled_between_debit_and_credit_gets_the_transfer_reversed(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:
    app = journaled
    before = await app.store.money()
    original = app.store.run

    async def fill_recipient_first(script: Script[Any, Any, Any], keys: Any, args: Any) -> Any:
        if script.name == "transfer_credit":  # a top-up lands between debit and credit
            await app.store.redis.hset(subscriber_key(SARA), "balance", str(C - 1000))
        return await original(script, keys, args)

    with monkeypatch.context() as patch:
        patch.setattr(app.store, "run", fill_recipient_first)
        assert await send(app, "09351234567:2000:55555", msg_id="m1") == [
            "transfer.recipient_limit"]
    ali = await fields(app, ALI)
    assert (ali["balance"], ali["fees_paid"]) == ("20000", "0")  # amount and fee back
    assert (await fields(app, SARA))["balance"] == str(C - 1000)
    assert await app.store.journal_entries(ALI) == {}
    assert await app.store.money() == before + C - 1000  # only the top-up added money
    assert (await app.store.history(ALI))[0]["kind"] == "transfer_reversed"
    # the SMSC delivers it again: the same refusal, nothing applied
    assert await send(app, "09351234567:2000:55555", msg_id="m1") == [
        "transfer.recipient_limit"]
    assert (await fields(app, ALI))["balance"] == "20000"


# -- hypothesis: every money script, extreme and random values, whole or nothing -------

async def snapshot(app: App) -> dict[str, Any]:
    """Every key of both subscribers (their hash tags), with its value."""
    found: dict[str, Any] = {}
    redis = app.store.redis
    for msisdn in (ALI, SARA):
        async for key in redis.scan_iter(match=f"s:{{{msisdn}}}*", count=1000):
            kind = await redis.type(key)
            if kind == "hash":
                found[key] = await redis.hgetall(key)
            elif kind == "string":
                found[key] = await redis.get(key)
            elif kind == "list":
                found[key] = await redis.lrange(key, 0, -1)
            elif kind == "zset":
                found[key] = await redis.zrange(key, 0, -1, withscores=True)
            else:
                found[key] = kind
    return found


async def wipe(app: App) -> None:
    for key in await snapshot(app):
        await app.store.redis.delete(key)


def number(value: str | None) -> int | None:
    """A stored value as Python reads it (None: not a decimal integer)."""
    if value is None:
        return 0
    try:
        return int(value) if value.strip() == value and value.lstrip("-").isdigit() else None
    except ValueError:
        return None


def money_of(state: dict[str, Any]) -> int | None:
    """Σ balances − Σ bills + Σ fees, plus the amounts in flight in the journal."""
    total = 0
    for msisdn in (ALI, SARA):
        hash_ = state.get(subscriber_key(msisdn), {})
        parts = [number(hash_.get(f)) for f in ("balance", "bill", "fees_paid")]
        if None in parts:
            return None
        balance, bill, fees = (int(p or 0) for p in parts)
        total += balance - bill + fees
    for txid, raw in state.get(journal_key(ALI), {}).items():
        if txid not in dict(state.get(credited_key(SARA), [])):
            total += int(json.loads(raw)["amount"])
    return total


@pytest.fixture
async def roomy(any_store_url: str) -> AsyncIterator[App]:
    """Settings that let any amount up to the ceiling through the rules."""
    app = build_app(make_settings(any_store_url, transfer={
        "min_amount": 1, "max_amount": C, "daily_cap": C, "monthly_cap": C, "fee": FEE}))
    yield app
    await app.close()


def counter_keys(app: App) -> tuple[str, str]:
    cfg = app.settings.transfer
    period = period_of(NOON, cfg.timezone, cfg.calendar)
    return day_counter_key(ALI, period.day), month_counter_key(ALI, period.month)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sender_balance=likely_values, fees_paid=likely_values, sent_today=likely_values,
       plan=st.sampled_from(["prepaid", "postpaid"]), recipient_balance=likely_values,
       recipient_bill=likely_values | likely_values.map(lambda v: f"-{v}".replace("--", "-")),
       amount=likely_amounts.map(abs))
async def test_a_transfer_applies_whole_or_changes_nothing(
        roomy: App, sender_balance: str, fees_paid: str, sent_today: str, plan: str,
        recipient_balance: str, recipient_bill: str, amount: int) -> None:
    tried("money: a transfer applies whole or changes nothing")
    app = roomy
    await wipe(app)
    redis = app.store.redis
    await redis.hset(subscriber_key(ALI), mapping={
        "plan": "prepaid", "balance": sender_balance, "bill": "0", "lang": "fa",
        "strikes": "0", "blocked": "0", "fees_paid": fees_paid,
        "pin": app.hasher.pin_digest(ALI, "55555")})
    await redis.hset(subscriber_key(SARA), mapping={
        "plan": plan, "balance": recipient_balance, "bill": recipient_bill, "lang": "fa",
        "strikes": "0", "blocked": "0", "fees_paid": "0"})
    day_key, month_key = counter_keys(app)
    await redis.set(day_key, sent_today)
    before = await snapshot(app)

    kinds = await send(app, f"09351234567:{amount}:55555")  # no exception reaches anyone
    after = await snapshot(app)
    event(kinds[0])
    if kinds[0] != "transfer.sent":
        # an amount beyond the ceiling is refused by the parser already (format.bad_amount)
        assert len(kinds) == 1 and kinds[0].startswith(("transfer.", "format.bad_amount"))
        assert after == before  # refused: not one key changed
        return
    assert kinds == ["transfer.sent", f"transfer.received_{plan}"]
    ali, sara = after[subscriber_key(ALI)], after[subscriber_key(SARA)]
    assert int(ali["balance"]) == int(sender_balance) - amount - FEE
    assert int(ali["fees_paid"]) == int(fees_paid) + FEE
    assert int(after[day_key]) == int(sent_today) + amount
    assert int(after[month_key]) == amount
    if plan == "prepaid":
        assert int(sara["balance"]) == int(recipient_balance) + amount
    else:
        assert int(sara["bill"]) == int(recipient_bill) - amount
    credited = sara["balance"] if plan == "prepaid" else sara["bill"]
    for value in (ali["balance"], ali["fees_paid"], credited):
        assert -C <= int(value) <= C
    assert money_of(after) == money_of(before)
    assert after[history_key(ALI)][0] and json.loads(after[history_key(ALI)][0])["amount"] == amount


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(script=st.sampled_from(["topup", "unblock", "credit", "reverse", "upsert"]),
       plan=st.sampled_from(["prepaid", "postpaid"]), balance=likely_values,
       bill=likely_values, fees_paid=likely_values, amount=likely_amounts,
       fee=likely_amounts, replace=st.booleans())
async def test_every_money_script_applies_whole_or_changes_nothing(
        roomy: App, script: str, plan: str, balance: str, bill: str, fees_paid: str,
        amount: int, fee: int, replace: bool) -> None:
    """Each script called as the services call it, on stored values that no door lets
    in any more (a legacy or hand-edited store): whole, or no key changes."""
    tried("money: every script applies whole or changes nothing")
    app = roomy
    store = app.store
    await wipe(app)
    await store.redis.hset(subscriber_key(ALI), mapping={
        "plan": plan, "balance": balance, "bill": bill, "lang": "fa", "strikes": "2",
        "blocked": "1", "fees_paid": fees_paid})
    day_key, month_key = counter_keys(app)
    txid = "t1"
    if script == "reverse":
        await store.redis.hset(journal_key(ALI), txid, json.dumps({
            "recipient": SARA, "amount": amount, "fee": fee, "ref": "R", "at": NOON.isoformat(),
            "day_key": day_key, "month_key": month_key}))
        await store.redis.set(day_key, str(max(amount, 0)))
    before = await snapshot(app)
    field = "balance" if plan == "prepaid" else "bill"
    sign = 1 if plan == "prepaid" else -1
    try:
        status = await call(app, script, plan, balance, bill, amount, fee, replace, txid)
    except ResponseError:  # a script that refuses its arguments, before any write
        status = "refused"
    after = await snapshot(app)
    event(f"{script}: {status}")
    if status in ("refused", "beyond_ceiling", "unreadable", "no_room", "stuck"):
        assert after == before
        return
    ali = after[subscriber_key(ALI)]
    if script in ("topup", "credit"):
        assert status in ("ok", "credited")
        assert int(ali[field]) == int(before[subscriber_key(ALI)][field]) + sign * amount
        assert -C <= int(ali[field]) <= C and 0 <= amount <= C
        assert script == "credit" or amount >= 1
    elif script == "reverse":
        assert status == "reversed"
        assert int(ali["balance"]) == int(balance or 0) + amount + fee
        assert int(ali["fees_paid"]) == int(fees_paid or 0) - fee
        assert after.get(journal_key(ALI)) is None and after[reversed_key(ALI, txid)]
        assert int(after[day_key]) == 0
    elif script == "upsert":
        assert status in ("added", "replaced", "updated")
        assert ali["plan"] == plan
        if status == "replaced":  # the row as loaded (call() reads junk as 0)
            assert (int(ali["balance"]), int(ali["bill"])) == (
                number(balance) or 0, number(bill) or 0)
    elif script == "unblock":
        assert ali["blocked"] == "0" and ali["strikes"] == "0"
    for name in ("balance", "bill", "fees_paid"):
        if name in ali and ali[name] != before[subscriber_key(ALI)].get(name):
            assert -4 * C <= int(ali[name]) <= 4 * C  # every value written is a number


async def call(app: App, script: str, plan: str, balance: str, bill: str, amount: int,
               fee: int, replace: bool, txid: str) -> str:
    store = app.store
    if script in ("topup", "unblock"):  # the script itself, without admin.care's checks
        return str((await store.care_action(ALI, script, NOON.isoformat(), amount))["status"])
    if script == "credit":
        answer = await store.run(
            TRANSFER_CREDIT, CreditKeys(subscriber_key(ALI), history_key(ALI), credited_key(ALI)),
            CreditArgs(txid, amount, SARA, "R", NOON.isoformat(), 3600, ""))
        return str(answer["status"])
    if script == "reverse":
        answer = await store.run(
            TRANSFER_SETTLE,
            SettleKeys(subscriber_key(ALI), journal_key(ALI), history_key(ALI), *counter_keys(app),
                       reversed_key(ALI, txid)),
            SettleArgs(txid, "reverse", NOON.isoformat(), 60, "recipient_limit"))
        return str(answer["status"])
    outcomes = await store.upsert_subscribers(
        [SubscriberRow(ALI, plan, number(balance) or 0, number(bill) or 0, "fa")],
        replace=replace, at=NOON.isoformat())
    return outcomes[0]
