"""The outside attack on "held with the command" (transport/outbox.py): a transfer's or
PIN change's replies written by its own script, rendered again by a successor.

Each test is a promise of README "Replies that must not be lost" attacked: the ones that
broke are named `test_break_*`; the rest are hostile cases that held, kept. One server
only (a cluster holds no replies with the command): the `server` fixture is a real
redis-server and the embedded store.

Fixed on the attack branch (these pass there): damaged/unrenderable rows, wrong-type
outbox keys (worker death; the half-applied repeat), the again=1 claim racing a write.
Fixed since (the tests pass): two identical transfers on one session share one row (older
than the change), a successor renders with its own config, a reused message id with
another text confirms to the other text's recipient or names its sums.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.app import App, build_app
from smsgw.core import masking
from smsgw.core.clock import now
from smsgw.messages import Inbound, Outbound
from smsgw.store import StoreUnavailable
from smsgw.store.keys import history_key, outbox_keys, outbox_shard, subscriber_key
from smsgw.store.outbox import Waiting
from smsgw.transport.outbox import Held, Outbox, listing
from smsgw.transport.redelivery import Redeliveries
from smsgw.transport.smpp.client import WireMessage
from smsgw.transport.smpp.fake_smsc import FakeSmsc
from smsgw.workers.outbox import OutboxWorker
from tests.attacks import tried
from tests.conftest import add_subscribers, make_settings
from tests.test_faults import server_url, spawn_gateway
from tests.test_outbox import done
from tests.test_outbox_faults import acknowledged_while_stalled, kill, stop

__all__ = ["server_url"]  # the fixture, shared with test_faults

SENDER, RECIPIENT, OTHER = "989121110000", "989351234567", "989361112222"
PIN = "55555"
TRANSFER = "09351234567:2500:55555"



@pytest.fixture
async def server(store_url: str) -> AsyncIterator[App]:
    """An app on one server (real Redis, or the embedded store): replies held by scripts."""
    application = build_app(make_settings(store_url))
    yield application
    await application.close()


async def funded(app: App, balance: int = 1_000_000, pin: str | None = PIN) -> None:
    await add_subscribers(app.store, (SENDER, "prepaid", balance, 0),
                          (RECIPIENT, "prepaid", 0, 0), (OTHER, "prepaid", 0, 0))
    if pin is not None:
        await app.store.redis.hset(subscriber_key(SENDER), "pin",
                                   app.hasher.pin_digest(SENDER, pin))


def outbox_of(app: App) -> Outbox:
    return Outbox(app.store, app.hasher, app.settings, render=app.router.replies_for)


def wire(text: str, sender: str = SENDER, smsc_id: str | None = None) -> WireMessage:
    return WireMessage(sender, "1112", text, smsc_id, None)


async def routed(app: App, outbox: Outbox, memory: Redeliveries, text: str, session: str,
                 smsc_id: str | None = None, sender: str = SENDER, at: datetime | None = None
                 ) -> tuple[Inbound, list[Outbound], list[Held]]:
    """One wire message as Gateway._process routes it: its Inbound made by the
    redelivery memory, its row prepared, its replies decided and held."""
    slot = outbox.slot(sender)
    inbound = memory.inbound(wire(text, sender, smsc_id), sender, text, "", session,
                             at or now(), hold=slot)
    outbox.prepare(slot, inbound, masking.inbound_text(inbound, app.router.log_view(inbound),
                                                       app.hasher))
    try:
        replies = await app.router.handle(inbound)
        held = await outbox.hold(inbound, replies)
    except StoreUnavailable:
        memory.remember_uncertain(inbound, "store_failed")
        raise
    finally:  # as Gateway._route does (before that fix, nothing to do)
        getattr(outbox, "slot_done", lambda _: None)(slot)
    return inbound, replies, held


def memory_of(app: App) -> Redeliveries:
    return Redeliveries(app.store, app.hasher, 600, 5.0)


async def successor_sends(app: App, first: Outbox) -> list[Held]:
    """`first` dies (its lease ends); a successor's worker takes over and sends."""
    await first.end_lease()
    sent: list[Held] = []
    await OutboxWorker(outbox_of(app), sent.extend).once()
    return sent


async def balance(app: App, msisdn: str) -> int:
    return int((await app.store.subscriber(msisdn))["balance"])


# -- 5. hostile stored data ------------------------------------------------------------

async def _corrupt_held_row(app: App, outbox: Outbox, outcome: Any) -> str:
    """A held row whose outcome is `outcome` (a row of another version, or tampered)."""
    _, _, (held, *_) = await routed(app, outbox, memory_of(app), TRANSFER, "s1")
    entries = outbox_keys(held.shard)[0]
    row = orjson.loads(str(await app.store.redis.hget(entries, held.reply_id)))
    row["outcome"] = outcome
    await app.store.redis.hset(entries, held.reply_id, orjson.dumps(row).decode())
    return held.reply_id


async def test_break_a_held_row_its_service_cannot_render_kills_the_outbox_worker(
        server: App) -> None:
    """A held row whose outcome lacks a field (written by another version, or
    tampered): `restored` raises KeyError, not ValueError; the worker's `_restored`
    catches ValueError only, `run` StoreUnavailable only: the worker task dies. No lease
    renewal, no takeover, every later reply of this gateway fenced for ever. And the
    other rows of that shard, claimed in the same call, are stranded (owned by a live
    gateway, in nobody's hand)."""
    app = server
    await funded(app)
    first = outbox_of(app)
    await first.renew()
    await _corrupt_held_row(app, first, {"status": "ok"})
    # a good row of the same dead gateway, in the same shard (the same sender)
    _, good, _ = await routed(app, first, memory_of(app), "PIN:55555:12345:12345", "s1")
    sent = await successor_sends(app, first)  # raised KeyError: 'lang'
    assert [h.reply.text for h in sent] == [r.text for r in good]


@pytest.mark.parametrize("outcome", [None, [], "ok", {"status": "no_such_status"},
                                     {"status": "ok", "lang": "fa"},
                                     {"status": "insufficient", "balance": "lots"}])
async def test_break_any_unrenderable_held_row_is_a_clear_answer_not_a_crash(
        server: App, outcome: Any) -> None:
    """Whatever the outcome in a held row: `restored` gives replies or a ValueError (the
    worker logs it and goes on; `admin outbox` lists the message it answers)."""
    app = server
    await funded(app)
    first = outbox_of(app)
    await _corrupt_held_row(app, first, outcome)
    (waiting,) = await first.rows.waiting()
    with contextlib.suppress(ValueError):
        first.restored(waiting)
    rows = await listing(app.store, app.hasher, app.settings, render=app.router.replies_for)
    assert rows and all(PIN not in row["text"] for row in rows)


async def test_break_a_key_of_the_wrong_type_at_an_outbox_shard_kills_every_worker(
        server: App) -> None:
    """`ob:{n}:o` (or `:t`) holding a string: the claim script (HGETALL) and the census
    (ZCARD) answer WRONGTYPE, a ResponseError: not StoreUnavailable, so
    OutboxWorker.run dies, in every gateway (each claims every shard). The other 15
    shards' replies are never taken over, and the gateway's own lease is never renewed."""
    app = server
    await funded(app)
    first = outbox_of(app)
    _, decided, _ = await routed(app, first, memory_of(app), TRANSFER, "s1")
    broken = (outbox_shard(SENDER) + 1) % 16
    await app.store.redis.set(outbox_keys(broken)[1], "junk")
    sent = await successor_sends(app, first)  # raised ResponseError (WRONGTYPE)
    assert sorted(h.reply.text for h in sent) == sorted(r.text for r in decided)


async def test_break_the_outbox_worker_dies_on_any_error_but_store_unavailable(
        server: App) -> None:
    """The same through `run`: one wrong-type key, and the worker task is over."""
    app = server
    await app.store.redis.set(outbox_keys(3)[2], "junk")
    worker = OutboxWorker(outbox_of(app), lambda held: None)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.5)
    alive = not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert alive, "the outbox worker stopped: no lease renewal, no takeover"


async def test_break_a_wrong_type_outbox_key_makes_a_redelivery_apply_the_transfer_twice(
        server: App) -> None:
    """A wire message without an id, answered ESME_ROK on session s1; the link drops
    before that answer was safe, so its redelivery candidate stays. The SMSC delivers it
    again on s2 while the sender's outbox shard holds a key of another type:
    already_answered() claims the candidate (HDEL) and only then hold() fails with
    WRONGTYPE; Redis keeps the HDEL. Once the key is cleaned, the SMSC's next delivery
    finds no candidate: the transfer is applied a second time."""
    app = server
    await funded(app)
    outbox = outbox_of(app)
    await routed(app, outbox, memory_of(app), TRANSFER, "s1")
    assert await balance(app, RECIPIENT) == 2500
    entries = outbox_keys(outbox_shard(SENDER))[0]
    saved: Any = await app.store.redis.hgetall(entries)
    await app.store.redis.delete(entries)
    await app.store.redis.set(entries, "not a hash")
    later = memory_of(app)  # the gateway's memory after the link drop: a new session
    with pytest.raises(Exception, match="WRONGTYPE"):  # answered ESME_RX_T_APPN
        await routed(app, outbox, later, TRANSFER, "s2")
    await app.store.redis.delete(entries)  # care cleans the key up
    if saved:
        await app.store.redis.hset(entries, mapping=saved)
    await routed(app, outbox, later, TRANSFER, "s2")  # the SMSC delivers it again
    assert await balance(app, RECIPIENT) == 2500, "one message, applied twice"


# -- 1. nothing lost -------------------------------------------------------------------

async def test_break_two_identical_transfers_on_one_session_share_a_row_one_is_lost(
        server: App) -> None:
    """A subscriber sends the same transfer twice (no SMSC id): on one healthy session
    both are applied (redelivery.py: a deliberate repeat), both acknowledged. Their
    rows had one id (the origin is the sender and the text's digest), so the second
    script overwrote the first's outcome: after a kill -9 the successor rendered only
    the second transfer's confirmations. Now each attempt's row is its own."""
    app = server
    await funded(app)
    outbox = outbox_of(app)
    memory = memory_of(app)
    _, one, _ = await routed(app, outbox, memory, TRANSFER, "s1")
    _, two, _ = await routed(app, outbox, memory, TRANSFER, "s1")
    assert await balance(app, RECIPIENT) == 5000  # two transfers, two references
    assert one[0].text != two[0].text
    sent = await successor_sends(app, outbox)
    assert sorted(h.reply.text for h in sent) == sorted(r.text for r in one + two)


async def test_break_the_first_of_two_identical_transfers_removes_the_seconds_row(
        server: App) -> None:
    """The same two messages, without a kill at once: the SMSC takes the first's two
    replies; their removal deletes the shared row, while the second's replies are
    still in flight. A kill -9 now loses the second transfer's confirmations."""
    app = server
    await funded(app)
    outbox = outbox_of(app)
    memory = memory_of(app)
    _, _, first = await routed(app, outbox, memory, TRANSFER, "s1")
    _, two, _ = await routed(app, outbox, memory, TRANSFER, "s1")
    for each in first:
        outbox.finished(each, done())
    await outbox.flush()
    sent = await successor_sends(app, outbox)
    assert sorted(h.reply.text for h in sent) == sorted(r.text for r in two)


# -- 2. the successor sends what was decided -------------------------------------------

async def test_a_successor_with_a_new_fee_renders_the_refusals_as_decided(
        redis_url: str) -> None:
    """The gateway is restarted to apply a new fee (the usual way to change config): the
    successor renders the predecessor's held refusals from their outcomes, which carry
    every sum and rule the reply names, so the sender is told what was decided, not
    what the new settings would say. (Before: the successor's fee and maximum.)"""
    old = build_app(make_settings(redis_url))
    await funded(old, balance=2000)
    outbox = outbox_of(old)
    memory = memory_of(old)
    decided: list[Outbound] = []
    for text in (TRANSFER, "09351234567:15000:55555"):
        decided += (await routed(old, outbox, memory, text, "s1"))[1]
    assert [r.kind for r in decided] == ["transfer.insufficient", "transfer.above_max"]
    await outbox.end_lease()
    new = build_app(make_settings(redis_url, transfer={"fee": 700, "max_amount": 20000}))
    sent: list[Held] = []
    await OutboxWorker(outbox_of(new), sent.extend).once()
    await old.close()
    await new.close()
    assert sorted(h.reply.text for h in sent) == sorted(r.text for r in decided)


async def test_break_an_again_claim_sends_a_row_its_script_just_wrote(server: App) -> None:
    """The worker's last claim of the shard lost its answer (a Redis blip): its next
    pass claims with again=1 all of this gateway's rows that are not in hand. A
    message's script has just written its row (owner: this gateway), its answer not yet
    back in the router: the worker sends its replies, and so does the message: every
    reply twice, with no crash and nothing lost (README: a duplicate only when the
    SMSC's answer or our removal was lost)."""
    app = server
    await funded(app)
    outbox = outbox_of(app)
    await outbox.renew()
    sent: list[Held] = []
    worker = OutboxWorker(outbox, sent.extend)
    shard = outbox_shard(SENDER)
    worker._unsure.add(shard)  # the shard's last claim failed: again=1 next pass
    original = outbox.hold

    async def worker_pass_first(inbound: Inbound | None, replies: list[Outbound]
                                ) -> list[Held]:
        await worker.once()  # the worker's coroutine runs between script and hold
        return await original(inbound, replies)

    outbox.hold = worker_pass_first  # type: ignore[method-assign]
    _, _, held = await routed(app, outbox, memory_of(app), TRANSFER, "s1")
    assert len(held) == 2
    assert sent == [], "the message's replies sent by the worker as well as the message"


async def test_break_a_repeat_of_an_id_with_another_text_confirms_to_a_stranger(
        server: App) -> None:
    """An SMSC that reuses a message id (ids wrap; some reuse them per sender): the
    second text is answered from the first's outcome (nothing applied: right), but the
    replies are rendered with the second text's recipient, and held so in the row: a
    "you received 2,500 rials" goes to a mobile that received nothing, and the sender is
    told it went there. (Rendered in `handle` too: the row inherits it.)"""
    app = server
    await funded(app)
    outbox = outbox_of(app)
    _, first, _ = await routed(app, outbox, memory_of(app), TRANSFER, "s1", smsc_id="77")
    _, again, _ = await routed(app, outbox, memory_of(app), "09361112222:2500:55555",
                                  "s1", smsc_id="77")
    assert await balance(app, OTHER) == 0 and await balance(app, RECIPIENT) == 2500
    assert [r.to for r in again] == [r.to for r in first], "a confirmation to a stranger"


async def test_a_repeat_of_an_id_with_another_text_is_refused_as_first_decided(
        server: App) -> None:
    """The same for a refusal that names a sum or a number (found by the hostile-text
    property in CI): the second text's amount or recipient is not what was decided, and
    a reply mixing them ("needed 501 rials" for a refusal of 4,332) is told to nobody,
    neither at once nor by a successor rendering the held row."""
    app = server
    await funded(app, balance=3000)
    outbox = outbox_of(app)
    cases = [("09351234567:3832:55555", "09351234567:1:55555", "۴٬۳۳۲"),
             ("09399999999:1000:55555", "09351234567:1000:55555", "۰۹۳۹۹۹۹۹۹۹۹")]
    for n, (first_text, second_text, told) in enumerate(cases):
        _, first, _ = await routed(app, outbox, memory_of(app), first_text, "s1",
                                   smsc_id=f"id{n}")
        _, again, held = await routed(app, outbox, memory_of(app), second_text, "s1",
                                      smsc_id=f"id{n}")
        assert told in first[0].text
        assert [r.text for r in again] == [r.text for r in first]
        rows = {w.reply_id: w for w in await outbox.rows.waiting()}
        restored = outbox.restored(rows[held[0].reply_id])
        assert [h.reply.text for h in restored] == [r.text for r in first]
    assert await balance(app, SENDER) == 3000

async def test_break_an_again_claim_sends_replies_whose_put_just_ran(server: App) -> None:
    """The same race for replies held by a put of their own (a format error's): the
    put ran, its answer is on its way; the worker's again=1 claim takes the row."""
    app = server
    await funded(app)
    outbox = outbox_of(app)
    await outbox.renew()
    sent: list[Held] = []
    worker = OutboxWorker(outbox, sent.extend)
    worker._unsure.add(outbox_shard(SENDER))
    real_put = outbox.rows.put

    async def put_then_worker(*args: Any) -> None:
        await real_put(*args)
        await worker.once()  # the worker resumes before the put's caller does

    outbox.rows.put = put_then_worker  # type: ignore[method-assign,assignment]
    _, decided, held = await routed(app, outbox, memory_of(app), "hello", "s1")
    assert [r.kind for r in decided] == ["format.not_a_command"] and len(held) == 1
    assert sent == [], "a reply sent by the worker as well as by the message"


# -- things that held, generated -------------------------------------------------------

RECIPIENTS = st.sampled_from([
    "09351234567", "9351234567", "+989351234567", "00989351234567", "989351234567",
    "۰۹۳۵۱۲۳۴۵۶۷", "٠٩٣٥١٢٣٤٥٦٧", "0935 123 4567", "09361112222", "09121110000",
    "09990000000", "0935123456", "", "0935-123-4567", "+98 935 123 4567"])
AMOUNT_TEXTS = st.one_of(
    st.integers(0, 30_000).map(str),
    st.integers(0, 30_000).map(lambda n: f"{n:,}"),
    st.integers(0, 30_000).map(lambda n: f"{n:,}".replace(",", "٬")),
    st.integers(0, 30_000).map(lambda n: str(n).translate(str.maketrans("0123456789",
                                                                        "۰۱۲۳۴۵۶۷۸۹"))),
    st.integers(0, 30_000).map(lambda n: f"000{n}"),
    st.sampled_from(["1e5", "-5", "2.500", "2,50", "", "10000", "10001", "999", "1000",
                     "55555", "1000000000000000", "1000000000000001", "٥٥٥٥٥"]))
PIN_TEXTS = st.one_of(
    st.sampled_from([PIN, PIN, "11111", "12345", "٥٥٥٥٥", "۵۵۵۵۵", "5555", "123456789",
                     "", "h~" + "0" * 32, " 5 5 5 5 5 ", "55555\u200c"]),
    st.text("0123456789", min_size=5, max_size=8), st.text("0123456789", max_size=9))
KEYWORDS = st.sampled_from(["PIN", "pin", "Pin", "رمز", "p i n", "PIN "])
SEPARATORS = st.sampled_from([":", ":", ":", "：", "؛", " : ", "\u200c:", "∶"])


@st.composite
def hostile_commands(draw: st.DrawFn) -> str:
    sep = draw(SEPARATORS)
    if draw(st.booleans()):
        parts = [draw(RECIPIENTS), draw(AMOUNT_TEXTS), draw(PIN_TEXTS)]
    else:
        new = draw(PIN_TEXTS)
        parts = [draw(KEYWORDS), draw(PIN_TEXTS), new,
                 new if draw(st.booleans()) else draw(PIN_TEXTS)]
    if draw(st.integers(0, 9)) == 0:
        parts.append(draw(PIN_TEXTS))  # one part too many
    text = sep.join(parts)
    if draw(st.booleans()):
        text = draw(st.sampled_from(["  ", "\t", "\u200f", ""])) + text + " "
    return text


MESSAGES = st.lists(st.tuples(
    st.one_of(hostile_commands(), hostile_commands(), hostile_commands(),
              st.text(min_size=0, max_size=30)),
    st.sampled_from(["new id", "same id", "no id", "no id, other session"]),
    st.sampled_from([SENDER, SENDER, SENDER, OTHER, "989390000000"])),
    min_size=1, max_size=6)


def _no_pin_in(text: str, typed: set[str]) -> bool:
    return not any(pin in text for pin in typed)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(messages=MESSAGES, funds=st.sampled_from([1_000_000, 3000, 0]),
       strikes=st.sampled_from(["0", "2"]))
async def test_held_rows_render_exactly_what_was_decided_for_hostile_texts(
        server: App, messages: list[tuple[str, str, str]], funds: int, strikes: str) -> None:
    """Whatever is sent (digits of three scripts, stray spaces and marks, look-alike
    colons, PINs anywhere, repeats of an id, redeliveries without one, wrong PINs up to
    a block, PIN changes): each held row, read back at once, renders the very replies
    decided; money is conserved; no typed 5-8 digit PIN field is in any row."""
    tried("the outbox: held replies rendered again (hostile texts)")
    app = server
    await app.store.redis.flushdb()
    await funded(app, balance=funds)
    await app.store.redis.hset(subscriber_key(SENDER), "strikes", strikes)
    await app.store.redis.hset(subscriber_key(OTHER), "plan", "postpaid")
    before = await app.store.money()
    outbox = outbox_of(app)
    memories = {"s1": memory_of(app), "s2": memory_of(app)}
    last_id = "0"
    for n, (text, how, sender) in enumerate(messages):
        smsc_id = {"new id": f"i{n}", "same id": last_id}.get(how)
        last_id = smsc_id or last_id
        session = "s2" if how == "no id, other session" else "s1"
        _, decided, held = await routed(app, outbox, memories[session], text, session,
                                        smsc_id=smsc_id, sender=sender)
        rows = {w.reply_id: w for w in await outbox.rows.waiting()}
        if held and held[0].together is not None:  # held by its command: one row
            restored = outbox.restored(rows[held[0].reply_id])
            assert [h.reply for h in restored] == decided
        else:
            assert all(h.reply_id in rows for h in held)
        listed = await listing(app.store, app.hasher, app.settings,
                               render=app.router.replies_for)
        assert _no_pin_in(" ".join(row["text"] for row in listed), {PIN})
        for reply in decided:
            outbox.finished(next(h for h in held if h.reply == reply), done())
        await outbox.flush()
    assert await app.store.money() == before
    stored = " ".join(w.entry for w in await outbox.rows.waiting())
    assert _no_pin_in(stored, {PIN})


async def test_held_rows_expire_and_are_recorded_once_each(store_url: str) -> None:
    """A held row past [outbox] max_age at takeover: neither reply goes, each is
    recorded as expired, the row leaves."""
    app = build_app(make_settings(store_url, outbox={"max_age_seconds": 1}))
    await funded(app)
    first = outbox_of(app)
    await routed(app, first, memory_of(app), TRANSFER, "s1")
    await first.end_lease()
    await asyncio.sleep(1.2)
    successor = outbox_of(app)
    sent: list[Held] = []
    await OutboxWorker(successor, sent.extend).once()
    await successor.flush()
    histories = [await app.store.redis.lrange(history_key(m), 0, -1)
                 for m in (SENDER, RECIPIENT)]
    await app.close()
    assert sent == []
    assert (await successor.rows.census())[0] == 0
    assert [sum("reply_expired" in e for e in each) for each in histories] == [1, 1]


async def test_a_fenced_held_row_is_sent_by_exactly_one_gateway(server: App) -> None:
    """A gateway frozen past its lease (both replies held back, NotMine); another one
    takes the row over: the frozen one, once it runs again, sends neither; the row
    leaves once the successor's two replies are taken."""
    from smsgw.transport.smpp.client import NotMine
    app = server
    await funded(app)
    frozen = outbox_of(app)
    await frozen.renew()
    _, decided, held = await routed(app, frozen, memory_of(app), TRANSFER, "s1")
    for each in held:
        frozen.finished(each, done(error=NotMine("lease in doubt")))
    sent = await successor_sends(app, frozen)
    assert sorted(h.reply.text for h in sent) == sorted(r.text for r in decided)
    await frozen.renew()
    assert await frozen.recheck() == []
    assert frozen.holding == 0


GOOD_RECIPE = {"from": SENDER, "to": "1112", "text": "09351234567:2500:h~" + "0" * 32,
               "at": "2026-07-01T09:30:00+00:00", "id": "m1"}
GOOD_OUTCOME = {"status": "ok", "lang": "fa", "recipient_lang": "", "ref": "ABCDEFGH",
                "recipient_plan": "prepaid", "at": "2026-07-01T09:30:00+00:00",
                "amount": 2500, "fee": 500, "balance": 1000, "pin_set": False}
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=6)
           | st.floats(allow_nan=False) | st.sampled_from(["2026-07-01T09:30:00+00:00", "ok",
                                                           "fa", "1112", "", "prepaid"]))


def _damaged(good: dict[str, Any]) -> st.SearchStrategy[Any]:
    """`good` with some fields dropped or replaced by junk, or junk of another shape."""
    return st.one_of(
        st.fixed_dictionaries({}, optional={key: st.one_of(st.just(value), SCALARS)
                                            for key, value in good.items()}),
        SCALARS, st.lists(SCALARS, max_size=3))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(entry=st.one_of(
    st.fixed_dictionaries({}, optional={
        "recipe": _damaged(GOOD_RECIPE), "outcome": _damaged(GOOD_OUTCOME),
        "expires": SCALARS, "valid_ms": SCALARS, "to": SCALARS, "from": SCALARS,
        "text": SCALARS, "kind": SCALARS, "receipt": SCALARS, "about": SCALARS,
        "secret": SCALARS}).map(json.dumps),
    st.text(max_size=20)))
async def test_break_a_damaged_row_gets_a_value_error_never_another_crash(
        server: App, entry: str) -> None:
    """Any stored row, however damaged: `restored` answers replies or ValueError (what
    the worker and `admin outbox` expect), never KeyError or TypeError."""
    tried("the outbox: damaged rows read back")
    outbox = outbox_of(server)
    waiting = Waiting("row-m", 3, entry, 1_000, "dead", 2_000)
    with contextlib.suppress(ValueError):
        outbox.restored(waiting)


async def test_break_end_to_end_two_identical_transfers_kill_9_no_confirmation_lost(
        server_url: str, tmp_path: Path) -> None:
    """The same as a real `smsgw run` against the fake SMSC (no message-id TLV): the
    SMSC stalls, the subscriber sends one transfer twice (both applied, both answered
    ESME_ROK), the gateway is killed -9: its successor sends both confirmations and both
    notices (a shared row sent one pair: the first transfer's reference never reached
    the sender). On a cluster the replies are held by a call of their own, not by the
    transfer's script: the same holds there."""
    redis_url = server_url
    app = build_app(make_settings(redis_url))
    await funded(app)
    async with FakeSmsc(redeliver_after=0.3) as smsc:
        first = spawn_gateway(redis_url, smsc.port, tmp_path / "one")
        try:
            await smsc.wait_bound(30)
            await acknowledged_while_stalled(smsc, [(SENDER, TRANSFER), (SENDER, TRANSFER)])
        finally:
            await kill(first)
        assert await balance(app, RECIPIENT) == 5000  # both applied
        smsc.faults.stall_submits = False
        second = spawn_gateway(redis_url, smsc.port, tmp_path / "two")
        try:
            deadline = time.monotonic() + 20
            while len(smsc.mt) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        finally:
            await stop(second)
    await app.close()
    assert Counter(mt.destination for mt in smsc.mt) == {SENDER: 2, RECIPIENT: 2}
