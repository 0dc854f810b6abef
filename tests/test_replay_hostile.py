"""replay against hostile logs, --compare without secrets, what counts as a digit, the
missing part named, absurd amounts; and a live gateway's log replays to the same replies.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.commands.main import main
from smsgw.core.clock import now
from smsgw.core.money import MONEY_CEILING
from smsgw.messages import Inbound
from smsgw.services.otp.parse import parse_otp_request
from smsgw.services.transfer.parse import FormatError, Transfer, parse_transfer_command
from smsgw.services.transfer.service import TEMPLATES as TRANSFER_TEMPLATES
from smsgw.store.keys import subscriber_key
from smsgw.transport.msglog import split_lines
from tests.attacks import tried
from tests.conftest import TEST_KEY, add_subscribers, make_settings
from tests.test_masking import CARD, CORPUS, DESTINATIONS, NOON, assert_no_secret
from tests.test_smpp_gateway import ALI, SARA, start_rig, stop_rig

EXAMPLES = Path(__file__).parent.parent / "examples"
TS = "2026-07-23T10:15:00+03:30"
Cli = Callable[..., Result]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Cli:
    monkeypatch.setenv("SMSGW_SECURITY_HASH_KEY", TEST_KEY)
    monkeypatch.setenv("SMSGW_REDIS_URL", redis_url)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def line(text: str, msg_id: str, sender: str = "09361111111", to: str = "1112",
         **extra: str) -> str:
    return json.dumps({"ts": TS, "from": sender, "to": to, "text": text, "id": msg_id, **extra},
                      ensure_ascii=False)


def test_replay_skips_hostile_lines_with_their_number_and_goes_on(cli: Cli,
                                                                  tmp_path: Path) -> None:
    log = tmp_path / "hostile.jsonl"
    log.write_text("\n".join([
        "[" * 5000 + "]" * 5000,  # RecursionError in json.loads, before
        line("x", "m2").replace('"x"', '"\\ud800"'),  # a lone surrogate: UnicodeEncodeError
        line("09351234567:" + "9" * 6000 + ":12345678", "m3"),  # ValueError from int()
        line("salam\u2028khubi", "m4"),  # one record: U+2028 ends no line
        json.dumps({"ts": "soon 12345678", "from": "1", "to": "2", "text": "x"}),
        line("09351234567:1000:12345678", "m6"),
    ]) + "\n", encoding="utf-8")
    result = cli("replay", str(log), "--subscribers", str(EXAMPLES / "subscribers.csv"))
    assert result.exit_code == 0, result.output
    for number in (1, 2, 5):
        assert f"line {number}: skipped" in result.stderr
    assert "12345678" not in result.stderr  # a reason never repeats the line
    answered = {r["in_reply_to"]: r["text"] for r in map(json.loads, result.stdout.splitlines())}
    assert answered["m3"] == TRANSFER_TEMPLATES.render("fa", "format", "bad_amount")
    assert answered["m4"] == TRANSFER_TEMPLATES.render("fa", "format", "not_a_command")
    assert "m6" in answered and "Traceback" not in result.output


def test_replay_compare_prints_no_otp_and_no_inbound_secret(cli: Cli, tmp_path: Path) -> None:
    assert cli("admin", "card", "add", CARD, "--mobile", "09361111111", "--type", "debit",
               "--static-password", "pw-1").exit_code == 0
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join([
        line("OTP", "o1", to="7000"),
        line("a reply of an older version", "o1.1", sender="7000", to="09361111111",
             in_reply_to="o1"),
        line("09351234567:1000:12345678", "t1"),
        line("an older reply", "t1.1", sender="1112", to="09361111111", in_reply_to="t1"),
    ]) + "\n", encoding="utf-8")
    result = cli("replay", str(log), "--compare", "--subscribers",
                 str(EXAMPLES / "subscribers.csv"), "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    assert "2 of 2 compared differ" in result.stderr
    now_lines = [text for text in result.stderr.splitlines() if "now    ->" in text]
    otp_line = next(text for text in now_lines if "پویا" in text)
    assert "******" in otp_line and not re.search(r"(?<![0-9])[0-9]{6}(?![0-9])", otp_line)
    assert "12345678" not in result.stderr and "h~" in result.stderr  # the inbound, masked


# -- what counts as a digit ------------------------------------------------------------


def _lookalikes() -> list[str]:
    counted = set("0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩")
    found = []
    for code in range(0x80, 0x30000):
        char = chr(code)
        if char in counted:
            continue
        if char.isdigit() or any(c in counted for c in unicodedata.normalize("NFKC", char)):
            found.append(char)
    return found


LOOKALIKES = _lookalikes()


@pytest.mark.parametrize("text", ["09351234567:1000:1234²", "09351234567:1000:①②③④⑤",
                                  "09351234567:1000:१२३४५", "09351234567:1000:１２３４５",
                                  "09351234567:1000:𝟏𝟐𝟑𝟒𝟓"])
def test_only_ascii_persian_and_arabic_digits_count(text: str) -> None:
    assert parse_transfer_command(text) == FormatError.BAD_PIN
    assert parse_transfer_command("０９３５１２３４５６７:1000:55555") == FormatError.BAD_RECIPIENT
    assert parse_transfer_command("۰۹۳۵۱۲۳۴۵۶۷:١٠٠٠:۵۵۵۵۵") == Transfer("989351234567", 1000,
                                                                     "55555")
    assert parse_otp_request("OTP:①②③④") is None and parse_otp_request("OTP:۱۲۳۴") is not None


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_a_digit_lookalike_anywhere_in_a_command_is_no_digit(data: st.DataObject) -> None:
    tried("only ASCII, Persian and Arabic-Indic digits count")
    text = "09351234567:10000:55555"
    digit_positions = [i for i, c in enumerate(text) if c.isdigit()]
    position = data.draw(st.sampled_from(digit_positions))
    lookalike = data.draw(st.sampled_from(LOOKALIKES))
    hostile = text[:position] + lookalike + text[position + 1:]
    assert isinstance(parse_transfer_command(hostile), FormatError), hostile
    assert parse_otp_request(f"OTP:123{lookalike}") is None


# -- the missing part named; absurd amounts ---------------------------------------------


@pytest.fixture
async def people(store_url: str) -> App:
    app = build_app(make_settings(store_url))
    await add_subscribers(app.store, (ALI, "prepaid", 50_000, 0), (SARA, "prepaid", 0, 0))
    await app.store.redis.hset(subscriber_key(ALI), "pin", app.hasher.pin_digest(ALI, "55555"))
    return app


@pytest.mark.parametrize("text, kind", [
    (":1000:55555", "format.missing_recipient"),
    ("09351234567::55555", "format.missing_amount"),
    ("09351234567:1000:", "format.missing_pin"),
    ("PIN:55555::66666", "format.missing_new_pin"),
    ("09351234567:" + "9" * 6000 + ":55555", "format.bad_amount"),
    (f"09351234567:{MONEY_CEILING + 1}:55555", "format.bad_amount"),
    (f"09351234567:{MONEY_CEILING}:55555", "transfer.above_max"),
])
async def test_the_wrong_part_is_named(people: App, text: str, kind: str) -> None:
    got = await people.router.handle(Inbound(ALI, "1112", text, NOON))
    assert [reply.kind for reply in got] == [kind]
    assert int((await people.store.subscriber(ALI))["balance"]) == 50_000
    await people.close()


def test_every_format_error_has_a_reply_in_both_languages() -> None:
    assert "گیرنده" in TRANSFER_TEMPLATES.render("fa", "format", "missing_recipient")
    for error in FormatError:
        for language in ("fa", "en"):
            assert TRANSFER_TEMPLATES.render(language, "format", error.value)


def test_log_lines_end_at_newlines_only() -> None:
    assert split_lines('{"text": "a\u2028b\x85c"}\r\n{}\n') == ['{"text": "a\u2028b\x85c"}',
                                                               "{}", ""]


# -- a live run's log replays to the same replies ----------------------------------------


async def seed(app: App) -> None:
    """The state start_rig makes, and a card for the OTP service."""
    await add_subscribers(app.store, (ALI, "prepaid", 50_000, 0), (SARA, "prepaid", 0, 0))
    await app.store.redis.hset(subscriber_key(ALI), "pin", app.hasher.pin_digest(ALI, "55555"))
    await admin.card_add(app.store, app.hasher, CARD, ALI, "debit", "static-pw", now())


async def test_replay_compare_of_a_live_log_finds_no_difference(
        redis_url: str, tmp_path: Path, cli: Cli) -> None:
    rig = await start_rig(redis_url, tmp_path)
    wire = [(to, text) for to in DESTINATIONS for text in CORPUS if len(text) < 300]
    try:
        await admin.card_add(rig.app.store, rig.app.hasher, CARD, ALI, "debit", "static-pw",
                             now())
        for to, text in wire:
            await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, to, text))
        await rig.gateway.settle()
    finally:
        await stop_rig(rig)
    records = [json.loads(r) for r in (tmp_path / "messages.jsonl").read_text().splitlines()]
    inbound = [record for record in records if "in_reply_to" not in record]
    assert len(inbound) == len(wire)
    for (to, text), record in zip(wire, inbound, strict=True):
        assert_no_secret(to, text, record["text"])
    fresh = build_app(make_settings(redis_url))
    await fresh.store.redis.flushdb()
    await seed(fresh)
    await fresh.close()
    result = await asyncio.to_thread(  # the CLI runs its own event loop
        cli, "replay", str(tmp_path / "messages.jsonl"), "--compare",
        "--out", str(tmp_path / "again.jsonl"))
    assert result.exit_code == 0, result.output
    assert f"0 of {len(wire)} compared differ" in result.stderr, result.stderr[-3000:]
