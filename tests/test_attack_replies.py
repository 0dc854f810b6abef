"""The outside attack on "replies chosen by the outcome" (7d021ff, a2cbb62): a message
delivered again, or whose SMSC id was reused for another text, is answered with the
replies first decided; a held row is rendered by a successor exactly as decided, whatever
its settings; nothing is applied twice; money is conserved.

Each test is a promise attacked. Seven broke; each docstring says how it broke and what
was mended: two on the attack branch (a cluster's reversed transfer confirmed to a PIN
change text on its id; the reply language a successor's own), five after it (the zone a
successor tells the time in; a redelivery just after closing time; help and format
errors on a reused id, now README's stated rule; an earlier version's outcome; replay
--compare on reused ids). The rest are hostile cases that held. Helpers are
tests/test_attack_held.py's.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.app import App, build_app
from smsgw.core.clock import now, parse_timestamp
from smsgw.core.money import MONEY_CEILING
from smsgw.messages import Inbound, Outbound
from smsgw.store import Store
from smsgw.store.keys import processed_key, subscriber_key
from smsgw.store.script import Script
from smsgw.transport.log_replay import previous_replies, replay
from smsgw.transport.outbox import Held, Outbox
from smsgw.workers.outbox import OutboxWorker
from tests.attacks import tried
from tests.conftest import make_settings
from tests.test_attack_held import (
    OTHER,
    RECIPIENT,
    SENDER,
    TRANSFER,
    balance,
    funded,
    memory_of,
    outbox_of,
    routed,
)

# a PIN as typed in the texts below, as a whole field (any script's digits)
TYPED_PIN = re.compile(r"(?<!\d)([5５۵٥]{5}|24680|246806|11111|99999|77777|۲۴۶۸۰)(?!\d)")
STRANGER = "989121119999"  # no subscriber: not in the store
PIN_CHANGE = "PIN:55555:24680:24680"


async def taken_over(old: Outbox, new: App) -> list[Held]:
    """`old`'s gateway dies; a successor (the app `new`, with its own settings) sends."""
    await old.end_lease()
    sent: list[Held] = []
    await OutboxWorker(outbox_of(new), sent.extend).once()
    return sent


def texts(replies: list[Outbound]) -> list[tuple[str, str]]:
    return sorted((reply.to, reply.text) for reply in replies)


async def pin_of(app: App, msisdn: str = SENDER) -> str | None:
    return (await app.store.subscriber(msisdn)).get("pin")


# -- promise 3: a successor with other settings -----------------------------------------

@pytest.mark.parametrize("how", ["successor renders the held row", "redelivery after restart"])
async def test_break_an_unknown_senders_refusal_is_told_in_the_successors_default_language(
        redis_url: str, how: str) -> None:
    """Promise 3 (and 1): `unknown_sender` is the one outcome with no `lang` (transfer.lua
    and pin_change.lua: `finish({status = 'unknown_sender'})`), so its reply's language is
    picked at render time from the gateway's *own* `[replies] language`. A gateway with
    the default "fa" decides and holds the refusal in Persian; a successor restarted
    with "en" (or the SMSC delivering the message again to it) sends it in English: not
    what was decided. (Subscribers always have a language: only this outcome lacks it.)"""
    old = build_app(make_settings(redis_url))
    outbox = outbox_of(old)
    _, decided, _ = await routed(old, outbox, memory_of(old), TRANSFER, "s1", smsc_id="u1",
                                 sender=STRANGER)
    assert [r.kind for r in decided] == ["transfer.unknown_sender"]
    new = build_app(make_settings(redis_url, replies={"language": "en"}))
    try:
        if how == "successor renders the held row":
            again = [h.reply for h in await taken_over(outbox, new)]
        else:
            _, again, _ = await routed(new, outbox_of(new), memory_of(new), TRANSFER, "s2",
                                       smsc_id="u1", sender=STRANGER)
    finally:
        await old.close()
        await new.close()
    assert texts(again) == texts(decided)


async def test_a_successor_in_another_timezone_tells_the_time_as_decided(
        redis_url: str) -> None:
    """Promise 3: a held confirmation is told in the zone the transfer was decided in
    (the outcome keeps it beside the moment). Before: rendered with the successor's
    `[transfer] timezone`, an operator who corrected the zone and restarted had the
    successor tell both parties another time of day (09:30 in Tehran became 06:00)."""
    old = build_app(make_settings(redis_url, replies={"language": "en"}))
    await funded(old)
    for msisdn in (SENDER, RECIPIENT):
        await old.store.redis.hset(subscriber_key(msisdn), "lang", "en")
    outbox = outbox_of(old)
    _, decided, _ = await routed(old, outbox, memory_of(old), TRANSFER, "s1", smsc_id="t1")
    new = build_app(make_settings(redis_url, replies={"language": "en"},
                                  transfer={"timezone": "UTC"}))
    try:
        sent = await taken_over(outbox, new)
    finally:
        await old.close()
        await new.close()
    assert texts([h.reply for h in sent]) == texts(decided)


# -- promise 1: a redelivery answered as first decided ----------------------------------

async def test_a_redelivery_after_closing_time_is_answered_as_decided(
        redis_url: str) -> None:
    """Promise 1: a transfer applied at 11:59 whose answer was lost is delivered again
    at 12:01, after `[transfer] open_until`: it gets the confirmations of the transfer
    that was made (the script refuses a closed window only after looking for an outcome
    already decided). Before: `handle` checked the window first and answered "Credit
    transfer is not available now" beside, or on a cluster instead of, them."""
    close = parse_timestamp("2026-07-23T12:00:00+03:30")
    app = build_app(make_settings(redis_url, transfer={"open_until": close.isoformat()}))
    try:
        await funded(app)
        outbox = outbox_of(app)
        _, first, _ = await routed(app, outbox, memory_of(app), TRANSFER, "s1",
                                   at=close - timedelta(minutes=1), smsc_id="c1")
        assert [r.kind for r in first] == ["transfer.sent", "transfer.received_prepaid"]
        _, again, _ = await routed(app, outbox, memory_of(app), TRANSFER, "s2",
                                   at=close + timedelta(minutes=1), smsc_id="c1")
        assert await balance(app, RECIPIENT) == 2500  # applied once
    finally:
        await app.close()
    assert texts(again) == texts(first)


# -- promise 2: a reused id, mixed command kinds -----------------------------------------

@pytest.mark.parametrize("second", ["HELP", "راهنما", "hello", "09351234567:2500"])
async def test_help_or_a_format_error_on_a_reused_id_gets_its_own_reply(
        server_app: App, second: str) -> None:
    """README's rule (our choice): only a command (a transfer or a PIN change) looks its
    id up. A help text or a format error on a reused id is answered for itself (it
    changes nothing, so nothing can apply twice); and an id first used by such a text
    does not stop the command that reuses it. (Found by the outside attack: README
    said every reused id got the first text's replies.)"""
    app = server_app
    await funded(app)
    outbox = outbox_of(app)
    await routed(app, outbox, memory_of(app), TRANSFER, "s1", smsc_id="h1")
    _, again, _ = await routed(app, outbox, memory_of(app), second, "s1", smsc_id="h1")
    assert await balance(app, RECIPIENT) == 2500
    assert [r.kind.split(".")[0] for r in again] in (["help"], ["format"])
    _, help_first, _ = await routed(app, outbox, memory_of(app), second, "s1", smsc_id="h2")
    _, applied, _ = await routed(app, outbox, memory_of(app), TRANSFER, "s1", smsc_id="h2")
    assert [r.kind for r in applied] == ["transfer.sent", "transfer.received_prepaid"]
    assert await balance(app, RECIPIENT) == 5000
    assert texts(help_first) == texts(again)


async def test_an_earlier_versions_ok_outcome_answered_for_a_pin_change_text_is_told(
        server_app: App) -> None:
    """Promise 2 for outcomes stored by an older version (remembered 7 days: across an
    upgrade): an "ok" outcome from before 56d2ccb names no recipient. A PIN change text
    on its reused id gets it: the sender is told its transfer's confirmation, the
    recipient (told at the time) nothing again. Before: ValueError, a temporary error
    to the SMSC, redelivered for as long as the outcome was remembered."""
    app = server_app
    await funded(app)
    outbox = outbox_of(app)
    inbound, first, _ = await routed(app, outbox, memory_of(app), TRANSFER, "s1",
                                     smsc_id="o1")
    assert inbound.identity is not None
    key = processed_key(SENDER, inbound.identity)
    stored = json.loads(str(await app.store.redis.get(key)))
    del stored["recipient"]  # as an earlier version stored it
    await app.store.redis.set(key, json.dumps(stored), ex=3600)
    _, again, held = await routed(app, outbox, memory_of(app), PIN_CHANGE, "s1",
                                  smsc_id="o1")
    assert [(r.to, r.kind) for r in again] == [(SENDER, "transfer.sent")]
    assert again[0].text.replace("-", "۰۹۳۵۱۲۳۴۵۶۷") == first[0].text
    rows = {w.reply_id: w for w in await outbox.rows.waiting()}
    assert [h.reply for h in outbox.restored(rows[held[0].reply_id])] == again
    assert await balance(app, RECIPIENT) == 2500


@pytest.fixture
async def server_app(redis_url: str) -> AsyncIterator[App]:
    application = build_app(make_settings(redis_url))
    yield application
    await application.close()


# -- promise 2 on a Redis Cluster: a reversed transfer -----------------------------------

@pytest.fixture(params=["cluster", "redis-single-slot"])
async def journaled(request: pytest.FixtureRequest) -> AsyncIterator[App]:
    """The journaled two-step transfer: a real cluster, or one server in single-slot
    mode (every call confined to one slot, as on a cluster)."""
    if request.param == "cluster":
        app = build_app(make_settings(str(request.getfixturevalue("cluster_url"))))
    else:
        url = str(request.getfixturevalue("redis_url"))
        app = build_app(make_settings(url), store=Store.connect(url, single_slot=True))
    await funded(app, balance=20_000)
    yield app
    await app.close()


def by_id(app: App, text: str, msg_id: str, sender: str = SENDER) -> Inbound:
    return Inbound(sender, "1112", text, now(), msg_id=msg_id,
                   identity=app.hasher.message_identity("id", sender, msg_id),
                   remember_seconds=3600)


def reverse_every_credit(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A top-up fills the recipient between the debit and the credit: reversed."""
    original = app.store.run

    async def fill_recipient_first(script: Script[Any, Any, Any], keys: Any, args: Any
                                   ) -> Any:
        if script.name == "transfer_credit":
            await app.store.redis.hset(subscriber_key(RECIPIENT), "balance",
                                       str(MONEY_CEILING - 1000))
        return await original(script, keys, args)

    monkeypatch.setattr(app.store, "run", fill_recipient_first)


async def test_break_a_pin_change_text_on_a_reversed_transfers_id_confirms_the_transfer(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Promise 2, on a cluster: a journaled transfer reversed at its credit (the
    recipient filled meanwhile) is answered `recipient_limit`, yet the outcome
    remembered under its id is the debit's "ok" (the reversal is a marker beside it). A
    transfer text on that id finishes the journal first and learns of the reversal; a
    PIN change text on the reused id does not: pin_change.lua answers the debit's "ok",
    and both parties are sent confirmations ("Sent 2,500 rials", "2,500 rials added to
    your credit") of a transfer that was given back: a confirmation to a number that
    received nothing."""
    app = journaled
    with monkeypatch.context() as patch:
        reverse_every_credit(app, patch)
        first = await app.router.handle(by_id(app, TRANSFER, "r1"))
    assert [r.kind for r in first] == ["transfer.recipient_limit"]
    before = await app.store.money()
    again = await app.router.handle(by_id(app, PIN_CHANGE, "r1"))
    assert await balance(app, SENDER) == 20_000  # given back, and nothing applied again
    assert await app.store.money() == before
    assert texts(again) == texts(first)


async def test_mixed_kinds_on_one_reused_id_on_a_cluster_apply_nothing(journaled: App) -> None:
    """Held: on the journaled path, a transfer then a PIN change (and a PIN change then a
    transfer) on one id: the second applies nothing (no PIN changed, no second debit),
    and is answered with the first's replies."""
    app = journaled
    first = await app.router.handle(by_id(app, TRANSFER, "k1"))
    assert [r.kind for r in first] == ["transfer.sent", "transfer.received_prepaid"]
    pin = await pin_of(app)
    again = await app.router.handle(by_id(app, PIN_CHANGE, "k1"))
    assert texts(again) == texts(first) and await pin_of(app) == pin
    changed = await app.router.handle(by_id(app, PIN_CHANGE, "k2"))
    assert [r.kind for r in changed] == ["transfer.pin_changed"]
    pin = await pin_of(app)
    again = await app.router.handle(by_id(app, "09361112222:3000:24680", "k2"))
    assert texts(again) == texts(changed) and await pin_of(app) == pin
    assert await balance(app, SENDER) == 20_000 - 3000 and await balance(app, OTHER) == 0
    assert await balance(app, RECIPIENT) == 2500


# -- held: mixed kinds on one server, both languages, a successor with other settings ---

FIRSTS = st.sampled_from([
    TRANSFER, "09351234567:9000:55555", "09351234567:500:55555", "09351234567:20000:55555",
    "09399999999:2000:55555", "09121110000:2000:55555", "09351234567:2000:11111",
    PIN_CHANGE, "PIN:11111:24680:24680", "۰۹۳۵۱۲۳۴۵۶۷:۲٬۵۰۰:۵۵۵۵۵", "0935 123 4567：2500：55555",
    "\u200f09351234567\u200c:2500:55555 ", "٠٩٣٦١١١٢٢٢٢:٣٠٠٠:٥٥٥٥٥", "رمز:55555:246806:246806"])
SECONDS = st.one_of(FIRSTS, st.sampled_from([
    "09361112222:1000:55555", "09361112222:9999:24680", "PIN:24680:55555:55555",
    "pin:55555:99999:99999"]))
SUCCESSOR_SETTINGS = st.sampled_from([
    {}, {"transfer": {"fee": 0}}, {"transfer": {"fee": 900, "min_amount": 100,
                                                "max_amount": 50_000}},
    {"transfer": {"daily_cap": 5000, "monthly_cap": 6000, "max_pin_attempts": 5}}])


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(first=FIRSTS, second=SECONDS, language=st.sampled_from(["fa", "en"]),
       funds=st.sampled_from([1_000_000, 3000, 0]), strikes=st.sampled_from(["0", "2"]),
       sent_today=st.sampled_from([0, 45_000]), successor=SUCCESSOR_SETTINGS)
async def test_a_reused_id_with_any_other_command_is_answered_as_first_decided(
        redis_url: str, first: str, second: str, language: str, funds: int, strikes: str,
        sent_today: int, successor: dict[str, Any]) -> None:
    """Transfers, refusals of every kind, wrong PINs, PIN changes, in Persian, Arabic
    and ASCII digits with marks and look-alike colons; an English or a Persian sender;
    the second text (another command, or another kind of command) on the first's id:
    nothing applied (balances, PIN, strikes as after the first), the same replies, and
    the second's held row rendered by a successor with other fees, limits, caps and
    default language exactly as the first's replies were decided."""
    tried("a reused id: mixed command kinds, a successor with other settings")
    old = build_app(make_settings(redis_url))
    new = build_app(make_settings(redis_url, replies={"language": "en"}, **successor))
    try:
        await old.store.redis.flushdb()
        await funded(old)
        await old.store.redis.hset(subscriber_key(OTHER), "plan", "postpaid")
        earlier = outbox_of(old)
        for amount in [10_000] * (sent_today // 10_000) + [sent_today % 10_000] * (
                sent_today % 10_000 > 0):  # counted in today's cap (and the month's)
            await routed(old, earlier, memory_of(old), f"09351234567:{amount}:55555", "s0")
        await old.store.redis.hset(subscriber_key(SENDER), mapping={
            "strikes": strikes, "lang": language, "balance": str(funds)})
        rows = [key async for key in old.store.redis.scan_iter("ob:*")]
        if rows:
            await old.store.redis.delete(*rows)
        outbox = outbox_of(old)
        _, decided, _ = await routed(old, outbox, memory_of(old), first, "s1", smsc_id="x")
        if not decided or decided[0].kind.startswith(("format.", "help.")):
            return  # no command: nothing remembered (test_break_help_or_a_format_error…)
        money = await old.store.money()
        state = {m: await old.store.subscriber(m) for m in (SENDER, RECIPIENT, OTHER)}
        _, again, _ = await routed(old, outbox, memory_of(old), second, "s1", smsc_id="x")
        assert not again[0].kind.startswith(("format.", "help."))  # all commands
        assert texts(again) == texts(decided)
        assert await old.store.money() == money
        assert {m: await old.store.subscriber(m) for m in (SENDER, RECIPIENT, OTHER)} == state
        sent = await taken_over(outbox, new)
        # one row (one id): the first's replies, written again by the repeat's script
        assert texts([h.reply for h in sent]) == texts(decided)
        for waiting in await outbox_of(new).rows.waiting():
            assert not TYPED_PIN.search(json.loads(waiting.entry)["recipe"]["text"])
    finally:
        await old.close()
        await new.close()


# -- held: replay of a message log, twice, and with --compare ----------------------------

def log_line(ts: str, text: str, msg_id: str | None, sender: str = SENDER) -> str:
    record: dict[str, Any] = {"ts": ts, "from": sender, "to": "1112", "text": text}
    if msg_id is not None:
        record["id"] = msg_id
    return json.dumps(record, ensure_ascii=False)


REPLAYED = [
    log_line("2026-07-23T10:00:00+03:30", TRANSFER, "m1"),
    log_line("2026-07-23T10:00:05+03:30", "09361112222:3000:55555", "m1"),  # id reused
    log_line("2026-07-23T10:01:00+03:30", PIN_CHANGE, "m2"),
    log_line("2026-07-23T10:01:30+03:30", "09351234567:1000:24680", "m2"),  # id reused
    log_line("2026-07-23T10:02:00+03:30", "۰۹۳۵۱۲۳۴۵۶۷：۹٬۰۰۰：۲۴۶۸۰", None),
    log_line("2026-07-23T10:02:00+03:30", "۰۹۳۵۱۲۳۴۵۶۷：۹٬۰۰۰：۲۴۶۸۰", None),  # the same
    log_line("2026-07-23T10:03:00+03:30", "09351234567:2000:99999", "m3"),  # wrong PIN
    log_line("2026-07-23T10:03:10+03:30", "PIN:24680:77777:77777", "m3"),  # id reused
    log_line("2026-07-23T10:04:00+03:30", "HELP", "m4"),
    log_line("2026-07-23T10:05:00+03:30", "\u200c09399999999:1000:24680", "m5"),
]


async def test_replaying_a_log_twice_applies_nothing_twice(
        redis_url: str) -> None:
    """`smsgw replay` of a log with reused ids of mixed kinds, hostile digits and
    colons, an id-less repeat (same ts and text: one identity): the second replay
    applies nothing and writes the very same replies; no typed PIN in what replay
    writes."""
    app = build_app(make_settings(redis_url))
    try:
        await funded(app, balance=50_000)
        await app.store.redis.hset(subscriber_key(OTHER), "plan", "postpaid")
        outs: list[str] = []
        money: list[int] = []
        for _ in range(2):
            out, report = io.StringIO(), io.StringIO()
            summary = await replay(app.router, app.hasher, REPLAYED, out, report)
            assert summary.bad_lines == [] and report.getvalue() == ""
            outs.append(out.getvalue())
            money.append(await app.store.money())
        assert outs[0] == outs[1] and money[0] == money[1]
        assert await balance(app, RECIPIENT) == 2500 + 9000
        assert await balance(app, SENDER) == 50_000 - 2500 - 9000 - 2 * 500
        kinds = [json.loads(line)["text"] for line in outs[0].splitlines()]
        assert sum("Ref" in text or "کد" in text for text in kinds) >= 2
        assert not TYPED_PIN.search(outs[0])
    finally:
        await app.close()


async def test_replay_compare_compares_each_record_of_a_reused_id_with_its_own_replies(
        redis_url: str) -> None:
    """`smsgw replay --compare` (README: "report replies that changed"): a log in which
    an id occurs twice (an SMSC that reused a message id; two id-less records of the
    same ts and text, replay's one identity) reports nothing when every reply is the
    same. (Before: `previous_replies` collected the replies by the id they answer, so
    each record of that id was compared with the replies of all of them, 4 lines
    "before" against 2 "now": the regression check cried wolf on every reused id.)"""
    app = build_app(make_settings(redis_url))
    try:
        await funded(app, balance=50_000)
        await app.store.redis.hset(subscriber_key(OTHER), "plan", "postpaid")
        out = io.StringIO()
        await replay(app.router, app.hasher, REPLAYED, out, io.StringIO())
        compare_report = io.StringIO()
        logged = REPLAYED + out.getvalue().splitlines()
        summary = await replay(app.router, app.hasher, REPLAYED, io.StringIO(),
                               compare_report, before=previous_replies(logged, app.hasher))
        assert not TYPED_PIN.search(compare_report.getvalue())
        assert summary.compared == 10
        assert summary.differing == 0, compare_report.getvalue()
    finally:
        await app.close()


async def test_a_gateway_log_s_replies_belong_to_the_latest_record_of_their_id() -> None:
    """In a gateway's own log (replies carry the SMSC's ids, written after the message
    they answer), each reply is compared with the record of its id just before it."""
    inbound = [log_line(f"2026-07-23T10:0{n}:00+03:30", TRANSFER, "m1") for n in (0, 1)]
    replies = [json.dumps({"ts": "2026-07-23T10:00:01+03:30", "from": "1112", "to": SENDER,
                           "text": text, "id": smsc_id, "in_reply_to": "m1"})
               for text, smsc_id in (("first", "a7f"), ("second", "b21"))]
    logged = [inbound[0], replies[0], inbound[1], replies[1]]
    app = build_app(make_settings(""))
    earlier = previous_replies(logged, app.hasher)
    await app.close()
    assert earlier == {"m1": [[(SENDER, "first")], [(SENDER, "second")]]}
