"""The message log holds no secret, and replay stays faithful (smsgw/masking.py).

For texts to 1112, 7000 and a code with no service: the masked text shows no PIN, no
card number and no run of digits beyond a valid recipient, amount or last four; and
read back from a log (as `smsgw replay` reads it), it gets the same replies as the
original did on the wire. On a corpus of malformed texts, and on generated ones.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.core import masking
from smsgw.core.clock import parse_timestamp
from smsgw.core.hashing import Hasher
from smsgw.core.money import MONEY_CEILING
from smsgw.core.pins import LoggedPin
from smsgw.core.text import looks_like_digit
from smsgw.messages import Inbound, Outbound
from smsgw.services.transfer.parse import (
    FormatError,
    PinChange,
    Role,
    Transfer,
    command_fields,
    parse_transfer_command,
)
from smsgw.store.keys import subscriber_key
from smsgw.transport.log_replay import inbound_of
from smsgw.transport.msglog import LoggedMessage
from tests.attacks import tried
from tests.conftest import TEST_KEY, add_subscribers, make_settings
from tests.test_smpp_gateway import ALI, SARA

NOON = parse_timestamp("2026-07-23T12:00:00+03:30")
CARD = "6279611234567894"
DESTINATIONS = ("1112", "7000", "5555")  # transfer, OTP, no service
TOKEN = re.compile(r"h~[0-9a-f]{32}")

CORPUS = [
    # well-formed, in every way people type them
    "09351234567:10000:55555", "09351234567 10000 12345678", "۰۹۳۵۱۲۳۴۵۶۷:۱۰٬۰۰۰:۵۵۵۵۵",
    "PIN:55555:66666:66666", "PIN 12345678 55555 55555", "رمز:55555:66666:66666",
    # separators that are no colons
    "09351234567-10000-12345678", "09351234567.10000.12345678", "09351234567/10000/55555",
    "PIN-12345678-55555-55555", "PIN.12345678.55555.55555", "09351234567,10000,55555",
    # missing or extra parts
    "09351234567", "09351234567:1000", ":1000:12345678", "09351234567::12345678",
    "09351234567:1000:", "PIN:12345678", "PIN::55555:55555", "PIN:12345678::55555",
    "09351234567:1000:12345678:9", "PIN:12345678:55555:55555:55555", ":", "::", "",
    # wrong parts
    "0935123456:1000:12345678", "12345678:1000:09351234567", "09351234567:12345678:1000",
    "09351234567:1o00:12345678", "09351234567:-1000:12345678", "09351234567:10,00:55555",
    "09351234567:1000:1234", "09351234567:1000:123456789", "09351234567:1000:12a45678",
    "PIN:1234:55555:55555", "PIN:12345678:5555:5555", "PIN:12345678:123456789:123456789",
    "PIN:12345678:55555:55556", "PIN:12345678:55555:5555a", "0935123456:1o00:1234",
    "09351234567:" + "9" * 20 + ":55555", "09351234567:" + "9" * 6000 + ":55555",
    # letters, other scripts, digit look-alikes
    "salam 12345678", "سلام ۱۲۳۴۵۶۷۸", "hello", "09351234567:1000:1234²", "①2345:1000:55555",
    "०९३५१२३४५६७:1000:55555", "０９３５１２３４５６７:1000:55555", "+989351234567:1000:55555",
    "*123*55555#", "PIN12345678", "pin:h~" + "a" * 32 + ":h~" + "a" * 32 + ":h~" + "a" * 32,
    "09351234567:1000:h~" + "0" * 32, "09351234567:1000:h~" + "a" * 32,
    # OTP requests and their mistakes
    "OTP", "otp 7894", "OTP:7894", "رمز پویا ۷۸۹۴", "OTP 6279611234567894", "OTP:78945",
    "OTP:789", "OTP " + CARD[:6] + " " + CARD[6:], "رمز پویا 12345678",
]


async def reset(app: App) -> None:
    """The same store state before the live message and before its replay."""
    await app.store.redis.flushdb()
    await add_subscribers(app.store, (ALI, "prepaid", 50_000, 0), (SARA, "prepaid", 0, 0))
    await app.store.redis.hset(subscriber_key(ALI), "pin", app.hasher.pin_digest(ALI, "55555"))
    await admin.card_add(app.store, app.hasher, CARD, ALI, "debit", "static-pw", NOON)


def shown(replies: list[Outbound]) -> list[tuple[str, str, str]]:
    return [(reply.to, reply.kind, masking.reply_text(reply)) for reply in replies]


async def live_and_replayed(app: App, to: str, text: str,
                            at: datetime = NOON) -> tuple[str, list[Outbound], list[Outbound]]:
    """The masked text, the replies on the wire, and the replies to its log record."""
    await reset(app)
    live = Inbound(ALI, to, text, at, msg_id="mo-1",
                   identity=app.hasher.message_identity("id", ALI, "mo-1"), remember_seconds=60)
    masked = masking.inbound_text(live, app.router.log_view(live), app.hasher)
    live_replies = await app.router.handle(live)
    await reset(app)
    record = LoggedMessage(1, at, ALI, to, masked, "mo-1", None)
    replayed = await app.router.handle(inbound_of(app.hasher, record, 60))
    return masked, live_replies, replayed


def assert_no_secret(to: str, text: str, masked: str) -> None:
    """(a): no PIN, no card, no run of more than 4 digits outside what may be shown."""
    visible = masked
    if to == "1112":
        parsed = command_fields(text)
        parts = masked.split(":")
        for index, field in enumerate(parsed.fields):
            if field.valid and field.role in (Role.RECIPIENT, Role.AMOUNT):
                # an amount beyond min..max is shown as a stand-in (it may be a PIN)
                stand_ins = ("0", str(MONEY_CEILING)) if field.role is Role.AMOUNT else ()
                assert parts[index] in (field.text, *stand_ins)
                parts[index] = ""  # a valid recipient and amount may be shown
        visible = ":".join(parts)
    visible = TOKEN.sub("", visible)
    runs = re.findall(r"\d+", "".join("0" if looks_like_digit(c) else " " for c in visible))
    assert all(len(run) <= 4 for run in runs), (text, masked)
    if to != "7000" or "*" in masked:
        assert all(len(run) <= 1 for run in runs), (text, masked)  # at most a stand-in 0
    for secret in re.findall(r"[0-9]{5,}", text):
        assert secret not in TOKEN.sub("", visible), (text, masked)


@pytest.fixture
async def store_app(store_url: str) -> AsyncIterator[App]:
    app = build_app(make_settings(store_url))
    yield app
    await app.close()


@pytest.mark.parametrize("to", DESTINATIONS)
async def test_corpus_masked_holds_no_secret_and_replays_the_same(store_app: App,
                                                                  to: str) -> None:
    for text in CORPUS:
        masked, live, replayed = await live_and_replayed(store_app, to, text)
        assert_no_secret(to, text, masked)
        assert shown(replayed) == shown(live), (to, text, masked)


def test_the_audit_examples_are_masked() -> None:
    app = build_app(make_settings(""))
    for to, text, expected in [
        ("1112", "09351234567 10000 12345678", "0" + "*" * 23),
        ("1112", "PIN 12345678 55555 55555", "PIN" + "*" * 18),
        ("1112", "09351234567-10000-12345678", "0**********-*****-********"),
        ("1112", "09351234567.10000.12345678", "0**********.*****.********"),
        ("7000", "09351234567:10000:12345678", "***********:*****:********"),
        ("5555", "09351234567:10000:12345678", "***********:*****:********"),
        ("7000", "OTP 6279611234567894", "OTP ****************"),
        ("7000", "OTP:7894", "OTP:7894"),
    ]:
        message = Inbound(ALI, to, text, NOON)
        assert masking.inbound_text(message, app.router.log_view(message), app.hasher) \
            == expected


def test_a_valid_transfer_shows_recipient_and_amount_and_a_token() -> None:
    app = build_app(make_settings(""))
    message = Inbound(ALI, "1112", " ۰۹۳۵۱۲۳۴۵۶۷ : 10,000 : 12345678", NOON)
    masked = masking.inbound_text(message, app.router.log_view(message), app.hasher)
    assert masked == "09351234567:10,000:h~" + app.hasher.pin_digest(ALI, "12345678")
    change = Inbound(ALI, "1112", "PIN:12345678:55555:55556", NOON)  # a mismatch: tokens
    masked = masking.inbound_text(change, app.router.log_view(change), app.hasher)
    assert masked.count("h~") == 3 and "55555" not in masked and "12345678" not in masked


@settings(max_examples=60, deadline=None)
@given(pin=st.from_regex(r"[0-9]{5,8}", fullmatch=True), change=st.booleans())
def test_a_pin_token_is_its_own_senders_digest_even_on_a_shared_parse(pin: str,
                                                                     change: bool) -> None:
    """A PIN is hashed once per message and kept with its parse; a copy of the message
    for another sender (which shares the parse) still gets that sender's digest, in the
    log's token as in the store call."""
    tried("a PIN token is its own sender's digest (shared parse)")
    app = _app()
    text = f"PIN:{pin}:{pin}:{pin}" if change else f"09351234567:10000:{pin}"
    first = Inbound(ALI, "1112", text, NOON)
    view = app.router.log_view(first)
    assert masking.inbound_text(first, view, app.hasher).endswith(
        "h~" + app.hasher.pin_digest(ALI, pin))
    copy = dataclasses.replace(first, sender=SARA)  # the same `parsed` dict
    assert copy.parsed is first.parsed
    masked = masking.inbound_text(copy, view, app.hasher)
    assert set(TOKEN.findall(masked)) == {"h~" + app.hasher.pin_digest(SARA, pin)}


def test_a_reply_secret_is_six_stars() -> None:
    reply = Outbound(ALI, "7000", "رمز پویا: 012345\nکارت ۷۸۹۴", "otp.sms_card", secret="012345")
    assert masking.reply_text(reply) == "رمز پویا: ******\nکارت ۷۸۹۴"


# -- generated texts --------------------------------------------------------------------

mobiles = st.sampled_from(["09351234567", "9351234567", "+989351234567", "00989351234567",
                           "989351234567", "0935123456", "02188776655", "۰۹۳۵۱۲۳۴۵۶۷"])
numbers = st.from_regex(r"[0-9]{1,20}", fullmatch=True)
amounts = st.one_of(st.integers(0, 10**17).map(str), st.integers(0, 10**9).map("{:,}".format),
                    numbers, st.sampled_from(["1o00", "-1000", "10,00", "1.5", "9" * 40]))
pins = st.one_of(st.from_regex(r"[0-9]{3,10}", fullmatch=True), st.just("55555"),
                 st.from_regex(r"h~[0-9a-f]{30,33}", fullmatch=True))
noise = st.text(alphabet="0123456789۰۱۲۳۴۵۶۷۸۹٠١²①१１abcOTPpin رمزپویا+-.,:~h*", max_size=12)
field = st.one_of(mobiles, amounts, pins, noise, st.just(""), st.sampled_from(
    ["PIN", "pin", "رمز", "OTP", "رمز پویا", CARD, CARD[-4:]]))
separators = st.sampled_from([":", ":", ":", " ", "-", ".", " : ", "：", "؛", ""])


@st.composite
def texts(draw: st.DrawFn) -> str:
    fields = draw(st.lists(field, min_size=1, max_size=6))
    text = fields[0]
    for part in fields[1:]:
        text += draw(separators) + part
    return text


@settings(max_examples=1500, deadline=None)
@given(to=st.sampled_from(DESTINATIONS), text=st.one_of(texts(), st.text(max_size=40)))
def test_generated_masked_texts_parse_the_same_and_hold_no_secret(to: str, text: str) -> None:
    tried("the message log holds no secret (parse)")
    hasher = Hasher(TEST_KEY)
    app = _app()
    message = Inbound(ALI, to, text, NOON)
    masked = masking.inbound_text(message, app.router.log_view(message), hasher)
    assert_no_secret(to, text, masked)
    if to == "1112":
        assert same_command(parse_transfer_command(text),
                            parse_transfer_command(masked, from_log=True), hasher)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(to=st.sampled_from(DESTINATIONS), text=texts())
async def test_generated_texts_replay_to_the_same_replies(store_app: App, to: str,
                                                          text: str) -> None:
    tried("replay of the masked log is faithful")
    masked, live, replayed = await live_and_replayed(store_app, to, text)
    assert_no_secret(to, text, masked)
    assert shown(replayed) == shown(live), (to, text, masked)


async def test_an_amount_with_a_leading_zero_is_refused_and_hidden(store_app: App) -> None:
    """`recipient:PIN:amount` with a PIN that starts with 0 (`07319`) is a PIN in the
    amount's place far more often than an amount: refused as a bad amount (nothing
    transferred, no reply shows it), and hidden in the log like any wrong part."""
    for text in ("09351234567:01234:5000", "09351234567:07319:07319",
                 "۰۹۳۵۱۲۳۴۵۶۷:۰۱۲۳۴:۵۵۵۵۵", "09351234567:01,000:55555"):
        masked, live, replayed = await live_and_replayed(store_app, "1112", text)
        assert [r.kind for r in live] == ["format.bad_amount"] == [r.kind for r in replayed]
        assert not any(pin in masked for pin in ("01234", "07319", "01,000", "۰۱۲۳۴")), masked


_APP: list[App] = []


def _app() -> App:
    if not _APP:
        _APP.append(build_app(make_settings("")))
    return _APP[0]


def amount_side(amount: int) -> int | str:
    """An amount as its replies see it: itself within min..max, else only its side."""
    limits = _app().settings.transfer
    if amount < limits.min_amount:
        return "below"
    return "above" if amount > limits.max_amount else amount


def same_command(wire: object, logged: object, hasher: Hasher) -> bool:
    """The log's reading of a masked text is the wire's reading of the original."""
    def digest(pin: object) -> object:
        return pin.digest if isinstance(pin, LoggedPin) else hasher.pin_digest(ALI, str(pin))

    if isinstance(wire, FormatError):
        return wire == logged
    if isinstance(wire, Transfer) and isinstance(logged, Transfer):
        return ((wire.recipient, amount_side(wire.amount), digest(wire.pin))
                == (logged.recipient, amount_side(logged.amount), digest(logged.pin)))
    if isinstance(wire, PinChange) and isinstance(logged, PinChange):
        return ((digest(wire.old_pin), digest(wire.new_pin))
                == (digest(logged.old_pin), digest(logged.new_pin)))
    return False
