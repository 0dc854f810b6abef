"""The outside attack on smsgw's secrecy promises (README "Security"; interfaces.md's
message log rule): no PIN, OTP or full card number in the message log, replay's output,
the outbox rows and listings, the console's traffic, the service log or what Redis keeps.

An attacker who read the code looked for a path where a text, or a part of one, reaches
a log or a stored row without passing the masker (core/masking.py). Three broke, each
mended since (its docstring says how it broke): a card number in a merchant name past
its check, a concatenated command's parts in clear in Redis, an amount typed like a PIN
shown by its confirmation. The rest are hostile cases that held, kept as tests.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.core import masking
from smsgw.core.clock import parse_timestamp
from smsgw.core.hashing import Hasher
from smsgw.core.text import normalise
from smsgw.messages import Inbound, Outbound
from smsgw.store.keys import subscriber_key
from smsgw.transport.http_api import make_app
from smsgw.transport.log_replay import previous_replies, replay
from smsgw.transport.msglog import format_record, reply_line
from smsgw.transport.outbox import listing
from smsgw.transport.reassembly import PART_STATUSES, Reassembly
from smsgw.transport.smpp.client import WireMessage
from smsgw.transport.smpp.pdu import ESME_RX_P_APPN
from tests.attacks import tried
from tests.conftest import add_subscribers, make_settings
from tests.deliveries import kept_in
from tests.test_attack_held import memory_of, outbox_of, routed
from tests.test_no_secrets import store_text
from tests.test_otp_rules import CARD, MOBILE, T0

SENDER, RECIPIENT = "989121110000", "989351234567"
KEY = "attack-secrets-key"
AT = parse_timestamp("2026-07-23T10:00:00+03:30")
PIN_TOKEN = re.compile(r"h~[0-9a-f]{32}")


@pytest.fixture
async def server(store_url: str) -> AsyncIterator[App]:
    application = build_app(make_settings(store_url))
    yield application
    await application.close()


async def funded(app: App, pin: str, balance: int = 1_000_000) -> None:
    await add_subscribers(app.store, (SENDER, "prepaid", balance, 0),
                          (RECIPIENT, "prepaid", 0, 0))
    await app.store.redis.hset(subscriber_key(SENDER), "pin",
                               app.hasher.pin_digest(SENDER, pin))


async def dump(app: App) -> str:
    """Everything Redis keeps, as text."""
    return await store_text(app.store.redis)


def digits_shown(text: str) -> str:
    """A text's digits as a reader sees them: Persian/Arabic digits as ASCII, thousands
    separators gone, PIN tokens (hex) left out."""
    return normalise(PIN_TOKEN.sub("~", text)).replace(",", "")


def holds_number(text: str, digits: str) -> bool:
    return re.search(rf"(?<![0-9]){re.escape(digits)}(?![0-9])", digits_shown(text)) is not None


# -- 1. the merchant name: a full card number in the OTP SMS, the log, the outbox ----------

@dataclass
class Api:
    client: TestClient  # type: ignore[type-arg]
    app: App
    sent: list[Outbound] = field(default_factory=list)

    async def otp(self, merchant: str) -> tuple[int, Any]:
        response = await self.client.post(
            "/v1/otp", json={"card": CARD, "amount": 1000, "merchant": merchant},
            headers={"Authorization": f"Bearer {KEY}"})
        return response.status, await response.json()


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[Api]:
    app = build_app(make_settings(redis_url, otp={  # every request may send its SMS
        "resend_after_seconds": 0, "max_per_card_per_hour": 10**6,
        "max_per_mobile_per_hour": 10**6}))
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "static-pw", T0)
    sent: list[Outbound] = []

    async def health() -> dict[str, Any]:
        return {"store": True}

    client = TestClient(TestServer(make_app(app.otp, KEY, kept_in(sent), lambda: T0, health)))
    await client.start_server()
    yield Api(client, app, sent)
    await client.close()
    await app.close()


def card_digits_in(text: str) -> bool:
    """Whether the card's 16 digits can be read in `text`: digits of any script (a
    look-alike too), whatever stands between them but a letter."""
    mapped = "".join(str(unicodedata.digit(ch)) if unicodedata.digit(ch, None) is not None
                     else ch for ch in text)
    return CARD in re.sub(r"[\W_]", "", mapped)


SMUGGLED = {
    "tabs": "Shop {0}\t{1}\t{2}\t{3}",
    "a word joiner": "Shop {0}\u2060{1}\u2060{2}\u2060{3}",
    "two spaces": "Shop {0}  {1}  {2}  {3}",
    "commas": "Shop {0},{1},{2},{3}",
    "spaced dashes": "Shop {0} - {1} - {2} - {3}",
    "fullwidth digits": "Shop {4}",
}


@pytest.mark.parametrize("how", list(SMUGGLED))
async def test_a_card_number_in_the_merchant_name_is_refused_whatever_its_separators(
        api: Api, how: str) -> None:
    """Breaks "no full card number in the message log" (and the outbox rows, `admin
    outbox`, the console's traffic): /v1/otp refuses a merchant holding 12 or more digits
    in a row, but checks `normalise(merchant)` with at most one of ` .-_/` between digits,
    while the SMS shows `printable(merchant)`, which drops control and format characters
    (a tab, U+2060) and squeezes runs of spaces. So `Shop 6279\\t6112\\t3456\\t7894` is
    accepted and the OTP SMS, and with it the message log's reply record, reads `Shop
    6279611234567894`; two spaces, commas, ` - ` or fullwidth digits pass the same way."""
    groups = [CARD[i:i + 4] for i in range(0, 16, 4)]
    fullwidth = CARD.translate({ord(str(i)): chr(0xFF10 + i) for i in range(10)})
    merchant = SMUGGLED[how].format(*groups, fullwidth)
    status, answer = await api.otp(merchant)
    logged = [masking.reply_text(reply) for reply in api.sent]
    assert not any(card_digits_in(text) for text in logged), (how, logged)
    assert status == 400, (how, status, answer)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(separator=st.lists(st.sampled_from(
    [" ", "  ", "\t", "\u2060", "\u200b", ",", ".", "-", " - ", "/", "_", "\u00a0", "·"]),
    min_size=15, max_size=15))
async def test_generated_separators_never_smuggle_a_card_number_into_the_sms(
        api: Api, separator: list[str]) -> None:
    """The same as above, generated: a card number with any separators between its
    digits, as a merchant name, must be refused or shown without the card's 16 digits
    (it is accepted, and the SMS shows them)."""
    tried("no card number in the merchant")
    merchant = "Shop " + "".join(d + s for d, s in zip(CARD, [*separator, ""], strict=True))
    api.sent.clear()
    status, _ = await api.otp(merchant)
    logged = [masking.reply_text(reply) for reply in api.sent]
    assert status == 400 or not any(card_digits_in(text) for text in logged), merchant


async def test_a_merchant_with_short_numbers_is_still_accepted(api: Api) -> None:
    """Held: a merchant name with a few short numbers in it (a branch, a phone extension)
    is no card number and goes through."""
    for merchant in ("Shop 24", "Digikala branch 12, gate 3", "Cafe 1404/05"):
        status, _ = await api.otp(merchant)
        assert status == 202, merchant


# -- 2. a concatenated message's parts, kept in Redis while the rest is awaited ---------

async def test_a_part_waiting_for_the_rest_is_sealed_in_redis(server: App) -> None:
    """Broke "a PIN in the store is only its keyed digest" (README "What lives in Redis:
    ... No clear PIN"): add_part.lua kept each part's text as it came, so a 1112 command
    sent as a concatenated SMS (`09351234567:2500:48213907` then a part that never
    comes, or one still in flight) had the PIN in clear in Redis for the parts' lifetime
    (the redelivery window, at least 60 s). Now each part is sealed with the hash key
    while it waits (transport/reassembly.py)."""
    parts = Reassembly(server.store, server.hasher, window_seconds=60)
    text = "09351234567:2500:48213907"
    first = WireMessage(SENDER, "1112", text, None, (7, 1, 2))
    assembly = await parts.add(first, SENDER, "s1")
    assert assembly.state == "partial"
    assert "48213907" not in await dump(server), "the PIN is in Redis in clear"
    rest = WireMessage(SENDER, "1112", "", None, (7, 2, 2))
    whole = await parts.add(rest, SENDER, "s1")
    assert (whole.state, whole.text) == ("whole", text)


async def test_a_part_sealed_with_another_key_is_refused_for_good(server: App) -> None:
    """The hash key rotated while a part waited: the whole cannot be opened; it is
    refused (ESME_RX_P_APPN: the SMSC does not deliver it again), never read as text."""
    first = WireMessage(SENDER, "1112", "09351234567:2500:", None, (8, 1, 2))
    assert (await Reassembly(server.store, Hasher("an-old-key-0123456789abcdef"), 60)
            .add(first, SENDER, "s1")).state == "partial"
    rest = WireMessage(SENDER, "1112", "48213907", None, (8, 2, 2))
    whole = await Reassembly(server.store, server.hasher, 60).add(rest, SENDER, "s1")
    assert whole.state == "unreadable" and PART_STATUSES[whole.state] == ESME_RX_P_APPN


async def test_parts_are_gone_once_the_command_is_applied(server: App) -> None:
    """Held: once the whole is in and applied (`forget`), nothing of it stays."""
    parts = Reassembly(server.store, server.hasher, window_seconds=60)
    messages = [WireMessage(SENDER, "1112", piece, None, (9, n, 2))
                for n, piece in enumerate(("09351234567:2500:", "48213907"), start=1)]
    assert (await parts.add(messages[0], SENDER, "s1")).state == "partial"
    whole = await parts.add(messages[1], SENDER, "s1")
    assert whole.state == "whole" and whole.text == "09351234567:2500:48213907"
    await parts.forget(messages[1], SENDER)
    assert "48213907" not in await dump(server)


# -- 3. an amount typed like a PIN: the inbound record hides it, the reply shows it -------

async def test_an_amount_typed_like_a_pin_is_refused_so_no_reply_shows_it(
        server: App) -> None:
    """Broke "no PIN in the message log, wherever it was typed (in the amount's place
    too)": an amount typed like a PIN with a leading zero was logged as the minimum, yet
    when the transfer went through (the subscriber typed the PIN twice:
    `number:07319:07319`) the confirmation, logged beside it and kept in the outbox
    row's outcome, said `7,319 rials`: the PIN but for its leading zero; and the
    subscriber had sent 7,319 rials by mistake. Now an amount has no leading zero
    (transfer.lark): a bad amount, nothing moves, no reply names a sum."""
    pin = "07319"
    await funded(server, pin)
    outbox = outbox_of(server)
    before = await server.store.money()
    inbound, replies, _ = await routed(server, outbox, memory_of(server),
                                       f"09351234567:{pin}:{pin}", "s1")
    assert [reply.kind for reply in replies] == ["format.bad_amount"]
    logged = [masking.inbound_text(inbound, server.router.log_view(inbound), server.hasher),
              *(masking.reply_text(reply) for reply in replies)]
    leaked = [text for text in logged if holds_number(text, "7319")]
    assert leaked == [], f"the PIN's digits in the log: {leaked}"
    assert await server.store.money() == before


# -- 4. hostile 1112 texts: the masker, generated (held) ---------------------------------

PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
NOISE = ["", " ", "\u200c", "\u200f", "\u200b", "\ufeff", "\u00ad", "\u2066"]
COLONS = [":", "：", "꞉", "∶", "؛", " : "]


def pin_strategy() -> st.SearchStrategy[str]:
    """PINs the masker must hide wherever they stand: any of 5-8 digits but those it
    cannot tell from an amount (within min..max, no leading zero: README's limit)."""
    return st.from_regex(r"[0-9]{5,8}", fullmatch=True).filter(
        lambda pin: pin.startswith("0") or not 1000 <= int(pin) <= 10000)


@st.composite
def hostile_text(draw: st.DrawFn) -> tuple[str, str]:
    pin = draw(pin_strategy())
    recipient = draw(st.sampled_from(["09351234567", "+989351234567", "9351234567", "0935"]))
    amount = draw(st.sampled_from(["2500", "2,500", "0", "99999999", ""]))
    shapes = [[recipient, amount, pin], [recipient, pin, amount], [pin, recipient, amount],
              ["PIN", pin, pin, pin], ["pin", "12345", pin, pin], ["رمز", pin, "55555", pin],
              [recipient, amount, pin, pin], [pin], [recipient, amount, pin[:3], pin[3:]]]
    fields = draw(st.sampled_from(shapes))
    script = draw(st.sampled_from([None, PERSIAN, ARABIC]))

    def dressed(part: str) -> str:
        part = part.translate(script) if script is not None else part
        noise = draw(st.sampled_from(NOISE))
        cut = draw(st.integers(0, len(part)))
        return part[:cut] + noise + part[cut:]

    text = dressed(fields[0])
    for part in fields[1:]:
        text += draw(st.sampled_from(COLONS)) + dressed(part)
    return text, pin


@settings(max_examples=150, deadline=None)
@given(case=hostile_text())
def test_generated_hostile_texts_show_no_pin_in_the_message_log(case: tuple[str, str]) -> None:
    """Held: a PIN placed anywhere in a 1112 text (the amount's place, the recipient's, a
    PIN change's fields, split by a colon), in Persian or Arabic digits, with zero-width
    marks, stray spaces and look-alike colons, is not in the text the log shows."""
    tried("no PIN in the message log (attack-secrets)")
    text, pin = case
    inbound = Inbound(SENDER, "1112", text, AT, msg_id="m1")
    shown = masking.inbound_text(inbound, STATIC_APP.router.log_view(inbound),
                                 STATIC_APP.hasher)
    assert not holds_number(shown, pin), (text, shown)


STATIC_APP = build_app(make_settings(""))


@pytest.mark.parametrize("to", ["1113", "7000", "9999", "1112"])
def test_every_destination_hides_a_pin_typed_anywhere(to: str) -> None:
    """Held: a PIN texted to the enquiry code, the OTP code or an unknown code is hidden
    (no view: every digit hidden; the OTP view shows a valid request only)."""
    for text in ("BAL 48213907", "OTP 48213907", "رمز پویا ۴۸۲۱۳۹۰۷", "48213907",
                 "OTP:6279611234567894", "hist ٤٨٢١٣٩٠٧"):
        inbound = Inbound(SENDER, to, text, AT, msg_id="m1")
        shown = masking.inbound_text(inbound, STATIC_APP.router.log_view(inbound),
                                     STATIC_APP.hasher)
        assert not holds_number(shown, "48213907") and "6279611234567894" not in shown


# -- 5. replay, its report, and the outbox listing (held) ----------------------------------

async def test_replay_and_its_report_of_a_raw_log_show_no_pin(server: App) -> None:
    """Held: a raw log (written by hand, PINs in clear) replayed with `--compare`: the
    replies written and the report of differences show the text masked."""
    pin = "48213907"
    await funded(server, pin)
    lines = [format_record(AT, SENDER, "1112", f"09351234567:2500:{pin}", "mo-1"),
             format_record(AT, SENDER, "1112", f"09351234567:{pin}:2500", "mo-2"),
             format_record(AT, SENDER, "1112", f"PIN:{pin}:{pin}0:{pin}0", "mo-3"),
             reply_line(AT, Outbound(SENDER, "1112", "something else", "x"), "r1", "mo-1"),
             reply_line(AT, Outbound(SENDER, "1112", "something else", "x"), "r2", "mo-2"),
             reply_line(AT, Outbound(SENDER, "1112", "something else", "x"), "r3", "mo-3")]
    out, report = io.StringIO(), io.StringIO()
    summary = await replay(server.router, server.hasher, lines, out, report,
                           before=previous_replies(lines, server.hasher))
    assert summary.differing == 3
    for written in (out.getvalue(), report.getvalue()):
        assert not holds_number(written, pin), written


async def test_the_outbox_rows_and_listing_show_no_pin(server: App) -> None:
    """Held: a held transfer's and a refused PIN change's rows, in Redis and in `admin
    outbox`, hold the PIN as its token only."""
    pin = "48213907"
    await funded(server, pin)
    outbox = outbox_of(server)
    memory = memory_of(server)
    for number, text in enumerate((f"09351234567:2500:{pin}", f"PIN:{pin}:{pin}1:{pin}1",
                                   f"09351234567:{pin}:{pin}", f"0{pin}:2500:{pin}"), 1):
        await routed(server, outbox, memory, text, f"s{number}")
    rows = await listing(server.store, server.hasher, server.settings,
                         render=server.router.replies_for)
    assert rows
    assert not holds_number(json.dumps(rows, ensure_ascii=False), pin)
    assert not holds_number(await dump(server), pin)
