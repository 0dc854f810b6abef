"""The credit-transfer rules of credit-transfer.md, on a real Redis and the embedded store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.core.clock import parse_timestamp
from smsgw.messages import Inbound, Outbound
from smsgw.store import money_total
from smsgw.store.keys import subscriber_key
from tests.conftest import add_subscribers, make_settings

ALI = "989361111111"  # the spec's first subscriber
SARA = "989351234567"  # recipient
RICH = "989331234567"  # the spec's second subscriber (500,000 credit, PIN 55555)
POST = "989391234567"  # a postpaid line
NOON = parse_timestamp("2026-07-23T12:00:00+03:30")


async def send(app: App, sender: str, text: str, at: datetime = NOON,
               to: str = "1112") -> list[Outbound]:
    return await app.router.handle(Inbound(sender, to, text, at))


async def state(app: App, msisdn: str, at: datetime = NOON) -> dict[str, Any]:
    return await admin.show(app.store, msisdn, at, app.settings.transfer)


async def kinds(app: App, sender: str, text: str, at: datetime = NOON) -> list[str]:
    return [reply.kind for reply in await send(app, sender, text, at)]


@pytest.fixture
async def people(app: App) -> App:
    await add_subscribers(app.store, (ALI, "prepaid", 20_000, 0), (SARA, "prepaid", 0, 0),
                          (RICH, "prepaid", 500_000, 0), (POST, "postpaid", 0, 30_000))
    await set_pin(app, RICH, "55555")
    return app


async def set_pin(app: App, msisdn: str, pin: str) -> None:
    await app.store.redis.hset(subscriber_key(msisdn), "pin", app.hasher.pin_digest(msisdn, pin))


async def everything(app: App) -> dict[str, Any]:
    """All that a refused command must leave unchanged."""
    return {m: await state(app, m) for m in (ALI, SARA, RICH, POST)} | {
        "history": {m: len(await app.store.history(m)) for m in (ALI, SARA, RICH, POST)}}


async def test_worked_example_first_subscriber(people: App) -> None:
    app = people
    replies = await send(app, ALI, "09351234567:2000:12345678")
    assert [r.to for r in replies] == [ALI, SARA]
    sender_sms, recipient_sms = (r.text for r in replies)
    for text in (sender_sms, recipient_sms):
        assert "۲٬۰۰۰" in text and "۰۹۳۶۱۱۱۱۱۱۱" in text and "۰۹۳۵۱۲۳۴۵۶۷" in text
        assert "۱۴۰۵/۰۵/۰۱ ۱۲:۰۰" in text  # Jalali date and Tehran time of the transfer
    assert "۱۷٬۵۰۰" in sender_sms and "۵۰۰" in sender_sms  # new balance and fee
    assert (await state(app, ALI))["balance"] == 17_500
    assert (await state(app, SARA))["balance"] == 2_000
    assert (await state(app, ALI))["pin_set"]

    assert await kinds(app, ALI, "PIN:12345678:55555:55555") == ["transfer.pin_changed"]
    assert await kinds(app, ALI, "09351234567:1000:12345678") == ["transfer.wrong_pin"]
    assert (await state(app, ALI))["balance"] == 17_500
    assert await kinds(app, ALI, "09351234567:1000:12345678") == ["transfer.wrong_pin"]
    assert await kinds(app, ALI, "09351234567:1000:12345678") == ["transfer.blocked_now"]
    assert await kinds(app, ALI, "09351234567:1000:55555") == ["transfer.blocked"]
    assert (await state(app, ALI))["blocked"]

    await admin.care(app.store, ALI, "unblock", NOON)
    after_unblock = await state(app, ALI)
    assert not after_unblock["blocked"] and after_unblock["failed_pin_attempts"] == 0
    assert await kinds(app, ALI, "09351234567:1000:55555") == [
        "transfer.sent", "transfer.received_prepaid"]  # PIN kept through the unblock


async def test_worked_example_second_subscriber_limits(people: App) -> None:
    app = people
    assert (await kinds(app, RICH, "09351234567:1000:55555"))[0] == "transfer.sent"
    assert await kinds(app, RICH, "09351234567:999:55555") == ["transfer.below_min"]
    assert await kinds(app, RICH, "09351234567:10001:55555") == ["transfer.above_max"]
    for _ in range(4):
        assert (await kinds(app, RICH, "09351234567:10000:55555"))[0] == "transfer.sent"
    # 1,000 + 4 x 10,000 = 41,000 sent today; 9,000 left of the 50,000 daily cap
    replies = await send(app, RICH, "09351234567:10000:55555")
    assert [r.kind for r in replies] == ["transfer.daily_cap"]
    assert "۹٬۰۰۰" in replies[0].text
    assert (await state(app, RICH))["sent_today"] == 41_000


async def test_sixth_full_transfer_in_a_day_hits_daily_cap(people: App) -> None:
    app = people
    for _ in range(5):
        assert (await kinds(app, RICH, "09351234567:10000:55555"))[0] == "transfer.sent"
    assert await kinds(app, RICH, "09351234567:10000:55555") == ["transfer.daily_cap"]


async def test_postpaid_recipient_bill_paid_and_can_go_below_zero(people: App) -> None:
    app = people
    for _ in range(4):
        assert await kinds(app, RICH, "09391234567:10000:55555") == [
            "transfer.sent", "transfer.received_postpaid"]
    assert (await state(app, POST))["bill"] == -10_000  # an overpayment stays as credit


@pytest.mark.parametrize("text, expected", [
    ("hello", "format.not_a_command"),
    ("09351234567:2000", "format.missing_parts"),
    ("09351234567:2000:12345:9", "format.too_many_parts"),
    ("0935123:2000:12345", "format.bad_recipient"),
    ("09351234567:2,00:12345", "format.bad_amount"),
    ("09351234567:2000:1234", "format.bad_pin"),
    ("09351234567:2000:123456789", "format.bad_pin"),
    ("PIN:55555:1234:1234", "format.bad_new_pin"),
    ("PIN:55555:66666:66667", "format.pin_mismatch"),
])
async def test_format_errors_reply_and_change_nothing(people: App, text: str,
                                                      expected: str) -> None:
    app = people
    before = await everything(app)
    replies = await send(app, RICH, text)
    assert [r.kind for r in replies] == [expected]
    assert replies[0].to == RICH and replies[0].text
    assert await everything(app) == before


@pytest.mark.parametrize("text, expected", [
    ("09121234567:2000:55555", "transfer.unknown_recipient"),  # outside operator ranges
    ("09351112222:2000:55555", "transfer.unknown_recipient"),  # in range, not a subscriber
    ("09331234567:2000:55555", "transfer.self_transfer"),
    ("09351234567:500:55555", "transfer.below_min"),
    ("09351234567:20000:55555", "transfer.above_max"),
])
async def test_step_four_refusals_change_nothing(people: App, text: str, expected: str) -> None:
    app = people
    before = await everything(app)
    assert await kinds(app, RICH, text) == [expected]
    assert await everything(app) == before


async def test_insufficient_credit_counts_the_fee(people: App) -> None:
    app = people
    await add_subscribers(app.store, ("989361234000", "prepaid", 10_400, 0))
    replies = await send(app, "989361234000", "09351234567:10000:12345")
    assert [r.kind for r in replies] == ["transfer.insufficient"]
    assert "۱۰٬۵۰۰" in replies[0].text  # amount + fee needed
    shown = await state(app, "989361234000")
    assert shown["balance"] == 10_400 and not shown["pin_set"]  # PIN stored only on success


async def test_sender_checks_postpaid_and_unknown(people: App) -> None:
    app = people
    assert await kinds(app, POST, "09351234567:1000:12345") == ["transfer.postpaid_sender"]
    assert await kinds(app, "989350000000", "09351234567:1000:12345") == [
        "transfer.unknown_sender"]
    assert (await state(app, POST))["bill"] == 30_000


async def test_wrong_pin_reveals_nothing_and_correct_pin_resets_strikes(people: App) -> None:
    app = people
    # a wrong PIN on a transfer that would be refused anyway still only says "wrong PIN"
    assert await kinds(app, RICH, "09121234567:99999:11111") == ["transfer.wrong_pin"]
    assert await kinds(app, RICH, "09351234567:1000:11111") == ["transfer.wrong_pin"]
    assert (await state(app, RICH))["failed_pin_attempts"] == 2
    # a right PIN resets the strikes even though step 4 then refuses
    assert await kinds(app, RICH, "09351234567:999:55555") == ["transfer.below_min"]
    assert (await state(app, RICH))["failed_pin_attempts"] == 0


async def test_pin_change_rules(people: App) -> None:
    app = people
    assert await kinds(app, ALI, "PIN:12345:66666:66666") == ["transfer.no_pin"]
    assert not (await state(app, ALI))["pin_set"]
    await send(app, ALI, "09351234567:1000:12345")
    balance = (await state(app, ALI))["balance"]
    assert await kinds(app, ALI, "pin:99999:66666:66666") == ["transfer.wrong_pin"]
    assert await kinds(app, ALI, "Pin:12345:66666:66666") == ["transfer.pin_changed"]
    assert (await state(app, ALI))["balance"] == balance  # a PIN change is free
    assert (await state(app, ALI))["failed_pin_attempts"] == 0
    assert await kinds(app, ALI, "09351234567:1000:12345") == ["transfer.wrong_pin"]
    assert (await kinds(app, ALI, "09351234567:1000:66666"))[0] == "transfer.sent"


async def test_reset_pin_lets_next_transfer_set_a_new_one(people: App) -> None:
    app = people
    await send(app, ALI, "09351234567:1000:12345")
    await admin.care(app.store, ALI, "reset_pin", NOON)
    assert not (await state(app, ALI))["pin_set"]
    assert (await kinds(app, ALI, "09351234567:1000:77777"))[0] == "transfer.sent_first"
    assert await kinds(app, ALI, "09351234567:1000:12345") == ["transfer.wrong_pin"]


async def test_every_typed_form_is_understood(people: App) -> None:
    app = people
    forms = ["۰۹۳۵۱۲۳۴۵۶۷:۱۰۰۰:۵۵۵۵۵", "٠٩٣٥١٢٣٤٥٦٧:١٠٠٠:٥٥٥٥٥", " 09351234567 : 1000 : 55555 ",
             "9351234567:1000:55555", "989351234567:1000:55555", "+989351234567:1000:55555",
             "00989351234567:1000:55555", "09351234567:1,000:55555", "09351234567:۱٬۰۰۰:55555"]
    for form in forms:
        assert (await kinds(app, RICH, form))[0] == "transfer.sent", form
    assert (await state(app, SARA))["balance"] == 1_000 * len(forms)


async def test_day_and_jalali_month_rollover_in_tehran(store_url: str) -> None:
    app = build_app(make_settings(store_url))
    await add_subscribers(app.store, (RICH, "prepaid", 500_000, 0), (SARA, "prepaid", 0, 0))
    await set_pin(app, RICH, "55555")
    last_tir = parse_timestamp("2026-07-22T23:59:00+03:30")  # 31 Tir 1405, Tehran
    first_mordad = parse_timestamp("2026-07-23T00:00:30+03:30")  # 1 Mordad 1405
    early_days = [parse_timestamp(f"2026-07-{day}T10:00:00+03:30") for day in (20, 21)]
    for at in early_days:
        for _ in range(5):
            assert (await kinds(app, RICH, "09351234567:10000:55555", at))[0] == "transfer.sent"
    # 100,000 sent in Tir: the monthly cap; the day is fresh, the month is not
    assert await kinds(app, RICH, "09351234567:1000:55555", last_tir) == [
        "transfer.monthly_cap"]
    # Tehran midnight starts a new Jalali month (still July in the Gregorian calendar)
    assert (await kinds(app, RICH, "09351234567:1000:55555", first_mordad))[0] == "transfer.sent"
    shown = await admin.show(app.store, RICH, first_mordad, app.settings.transfer)
    assert shown["sent_today"] == 1_000 and shown["sent_this_month"] == 1_000
    await app.close()


async def test_gregorian_month_setting(store_url: str) -> None:
    app = build_app(make_settings(store_url, transfer={"calendar": "gregorian"}))
    await add_subscribers(app.store, (RICH, "prepaid", 500_000, 0), (SARA, "prepaid", 0, 0))
    await set_pin(app, RICH, "55555")
    for day in (20, 21):
        at = parse_timestamp(f"2026-07-{day}T10:00:00+03:30")
        for _ in range(5):
            await send(app, RICH, "09351234567:10000:55555", at)
    first_mordad = parse_timestamp("2026-07-23T00:00:30+03:30")
    assert await kinds(app, RICH, "09351234567:1000:55555", first_mordad) == [
        "transfer.monthly_cap"]
    assert (await kinds(app, RICH, "09351234567:1000:55555",
                        parse_timestamp("2026-08-01T00:00:30+03:30")))[0] == "transfer.sent"
    await app.close()


async def test_tehran_day_not_utc_day(people: App) -> None:
    app = people
    for _ in range(5):
        await send(app, RICH, "09351234567:10000:55555",
                   parse_timestamp("2026-07-23T23:00:00+03:30"))
    # 2026-07-23T20:45Z is already 24 July 00:15 in Tehran: a new day there
    at = parse_timestamp("2026-07-23T20:45:00+00:00")
    assert (await kinds(app, RICH, "09351234567:10000:55555", at))[0] == "transfer.sent"


async def test_service_window(store_url: str) -> None:
    app = build_app(make_settings(store_url, transfer={
        "open_from": "2026-07-23T00:00:00+03:30", "open_until": "2026-08-23T00:00:00+03:30"}))
    await add_subscribers(app.store, (RICH, "prepaid", 500_000, 0), (SARA, "prepaid", 0, 0))
    await set_pin(app, RICH, "55555")
    before = parse_timestamp("2026-07-22T23:59:00+03:30")
    after = parse_timestamp("2026-08-23T00:00:00+03:30")
    assert await kinds(app, RICH, "09351234567:1000:55555", before) == ["transfer.closed"]
    assert await kinds(app, RICH, "09351234567:1000:55555", after) == ["transfer.closed"]
    assert (await kinds(app, RICH, "09351234567:1000:55555", NOON))[0] == "transfer.sent"
    await app.close()


async def test_english_subscriber_gets_english(people: App) -> None:
    app = people
    await app.store.upsert_subscribers(
        [admin.SubscriberRow(SARA, "prepaid", 0, 0, "en")], replace=False, at=NOON.isoformat())
    replies = await send(app, RICH, "09351234567:1000:55555")
    assert "انتقال" in replies[0].text  # sender keeps Persian
    assert replies[1].text.startswith("1,000 rials from 09331234567")
    assert "2026-07-23 12:00" in replies[1].text
    assert await kinds(app, SARA, "hi") == ["format.not_a_command"]
    assert "Example" in (await send(app, SARA, "hi"))[0].text


async def test_unknown_short_code_gets_help(people: App) -> None:
    app = people
    before = await everything(app)
    replies = await send(app, RICH, "09351234567:1000:55555", to="3000")
    assert [r.kind for r in replies] == ["help.unknown_service"]
    assert "1112" in replies[0].text
    assert await everything(app) == before


async def test_money_is_conserved_across_a_conversation(people: App) -> None:
    app = people
    total = money_total(await app.store.all_subscribers())
    for text in ["09351234567:2000:12345678", "09391234567:5000:12345678",
                 "09351234567:1000:00000", "PIN:12345678:55555:55555",
                 "09391234567:10000:55555"]:
        await send(app, ALI, text)
    await send(app, RICH, "09361111111:10000:55555")
    assert money_total(await app.store.all_subscribers()) == total


@pytest.mark.parametrize("language", ["fa", "en"])
async def test_confirmations_keep_to_few_sms_parts(app: App, language: str) -> None:
    """Every part is paid for: the recipient's confirmation is one SMS, the sender's (with
    fee, balance and reference) two at most, with the largest amount and a big balance,
    on the first transfer (the longer text) and a later one."""
    from smsgw.transport.smpp.sms_text import encode_reply

    await add_subscribers(app.store, (ALI, "prepaid", 9_000_000, 0), (SARA, "prepaid", 0, 0),
                          (POST, "postpaid", 0, 30_000))
    for msisdn in (ALI, SARA, POST):
        await app.store.redis.hset(subscriber_key(msisdn), "lang", language)
    for recipient in ("09351234567", "09391234567"):
        replies = await send(app, ALI, f"{recipient}:10000:12345")
        assert [r.kind.split("_")[0] for r in replies] == ["transfer.sent", "transfer.received"]
        sender_parts, recipient_parts = (len(encode_reply(r.text)) for r in replies)
        assert sender_parts <= 2
        assert recipient_parts == 1, replies[1].text


def test_transfer_reference_is_the_base32_of_the_identity() -> None:
    import base64
    import os

    from smsgw.services.transfer.service import transfer_ref

    for _ in range(2000):
        seed = os.urandom(5)
        assert transfer_ref(seed.hex() + "ff" * 11) == base64.b32encode(seed).decode()
    assert len(transfer_ref(None)) == 8
