"""The outside attack on the promises of three late changes: concatenated parts sealed in
Redis (transport/reassembly.py, core/hashing.py's seal in counter mode), an amount with a
leading zero refused as a bad amount (transfer.lark), and the transfer window refused by
the command's script after it looked for an outcome already decided.

One attack broke a promise (a sealed part moved to another place opened), mended since;
its docstring says how. The rest held and stay as tests.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.app import App, build_app
from smsgw.core import masking
from smsgw.core.clock import parse_timestamp
from smsgw.core.hashing import Hasher
from smsgw.messages import Inbound, Outbound
from smsgw.services.transfer.parse import FormatError, Transfer, parse_transfer_command
from smsgw.services.transfer.service import TEMPLATES
from smsgw.store.keys import parts_key, subscriber_key
from smsgw.transport.reassembly import PART_STATUSES, SEAL_LABEL, Reassembly
from smsgw.transport.smpp.client import WireMessage
from smsgw.transport.smpp.pdu import ESME_RX_P_APPN
from tests.attacks import tried
from tests.conftest import add_subscribers, make_settings
from tests.test_fast_parse import lark_transfer

SENDER, RECIPIENT = "989121110000", "989351234567"
PIN = "48213907"
AT = parse_timestamp("2026-07-23T10:00:00+03:30")
PERSIAN = str.maketrans("0123456789,", "۰۱۲۳۴۵۶۷۸۹٬")
ARABIC = str.maketrans("0123456789,", "٠١٢٣٤٥٦٧٨٩،")
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture
async def server(store_url: str) -> AsyncIterator[App]:
    application = build_app(make_settings(store_url))
    yield application
    await application.close()


async def funded(app: App, pin: str | None = PIN, lang: str = "fa") -> None:
    await add_subscribers(app.store, (SENDER, "prepaid", 1_000_000, 0),
                          (RECIPIENT, "prepaid", 0, 0))
    if pin is not None:
        await app.store.redis.hset(subscriber_key(SENDER), "pin",
                                   app.hasher.pin_digest(SENDER, pin))
    await app.store.redis.hset(subscriber_key(SENDER), "lang", lang)


async def everything(app: App) -> dict[str, Any]:
    """Both subscribers' hashes and the money: what a refused text must leave alone."""
    return {"sender": await app.store.subscriber(SENDER),
            "recipient": await app.store.subscriber(RECIPIENT),
            "money": await app.store.money()}


async def redis_text(app: App) -> str:
    redis, found = app.store.redis, []
    async for key in redis.scan_iter(count=1000):
        kind = await redis.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "hash":
            found.append(f"{key!r} {await redis.hgetall(key)!r}")
        elif kind == "string":
            found.append(f"{key!r} {await redis.get(key)!r}")
        else:
            found.append(repr(key))
    return "\n".join(found)


def inbound(text: str, at: datetime = AT, identity: str | None = None,
            from_log: bool = False) -> Inbound:
    return Inbound(SENDER, "1112", text, at, msg_id=identity, identity=identity,
                   remember_seconds=600 if identity else 0, from_log=from_log)


# -- 1. concatenated parts, sealed while they wait ---------------------------------------

def old_seal(key: str, label: str, value: str) -> str:
    """The seal before the late change (one HMAC block of keystream), as it was."""
    hasher = Hasher(key)
    data = value.encode("utf-8")
    assert len(data) <= 32
    nonce = os.urandom(16)
    stream = hmac.digest(hasher._key, b"seal\x1f" + label.encode() + b"\x1f" + nonce, "sha256")
    sealed = bytes(a ^ b for a, b in zip(data, stream, strict=False))
    return (nonce + sealed + hasher._seal_tag(label, nonce, sealed)).hex()


@settings(max_examples=60, deadline=None)
@given(otp=st.one_of(st.from_regex(r"[0-9]{4,10}", fullmatch=True),
                     st.text(max_size=8).filter(lambda t: len(t.encode("utf-8", "surrogatepass"))
                                                <= 32 and t.encode("utf-8", "replace")
                                                == t.encode("utf-8", "surrogatepass"))),
       label=st.sampled_from(["otp", SEAL_LABEL]))
def test_a_value_sealed_by_the_old_one_block_seal_still_opens(otp: str, label: str) -> None:
    """Held: an OTP sealed before the change (in the outbox across the upgrade) opens."""
    tried("old seals open")
    hasher = Hasher("attack-late-key-0123456789abcdef")
    assert hasher.unseal(label, old_seal("attack-late-key-0123456789abcdef", label, otp)) == otp


@settings(max_examples=80, deadline=None)
@given(text=st.text(st.characters(exclude_categories=["Cs"]), max_size=160),
       data=st.data())
def test_a_tampered_sealed_value_is_refused(text: str, data: st.DataObject) -> None:
    """Held: any changed byte, a cut or an extension of a sealed value (one block or
    many) is refused, never opened as another text."""
    tried("tampered seal refused")
    hasher = Hasher("attack-late-key-0123456789abcdef")
    raw = bytearray(bytes.fromhex(hasher.seal(SEAL_LABEL, text)))
    how = data.draw(st.sampled_from(["flip", "cut", "extend", "label"]))
    label = SEAL_LABEL
    if how == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif how == "extend":
        raw += bytes(data.draw(st.binary(min_size=1, max_size=40)))
    else:
        label = "otp"
    with pytest.raises(ValueError):
        hasher.unseal(label, raw.hex())


def split(text: str, sizes: list[int]) -> list[str]:
    pieces, start = [], 0
    for size in sizes:
        pieces.append(text[start:start + size])
        start += size
    pieces.append(text[start:])
    return [piece for piece in pieces if piece] or [""]


@st.composite
def concatenated(draw: st.DrawFn) -> tuple[str, list[str], list[int]]:
    """A whole text (any Unicode but lone surrogates, a PIN inside), its parts of at most
    160 characters (at most 32), and an order of delivery with redeliveries."""
    alphabet = st.one_of(st.characters(exclude_categories=["Cs"]),
                         st.sampled_from(list("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩:😀👍🏽👨‍👩‍👧\u200c\u200f")))
    count = draw(st.integers(2, 32))
    parts = draw(st.lists(st.text(alphabet, min_size=1, max_size=160),
                          min_size=count, max_size=count))
    parts[draw(st.integers(0, count - 1))] = f"09351234567:2500:{PIN}"[:160]
    order = draw(st.permutations(range(count)))
    again = draw(st.lists(st.integers(0, count - 1), max_size=4))
    return "".join(parts), parts, [*order[:-1], *again, order[-1]]


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES)
@given(case=concatenated(), reference=st.integers(0, 255))
async def test_a_whole_message_reassembles_exactly_and_no_part_is_in_clear(
        server: App, case: tuple[str, list[str], list[int]], reference: int) -> None:
    """Held: up to 32 parts of up to 160 characters of any Unicode (Persian and Arabic
    digits, emoji, joiners), delivered in any order with redeliveries, make exactly the
    whole text; until then no part is in Redis in clear (the PIN above all); the
    message's id is the same on every whole (a redelivery applies nothing twice)."""
    tried("parts reassemble exactly")
    whole, parts, order = case
    reassembly = Reassembly(server.store, server.hasher, window_seconds=60)
    wires = [WireMessage(SENDER, "1112", text, None, (reference, n, len(parts)))
             for n, text in enumerate(parts, start=1)]
    seen: set[int] = set()
    for index in order[:-1]:
        seen.add(index)
        found = await reassembly.add(wires[index], SENDER, "s1")
        assert found.state == ("whole" if len(seen) == len(parts) else "partial")
    stored = await redis_text(server)
    assert PIN not in stored, "a part's PIN is in Redis in clear"
    first = await reassembly.add(wires[order[-1]], SENDER, "s1")
    again = await reassembly.add(wires[order[0]], SENDER, "s1")  # redelivered meanwhile
    assert (first.state, first.text) == ("whole", whole)
    assert (again.state, again.text, again.message_id) == ("whole", whole, first.message_id)
    await reassembly.forget(wires[0], SENDER)
    assert (await reassembly.add(wires[0], SENDER, "s1")).state in ("partial", "whole")
    await reassembly.forget(wires[0], SENDER)


async def test_a_damaged_part_is_refused_for_good_and_never_read(server: App) -> None:
    """Held: a part changed in Redis while it waits: the whole is "unreadable"
    (ESME_RX_P_APPN), and stays so when the other parts are delivered again."""
    reassembly = Reassembly(server.store, server.hasher, window_seconds=60)
    wires = [WireMessage(SENDER, "1112", text, None, (41, n, 3))
             for n, text in enumerate(("09351234567:", "2500:", PIN), start=1)]
    assert (await reassembly.add(wires[0], SENDER, "s1")).state == "partial"
    key = parts_key(SENDER, "1112:41")
    sealed = bytearray(bytes.fromhex(str(await server.store.redis.hget(key, "1"))))
    sealed[20] ^= 1
    await server.store.redis.hset(key, "1", sealed.hex())
    assert (await reassembly.add(wires[1], SENDER, "s1")).state == "partial"
    found = await reassembly.add(wires[2], SENDER, "s1")
    assert found.state == "unreadable" and found.text == ""
    assert PART_STATUSES[found.state] == ESME_RX_P_APPN
    for wire in wires[1:]:
        assert (await reassembly.add(wire, SENDER, "s2")).state == "unreadable"


async def test_a_sealed_part_moved_to_another_place_does_not_open(server: App) -> None:
    """Broke "a tampered sealed value is refused" for whoever can write Redis (the case
    the seal's tag is for): the seal bound a part to its label ("part") and key only, so
    parts swapped inside a message's hash (or copied from another sender's message)
    opened, and the whole was read as a text no one sent. Now a part's seal names its
    sender, message and place (reassembly.py `_seal_label`)."""
    reassembly = Reassembly(server.store, server.hasher, window_seconds=60)
    wires = [WireMessage(SENDER, "1112", text, None, (43, n, 3))
             for n, text in enumerate(("09351234567:", "2500:", PIN), start=1)]
    for wire in wires[:2]:
        assert (await reassembly.add(wire, SENDER, "s1")).state == "partial"
    key = parts_key(SENDER, "1112:43")
    one, two = await server.store.redis.hmget(key, ["1", "2"])
    await server.store.redis.hset(key, mapping={"1": two, "2": one})
    found = await reassembly.add(wires[2], SENDER, "s1")
    assert found.state == "unreadable", f"a reordered whole was read: {found.text!r}"


async def test_a_part_kept_in_clear_by_the_previous_version_is_refused(server: App) -> None:
    """Held: a part stored in clear by the version before (in flight across the upgrade)
    does not open: refused, never read as text (nor passed on as a command)."""
    await server.store.redis.hset(parts_key(SENDER, "1112:42"), mapping={
        "t": "2", "id": "old-p1", "1": "09351234567:2500:"})
    wire = WireMessage(SENDER, "1112", PIN, None, (42, 2, 2))
    found = await Reassembly(server.store, server.hasher, 60).add(wire, SENDER, "s1")
    assert found.state == "unreadable" and found.text == ""


# -- 2. an amount with a leading zero ------------------------------------------------------

leading_zero = st.one_of(
    st.from_regex(r"0[0-9]{1,9}", fullmatch=True),
    st.from_regex(r"0[0-9]{0,2}(,[0-9]{3}){1,3}", fullmatch=True),
    st.from_regex(r"00+", fullmatch=True),
).flatmap(lambda text: st.sampled_from([text, text.translate(PERSIAN), text.translate(ARABIC)]))


@settings(max_examples=150, deadline=None)
@given(amount=leading_zero, pin=st.sampled_from([PIN, "55555", "07319"]))
def test_an_amount_with_a_leading_zero_is_a_bad_amount_for_both_parsers(
        amount: str, pin: str) -> None:
    """Held: the fast parser and Lark agree; such an amount is refused by both."""
    tried("leading zero is a bad amount")
    text = f"09351234567:{amount}:{pin}"
    assert parse_transfer_command(text) == FormatError.BAD_AMOUNT, text
    assert lark_transfer(text, False) is None, text


@pytest.mark.parametrize(("amount", "value"), [
    ("0", 0), ("۰", 0), ("٠", 0), ("10,000", 10000), ("۱۰٬۰۰۰", 10000), ("١٠،٠٠٠", 10000),
    ("1,000,000", 1000000), ("2500", 2500), ("۲۵۰۰", 2500)])
def test_zero_alone_and_grouped_amounts_still_parse(amount: str, value: int) -> None:
    """Held: `0` alone is an amount (below the minimum), grouped amounts still work."""
    text = f"09351234567:{amount}:{PIN}"
    assert parse_transfer_command(text) == Transfer(RECIPIENT, value, PIN), amount
    assert lark_transfer(text, False) == Transfer(RECIPIENT, value, PIN), amount


def digits_of(text: str) -> str:
    return re.sub(r"h~[0-9a-f]{32}", "~", text).translate(
        str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789"))


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(amount=leading_zero, shape=st.sampled_from(["{r}:{a}:{p}", "{r}:{a}:{a}"]),
       has_pin=st.booleans())
async def test_a_leading_zero_amount_changes_nothing_and_its_masked_log_replays_alike(
        server: App, amount: str, shape: str, has_pin: bool) -> None:
    """Held: `recipient:07319:PIN` (and the PIN typed twice, `recipient:07319:07319`):
    no money moves, no strike, no PIN set for a sender without one; the reply is the
    bad-amount reply; the log hides the amount's digits; the masked log, replayed,
    gets the same reply."""
    tried("leading zero changes nothing")
    await server.store.redis.flushall()
    await funded(server, PIN if has_pin else None)
    text = shape.format(r="09351234567", a=amount, p=PIN)
    before = await everything(server)
    message = inbound(text, identity=None)
    replies = await server.router.handle(message)
    assert [reply.kind for reply in replies] == ["format.bad_amount"], text
    assert await everything(server) == before
    logged = masking.inbound_text(message, server.router.log_view(message), server.hasher)
    significant = digits_of(amount).replace(",", "").lstrip("0")
    if len(significant) >= 3:
        assert significant not in digits_of(logged).replace(",", ""), logged
    again = await server.router.handle(inbound(logged, from_log=True))
    assert [(r.kind, r.text) for r in again] == [(r.kind, r.text) for r in replies], logged
    assert await everything(server) == before


# -- 3. the transfer window ----------------------------------------------------------------

CLOSE = parse_timestamp("2026-07-23T12:00:00+03:30")


@pytest.fixture
async def windowed(any_store_url: str) -> AsyncIterator[App]:
    application = build_app(make_settings(any_store_url, transfer={
        "open_from": "2026-07-23T08:00:00+03:30", "open_until": CLOSE.isoformat()}))
    yield application
    await application.close()


OUTSIDE = [CLOSE, CLOSE + timedelta(hours=3), parse_timestamp("2026-07-23T07:59:59+03:30"),
           parse_timestamp("2026-07-23T04:29:59+00:00")]


@pytest.mark.parametrize("lang", ["fa", "en"])
async def test_outside_the_window_nothing_applies_and_the_reply_is_closed(
        windowed: App, lang: str) -> None:
    """Held (one server, embedded, a cluster): outside the window a transfer, a PIN
    change (right or wrong PIN), a format error and a leading-zero amount all get
    "closed" in the sender's language; nothing changes; money is conserved."""
    app = windowed
    await funded(app, lang=lang)
    before = await everything(app)
    closed = TEMPLATES.render(lang, "transfer", "closed")
    texts = [f"09351234567:2500:{PIN}", f"PIN:{PIN}:55555:55555", "PIN:11111:55555:55555",
             "09351234567:2500:99999", "09351234567:07319:07319", "09351234567:2500",
             "hello", f"۰۹۳۵۱۲۳۴۵۶۷:۲۵۰۰:{PIN.translate(PERSIAN)}"]
    for n, at in enumerate(OUTSIDE):
        for m, text in enumerate(texts):
            replies: list[Outbound] = await app.router.handle(
                inbound(text, at, identity=f"{n:04x}{m:04x}ab"))
            assert [(r.kind, r.text) for r in replies] == [("transfer.closed", closed)], \
                (text, at)
    assert await everything(app) == before


async def test_a_command_decided_inside_the_window_is_answered_as_decided_after_it(
        windowed: App) -> None:
    """Held: a transfer and a PIN change decided just before closing time, delivered
    again after it, get what was decided; applied once; money conserved."""
    app = windowed
    await funded(app)
    money = (await everything(app))["money"]
    inside = CLOSE - timedelta(seconds=1)
    sent = await app.router.handle(inbound(f"09351234567:2500:{PIN}", inside, "d1"))
    assert sent[0].kind == "transfer.sent"
    again = await app.router.handle(inbound(f"09351234567:2500:{PIN}", CLOSE, "d1"))
    assert [(r.to, r.text) for r in again] == [(r.to, r.text) for r in sent]
    refused = await app.router.handle(inbound("PIN:11111:55555:55555", inside, "d2"))
    assert refused[0].kind != "transfer.closed"
    refused_again = await app.router.handle(inbound("PIN:11111:55555:55555", CLOSE, "d2"))
    assert [r.text for r in refused_again] == [r.text for r in refused]
    changed = await app.router.handle(inbound(f"PIN:{PIN}:55555:55555", inside, "d3"))
    assert changed[0].kind == "transfer.pin_changed"
    changed_again = await app.router.handle(inbound(f"PIN:{PIN}:55555:55555", CLOSE, "d3"))
    assert [r.text for r in changed_again] == [r.text for r in changed]
    after = await everything(app)
    assert int(after["recipient"]["balance"]) == 2500
    assert after["money"] == money
    # and a command first seen after closing time, with a fresh id: closed
    late = await app.router.handle(inbound("09351234567:2500:55555", CLOSE, "d4"))
    assert [r.kind for r in late] == ["transfer.closed"]
    assert int((await everything(app))["recipient"]["balance"]) == 2500
