"""The account enquiry at 1113 and HELP at 1112 (interfaces.md, "Account enquiry"), on a
real Redis, the embedded store and a real Redis Cluster, and over SMPP."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.app import App
from smsgw.core import masking
from smsgw.core.clock import parse_timestamp
from smsgw.messages import Inbound, Outbound
from smsgw.services.account.history import Direction, last_transfers
from smsgw.store import Store, SubscriberRow
from smsgw.store.keys import subscriber_key
from smsgw.transport.smpp.fake_smsc import Mt
from smsgw.transport.smpp.sms_text import encode_reply
from tests.attacks import tried
from tests.conftest import add_subscribers
from tests.test_cluster import crash_after_debit, journaled, wire_message  # noqa: F401
from tests.test_smpp_gateway import Rig, rig  # noqa: F401  (fixture)

ALI = "989361111111"  # prepaid, 20,000
SARA = "989351234567"  # prepaid, 0
POST = "989391234567"  # postpaid, bill 30,000
CREDIT = "989371234567"  # postpaid, bill -4,000: a credit on the bill
JOHN = "989381234567"  # prepaid, English
STRANGER = "989301234567"  # unknown to the store
NOON = parse_timestamp("2026-07-23T12:00:00+03:30")  # 1405/05/01 in the Jalali calendar
NOON_FA = "۱۴۰۵/۰۵/۰۱ ۱۲:۰۰"
DAY_FA = "۱۴۰۵/۰۵/۰۱"


async def send(app: App, sender: str, text: str, to: str = "1113",
               at: datetime = NOON) -> list[Outbound]:
    return await app.router.handle(Inbound(sender, to, text, at))


async def one_reply(app: App, sender: str, text: str, to: str = "1113",
                    at: datetime = NOON) -> Outbound:
    replies = await send(app, sender, text, to, at)
    assert len(replies) == 1 and replies[0].to == sender and replies[0].sender == to
    return replies[0]


@pytest.fixture
async def people(app: App) -> App:
    await add_subscribers(app.store, (ALI, "prepaid", 20_000, 0), (SARA, "prepaid", 0, 0),
                          (POST, "postpaid", 0, 30_000), (CREDIT, "postpaid", 0, -4_000))
    await app.store.upsert_subscribers([SubscriberRow(JOHN, "prepaid", 7_000, 0, "en")],
                                       replace=False, at="2026-07-01T00:00:00+03:30")
    for msisdn in (ALI, JOHN):
        await app.store.redis.hset(subscriber_key(msisdn), "pin",
                                   app.hasher.pin_digest(msisdn, "55555"))
    return app


async def snapshot(store: Store) -> dict[str, bytes]:
    """Every key of the store, as DUMP writes it: equal snapshots, an unchanged store."""
    keys = [key async for key in store.redis.scan_iter(count=1000)]
    return {key: await store.redis.dump(key) for key in sorted(keys)}


# -- keywords -------------------------------------------------------------------------

BALANCE_FORMS = ["BAL", "bal", "Bal", " b A l ", "B A L", "ＢＡＬ", "\u200fBAL\u200c",
                 "موجودی", "موجودي", " مو جو دی ", "موجو\u200cدی"]
HISTORY_FORMS = ["HIST", "hist", "HiSt", " h i s t ", "گزارش", " گز ارش ", "\u200eگزارش"]


@pytest.mark.parametrize("text", BALANCE_FORMS)
async def test_every_balance_form_gets_the_balance(people: App, text: str) -> None:
    reply = await one_reply(people, ALI, text)
    assert reply.kind == "account.balance"
    assert "۲۰٬۰۰۰" in reply.text and NOON_FA in reply.text  # Jalali date and Tehran time


@pytest.mark.parametrize("text", HISTORY_FORMS)
async def test_every_history_form_gets_the_history(people: App, text: str) -> None:
    assert (await one_reply(people, ALI, text)).kind == "account.no_history"


@pytest.mark.parametrize("text", ["BAL1", "BAL۱", "BAL١", "HIST 3", "HIST ۳", "HIST ٣",
                                  "balance", "history", "BALHIST", "", "   ", "09351234567",
                                  "PIN:55555:66666:66666", "?", "HELP"])
async def test_anything_else_gets_the_commands_of_both_short_codes(
        people: App, text: str) -> None:
    reply = await one_reply(people, ALI, text)
    assert reply.kind == "account.commands"
    for part in ("1112", "1113", "BAL", "HIST", "موجودی", "گزارش", "شماره:مبلغ:رمز", "HELP"):
        assert part in reply.text


async def test_english_subscriber_gets_english(people: App) -> None:
    assert (await one_reply(people, JOHN, "bal")).text == (
        "Your balance: 7,000 rials. 2026-07-23 12:00")
    assert (await one_reply(people, JOHN, "hist")).text == "No transfers yet."
    commands = (await one_reply(people, JOHN, "what")).text
    assert "To 1113: BAL" in commands and "To 1112: number:amount:pin" in commands


# -- balance --------------------------------------------------------------------------

async def test_postpaid_line_gets_its_bill_and_a_negative_bill_is_a_credit(
        people: App) -> None:
    bill = await one_reply(people, POST, "BAL")
    assert bill.kind == "account.bill" and "بدهی قبض" in bill.text and "۳۰٬۰۰۰" in bill.text
    credit = await one_reply(people, CREDIT, "موجودی")
    assert credit.kind == "account.bill_credit"
    assert "بستانکاری" in credit.text and "۴٬۰۰۰" in credit.text and "-" not in credit.text
    assert NOON_FA in bill.text and NOON_FA in credit.text


async def test_balance_follows_transfers(people: App) -> None:
    await send(people, ALI, "09351234567:2000:55555", to="1112")
    assert "۱۷٬۵۰۰" in (await one_reply(people, ALI, "BAL")).text
    assert "۲٬۰۰۰" in (await one_reply(people, SARA, "BAL")).text


async def test_unknown_sender_gets_one_not_a_subscriber_reply(people: App) -> None:
    for text in ("BAL", "گزارش", "hello"):
        reply = await one_reply(people, STRANGER, text)
        assert reply.kind == "account.not_subscriber"
        assert reply.text == "این شماره مشترک این سرویس نیست."


# -- history --------------------------------------------------------------------------

async def transfer(app: App, sender: str, recipient: str, amount: int, at: datetime) -> None:
    text = f"0{recipient[2:]}:{amount}:55555"
    kinds = [reply.kind for reply in await send(app, sender, text, to="1112", at=at)]
    assert kinds[0].startswith("transfer.sent"), kinds


async def test_history_of_one_transfer_both_sides(people: App) -> None:
    await transfer(people, ALI, SARA, 2_000, NOON)
    assert (await one_reply(people, ALI, "HIST")).text == (
        "انتقال‌ها (ریال):\n" f"{DAY_FA} به ۰۹۳۵۱۲۳۴۵۶۷ ۲٬۰۰۰")
    assert (await one_reply(people, SARA, "گزارش")).text == (
        "انتقال‌ها (ریال):\n" f"{DAY_FA} از ۰۹۳۶۱۱۱۱۱۱۱ ۲٬۰۰۰")


async def test_history_shows_the_newest_three_of_five_sent_and_received(people: App) -> None:
    day = timedelta(days=1)
    await transfer(people, ALI, SARA, 1_000, NOON)
    await transfer(people, JOHN, ALI, 1_500, NOON + day)
    await transfer(people, ALI, POST, 3_000, NOON + 2 * day)
    await people.store.append_history(ALI, {"kind": "receipt", "at": NOON.isoformat(),
                                            "message_id": "x", "state": "DELIVRD"})
    await send(people, ALI, "09351234567:1000:11111", to="1112")  # a strike: no transfer
    await send(people, ALI, "PIN:55555:55555:55555", to="1112")  # a PIN change: neither
    await transfer(people, JOHN, ALI, 4_000, NOON + 3 * day)
    await transfer(people, ALI, SARA, 5_000, NOON + 4 * day)
    lines = (await one_reply(people, ALI, "HIST")).text.split("\n")[1:]
    assert lines == ["۱۴۰۵/۰۵/۰۵ به ۰۹۳۵۱۲۳۴۵۶۷ ۵٬۰۰۰",
                     "۱۴۰۵/۰۵/۰۴ از ۰۹۳۸۱۲۳۴۵۶۷ ۴٬۰۰۰",
                     "۱۴۰۵/۰۵/۰۳ به ۰۹۳۹۱۲۳۴۵۶۷ ۳٬۰۰۰"]
    english = (await one_reply(people, JOHN, "HIST")).text
    assert english == ("Last transfers (rials):\n2026-07-26 to 09361111111 4,000\n"
                       "2026-07-24 to 09361111111 1,500")


async def test_history_reaches_past_many_other_entries(people: App) -> None:
    await transfer(people, ALI, SARA, 1_000, NOON)
    for number in range(100):  # receipts of a busy line: no transfers
        await people.store.append_history(ALI, {"kind": "receipt", "at": NOON.isoformat(),
                                                "message_id": str(number)})
    assert "۱٬۰۰۰" in (await one_reply(people, ALI, "HIST")).text


async def test_a_reversed_transfer_shows_once_as_reversed(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    app = journaled
    with monkeypatch.context() as patch:
        crash_after_debit(app, patch)
        await app.router.handle(wire_message(app, "09351234567:2000:55555"))
    await app.store.redis.delete(subscriber_key(SARA))
    assert (await app.transfer.recover(NOON + timedelta(minutes=5)))["reversed"] == 1
    await app.router.handle(wire_message(app, "09391234567:3000:55555", msg_id="m2"))
    reply = await one_reply(app, ALI, "HIST")
    assert reply.text == ("انتقال‌ها (ریال):\n"
                          f"{DAY_FA} به ۰۹۳۹۱۲۳۴۵۶۷ ۳٬۰۰۰\n"
                          f"{DAY_FA} برگشت ۰۹۳۵۱۲۳۴۵۶۷ ۲٬۰۰۰")


def entry(kind: str, other: str, amount: int, ref: str = "R") -> dict[str, Any]:
    field = "from" if kind == "transfer_in" else "to"
    return {"kind": kind, field: other, "amount": amount, "ref": ref, "at": NOON.isoformat()}


def test_history_lines_skip_what_is_no_transfer() -> None:
    entries = [entry("transfer_reversed", SARA, 2_000, "A"), {"kind": "receipt"},
               {"kind": "transfer_in", "amount": 5},  # a line needs every field
               {"kind": "transfer_out", "to": SARA, "amount": "x", "at": NOON.isoformat()},
               entry("transfer_out", SARA, 2_000, "A"), entry("transfer_out", SARA, 2_000, "B"),
               entry("transfer_in", POST, 1_000)]
    found = last_transfers(entries, 3)
    assert [(line.direction, line.amount) for line in found] == [
        (Direction.REVERSED, 2_000), (Direction.SENT, 2_000), (Direction.RECEIVED, 1_000)]


# -- HELP at 1112 ---------------------------------------------------------------------

@pytest.mark.parametrize("text", ["HELP", "help", "Help", " h e l p ", "ＨＥＬＰ", "راهنما",
                                  " راه نما ", "?", "؟", "？", " ? "])
async def test_help_at_1112_gets_the_transfer_commands_and_changes_nothing(
        people: App, text: str) -> None:
    before = await snapshot(people.store)
    reply = await one_reply(people, ALI, text, to="1112")
    assert reply.kind == "help.transfer_commands"
    assert "شماره:مبلغ:رمز" in reply.text and "09351234567:10000:12345" in reply.text
    assert "PIN:" in reply.text
    assert await snapshot(people.store) == before


async def test_help_at_1112_in_english_and_for_anyone(people: App) -> None:
    english = (await one_reply(people, JOHN, "help", to="1112")).text
    assert english.startswith("Transfer: number:amount:pin") and "Example: 0935" in english
    assert (await one_reply(people, STRANGER, "HELP", to="1112")).kind == (
        "help.transfer_commands")


# -- how long the replies are ---------------------------------------------------------

def parts(reply: Outbound) -> int:
    return len(encode_reply(reply.text))


async def test_replies_stay_within_their_parts_at_the_largest_values(people: App) -> None:
    ceiling = 10**15  # smsgw.money.MONEY_CEILING: the largest balance or bill stored
    store = people.store
    for language in ("fa", "en"):
        for plan, balance, bill in (("prepaid", ceiling, 0), ("postpaid", 0, ceiling),
                                    ("postpaid", 0, -ceiling)):
            await store.redis.hset(subscriber_key(CREDIT), mapping={
                "plan": plan, "balance": balance, "bill": bill, "lang": language})
            assert parts(await one_reply(people, CREDIT, "BAL")) == 1, (language, plan, bill)
        largest = 9_999_999  # two Persian parts hold three lines below 10,000,000 rials
        for kind in ("transfer_reversed", "transfer_out", "transfer_in"):
            for number in range(3):
                await store.append_history(CREDIT, entry(kind, SARA, largest, f"{kind}{number}"))
            assert parts(await one_reply(people, CREDIT, "HIST")) <= 2, (language, kind)
            await store.append_history(CREDIT, entry(kind, SARA, ceiling))
            assert parts(await one_reply(people, CREDIT, "HIST")) <= 3
        assert parts(await one_reply(people, CREDIT, "?")) == (2 if language == "fa" else 1)
        assert parts(await one_reply(people, CREDIT, "HELP", to="1112")) == (
            2 if language == "fa" else 1)
    assert parts(await one_reply(people, STRANGER, "BAL")) == 1


def test_english_and_persian_templates_have_the_same_replies_and_placeholders() -> None:
    import string
    import tomllib

    from smsgw.services.account.service import TEMPLATES

    def shape(language: str) -> dict[str, set[str | None]]:
        with (TEMPLATES.folder / f"{language}.toml").open("rb") as handle:
            texts = tomllib.load(handle)["account"]
        return {name: {field for _, field, _, _ in string.Formatter().parse(text)} - {None}
                for name, text in texts.items()}

    assert shape("fa") == shape("en")


async def test_the_log_shows_enquiries_with_digits_hidden(app: App) -> None:
    message = Inbound(ALI, "1113", "BAL 12345 ۶۷", NOON)
    # no log view: the masker's default hides every digit (a PIN sent here by mistake too)
    shown = masking.inbound_text(message, app.router.log_view(message), app.hasher)
    assert shown == "BAL ***** **"


# -- the promise under attack: enquiries change nothing, and always answer ------------

enquiry_texts = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(["BAL", "bal", "HIST", "hist", "موجودی", "گزارش", "HELP", "?",
                              "؟", "راهنما", " ", "\u200c", "1", "۱", "١", ":", "PIN",
                              "09351234567", "2000", "55555"]), max_size=6).map("".join),
)
help_texts = st.lists(st.sampled_from(["H", "h", "E", "e", "L", "l", "P", "p", "راهنما",
                                       "?", "؟", "？", " ", "\t", "\u200c", "\u200f", "x"]),
                      max_size=8).map("".join)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sender=st.sampled_from([ALI, POST, CREDIT, JOHN, STRANGER]),
       to_text=st.one_of(st.tuples(st.just("1113"), enquiry_texts),
                         st.tuples(st.just("1112"), help_texts)))
async def test_enquiries_and_help_leave_the_store_byte_for_byte_unchanged(
        people: App, sender: str, to_text: tuple[str, str]) -> None:
    tried("enquiries and help change nothing")
    to, text = to_text
    before = await snapshot(people.store)
    replies = await send(people, sender, text, to=to)
    assert await snapshot(people.store) == before
    assert len(replies) == 1 and replies[0].text.strip() and replies[0].to == sender


# -- over the wire --------------------------------------------------------------------

async def test_enquiries_over_smpp(rig: Rig) -> None:  # noqa: F811
    smsc = rig.smsc

    async def ask(source: str, to: str, text: str, replies: int = 1) -> Mt:
        seen = len(smsc.mt)
        await smsc.wait_answered(smsc.inject_mo(source, to, text))
        return (await smsc.wait_mt(seen + replies))[-1]

    await ask("989361111111", "1112", "09351234567:2000:55555", replies=2)
    balance = await ask("989361111111", "1113", "BAL")
    history = await ask("09361111111", "1113", "گزارش")
    commands = await ask("+989361111111", "1113", "HELP 9876")
    help_reply = await ask("09351234567", "1112", "راهنما")
    assert (balance.source, balance.destination) == ("1113", "989361111111")
    assert "۴۷٬۵۰۰" in balance.text and balance.data_coding == "ucs2" and balance.parts == 1
    assert "به ۰۹۳۵۱۲۳۴۵۶۷ ۲٬۰۰۰" in history.text
    assert "1112" in commands.text and "1113" in commands.text
    assert (help_reply.source, help_reply.destination) == ("1112", "989351234567")
    assert "09351234567:10000:12345" in help_reply.text
    await rig.gateway.settle()
    logged = [r["text"] for r in rig.log_records() if r.get("to") == "1113"]
    assert logged == ["BAL", "گزارش", "HELP ****"]
