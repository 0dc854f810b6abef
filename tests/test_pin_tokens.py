"""A message log's PIN token is no PIN on the wire: it counts only inside `smsgw replay`.

Whoever holds a subscriber's phone and a copy of the log must not be able to send the
token instead of the PIN (over SMPP, or any transport), nor set a PIN that is a token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.app import App, build_app
from smsgw.core.hashing import Hasher
from smsgw.messages import Inbound
from smsgw.services.transfer.parse import FormatError, parse_transfer_command
from smsgw.services.transfer.service import TEMPLATES as TRANSFER_TEMPLATES
from smsgw.store.keys import subscriber_key
from smsgw.transport.log_replay import inbound_of
from smsgw.transport.msglog import LoggedMessage
from tests.attacks import tried
from tests.conftest import TEST_KEY, add_subscribers, make_settings
from tests.test_masking import NOON
from tests.test_smpp_gateway import ALI, SARA, start_rig, stop_rig

ZEROS = "h~" + "0" * 32


def token_of(hasher: Hasher, pin: str) -> str:
    return "h~" + hasher.pin_digest(ALI, pin)


async def test_a_token_over_smpp_transfers_nothing_and_sets_no_pin(redis_url: str,
                                                                    tmp_path: Path) -> None:
    rig = await start_rig(redis_url, tmp_path)
    try:
        token = token_of(rig.app.hasher, "55555")  # ALI's PIN, as the log writes it
        stored_pin = await rig.app.store.redis.hget(subscriber_key(ALI), "pin")
        for text, error in ((f"09351234567:3000:{token}", "bad_pin"),
                            (f"PIN:{token}:{ZEROS}:{ZEROS}", "bad_pin"),
                            (f"PIN:55555:{ZEROS}:{ZEROS}", "bad_new_pin")):
            before = len(rig.smsc.mt)
            await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", text))
            reply = (await rig.smsc.wait_mt(before + 1))[-1]
            assert reply.text == TRANSFER_TEMPLATES.render("fa", "format", error), text
        assert await rig.balance(ALI) == 50_000 and await rig.balance(SARA) == 0
        assert await rig.app.store.redis.hget(subscriber_key(ALI), "pin") == stored_pin
    finally:
        await stop_rig(rig)


@pytest.fixture
async def store_app(store_url: str) -> AsyncIterator[App]:
    app = build_app(make_settings(store_url))
    yield app
    await app.close()


async def people(app: App) -> None:
    await add_subscribers(app.store, (ALI, "prepaid", 50_000, 0), (SARA, "prepaid", 0, 0))
    await app.store.redis.hset(subscriber_key(ALI), "pin", app.hasher.pin_digest(ALI, "55555"))


async def test_a_token_counts_only_in_replay(app: App) -> None:
    await people(app)
    token = token_of(app.hasher, "55555")
    wire = Inbound(ALI, "1112", f"09351234567:3000:{token}", NOON)
    assert [r.kind for r in await app.router.handle(wire)] == ["format.bad_pin"]
    assert int((await app.store.subscriber(SARA))["balance"]) == 0
    record = LoggedMessage(1, NOON, ALI, "1112", wire.text, "mo-1", None)
    replayed = await app.router.handle(inbound_of(app.hasher, record, 60))
    assert [r.kind for r in replayed] == ["transfer.sent", "transfer.received_prepaid"]


def test_the_hasher_takes_no_token_for_a_pin() -> None:
    hasher = Hasher(TEST_KEY)
    for not_a_pin in (token_of(hasher, "55555"), ZEROS, "1234", "123456789", "۱۲۳۴۵", "12 45"):
        with pytest.raises(ValueError):
            hasher.pin_digest(ALI, not_a_pin)
    assert len(hasher.pin_digest(ALI, "55555")) == 32


hex_tokens = st.one_of(st.from_regex(r"h~[0-9a-f]{32}", fullmatch=True),
                       st.just(token_of(Hasher(TEST_KEY), "55555")))
positions = st.sampled_from(["transfer", "old", "new", "both"])


def with_token(position: str, token: str) -> tuple[str, FormatError]:
    return {
        "transfer": (f"09351234567:3000:{token}", FormatError.BAD_PIN),
        "old": (f"PIN:{token}:66666:66666", FormatError.BAD_PIN),
        "new": (f"PIN:55555:{token}:66666", FormatError.BAD_NEW_PIN),
        "both": (f"PIN:55555:{token}:{token}", FormatError.BAD_NEW_PIN),
    }[position]


@settings(max_examples=1000, deadline=None)
@given(position=positions, token=hex_tokens, spaced=st.booleans())
def test_generated_tokens_in_every_pin_position_are_format_errors(position: str, token: str,
                                                                   spaced: bool) -> None:
    tried("a log token is no PIN on the wire (parse)")
    text, error = with_token(position, token)
    if spaced:
        text = text.replace(":", " : ").replace("~", " ~ ")
    assert parse_transfer_command(text) == error


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=positions, token=hex_tokens)
async def test_generated_tokens_change_nothing_in_the_store(store_app: App, position: str,
                                                            token: str) -> None:
    tried("a log token is no PIN on the wire (store)")
    app = store_app
    await app.store.redis.flushdb()
    await people(app)
    text, error = with_token(position, token)
    got = await app.router.handle(Inbound(ALI, "1112", text, NOON))
    assert [r.kind for r in got] == [f"format.{error.value}"]
    subscriber = await app.store.subscriber(ALI)
    assert int(subscriber["balance"]) == 50_000
    assert subscriber["pin"] == app.hasher.pin_digest(ALI, "55555")
