"""The OTP rules of dynamic-password.md, on a real Redis and the embedded store."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.core.clock import parse_timestamp
from smsgw.messages import Inbound, Outbound
from smsgw.services.otp.cards import with_luhn
from tests.conftest import make_settings

MOBILE, OTHER = "989121112233", "989351234567"  # OTP mobiles may be on any operator
CARD = with_luhn("627961" + "123456789")
SECOND = with_luhn("627961" + "987654321")  # a second card on the same mobile
DISABLED = with_luhn("627961" + "111111111")
BLOCKED = with_luhn("627961" + "222222222")
UNKNOWN = with_luhn("627961" + "333333333")  # ours by BIN, never registered
FOREIGN = with_luhn("603799" + "123456789")  # another bank's card
T0 = parse_timestamp("2026-07-23T10:00:00+03:30")


def fa(digits: str) -> str:
    return digits.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))


def otp_of(sms: Outbound) -> str:
    match = re.search(r"[0-9۰-۹]{6}", sms.text)
    assert match is not None
    return match.group(0).translate(str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789"))


@pytest.fixture
async def bank(any_store_url: str) -> App:
    """The bank's cards on every store: a redis-server, the embedded one, a cluster (where
    a script that named keys of two slots would be refused)."""
    app = build_app(make_settings(any_store_url))
    for number, mobile in ((CARD, MOBILE), (SECOND, MOBILE), (DISABLED, OTHER),
                           (BLOCKED, OTHER)):
        await admin.card_add(app.store, app.hasher, number, mobile, "debit", "static-pw", T0)
    await admin.card_action(app.store, app.hasher, DISABLED, "disable", T0)
    await admin.card_action(app.store, app.hasher, BLOCKED, "block", T0)
    return app


async def request(app: App, card: str = CARD, amount: int = 1_500_000, merchant: str = "Digikala",
                  at: object = T0):  # type: ignore[no-untyped-def]
    return await app.otp.request_for_payment(card, amount, merchant, at)  # type: ignore[arg-type]


async def test_payment_request_sends_the_otp_to_the_registered_mobile_only(bank: App) -> None:
    answer = await request(bank)
    assert answer.accepted and len(answer.replies) == 1
    sms = answer.replies[0]
    assert sms.to == MOBILE and sms.sender == "7000" and sms.receipt
    code = otp_of(sms)
    assert sms.secret == code and len(code) == 6
    for shown in ("۱٬۵۰۰٬۰۰۰", "Digikala", "۱۲۰", fa(CARD[-4:]), "ندهید"):
        assert shown in sms.text  # amount, merchant, validity, card's last four, confidential
    assert CARD not in sms.text


async def test_single_use(bank: App) -> None:
    answer = await request(bank)
    code = otp_of(answer.replies[0])
    assert await bank.otp.verify(answer.request_id, code, T0) == (True, "")
    assert await bank.otp.verify(answer.request_id, code, T0) == (False, "used")


async def test_three_wrong_codes_void_it(bank: App) -> None:
    answer = await request(bank)
    code = otp_of(answer.replies[0])
    wrong = "000000" if code != "000000" else "111111"
    assert await bank.otp.verify(answer.request_id, wrong, T0) == (False, "wrong_code")
    assert await bank.otp.verify(answer.request_id, wrong, T0) == (False, "wrong_code")
    assert await bank.otp.verify(answer.request_id, wrong, T0) == (False, "too_many_attempts")
    assert await bank.otp.verify(answer.request_id, code, T0) == (False, "too_many_attempts")


async def test_valid_for_120_seconds_by_the_clock(bank: App) -> None:
    answer = await request(bank)
    code = otp_of(answer.replies[0])
    assert await bank.otp.verify(answer.request_id, code, T0 + timedelta(seconds=121)) == (
        False, "expired")
    fresh = await request(bank, at=T0 + timedelta(seconds=200))
    late = T0 + timedelta(seconds=200 + 119)
    assert await bank.otp.verify(fresh.request_id, otp_of(fresh.replies[0]), late) == (True, "")


async def test_bound_to_amount_and_merchant(bank: App) -> None:
    answer = await request(bank, amount=2_000_000, merchant="Snapp")
    code = otp_of(answer.replies[0])
    authorize = bank.otp.authorize
    assert await authorize(CARD, 2_000_001, "Snapp", code, None, T0) == (False, "otp_invalid")
    assert await authorize(CARD, 2_000_000, "Other", code, None, T0) == (False, "otp_invalid")
    assert await authorize(CARD, 2_000_000, "Snapp", code, None, T0) == (True, "")
    assert await authorize(CARD, 2_000_000, "Snapp", code, None, T0) == (False, "otp_invalid")


async def test_mismatched_payments_count_as_wrong_codes(bank: App) -> None:
    answer = await request(bank, amount=2_000_000, merchant="Snapp")
    code = otp_of(answer.replies[0])
    for _ in range(3):
        await bank.otp.authorize(CARD, 9_999_999, "Snapp", code, None, T0)
    assert await bank.otp.authorize(CARD, 2_000_000, "Snapp", code, None, T0) == (
        False, "otp_invalid")  # voided by the attempts


async def test_new_request_replaces_the_old_but_not_within_the_resend_gap(bank: App) -> None:
    first = await request(bank)
    too_soon = await request(bank, at=T0 + timedelta(seconds=20))
    assert not too_soon.accepted and too_soon.retry_after == 40 and not too_soon.replies
    second = await request(bank, at=T0 + timedelta(seconds=61))
    later = T0 + timedelta(seconds=62)
    assert await bank.otp.verify(first.request_id, otp_of(first.replies[0]), later) == (
        False, "expired")
    assert await bank.otp.verify(second.request_id, otp_of(second.replies[0]), later) == (True, "")


async def test_hourly_limits_per_card_and_per_mobile(store_url: str) -> None:
    app = build_app(make_settings(store_url, otp={"resend_after_seconds": 0}))
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "pw-1", T0)
    await admin.card_add(app.store, app.hasher, SECOND, MOBILE, "credit", "pw-2", T0)
    for minute in range(5):
        assert (await request(app, at=T0 + timedelta(minutes=minute))).accepted
    refused = await request(app, at=T0 + timedelta(minutes=10))
    assert not refused.accepted and refused.retry_after == 50 * 60  # the oldest leaves at +60
    for minute in range(5):  # the mobile's 10 per hour: 5 more with the second card
        assert (await request(app, SECOND, at=T0 + timedelta(minutes=11 + minute))).accepted
    assert not (await request(app, SECOND, at=T0 + timedelta(minutes=20))).accepted
    assert (await request(app, at=T0 + timedelta(minutes=61))).accepted  # the hour moved on
    await app.close()


async def test_sms_request_for_one_of_several_cards(bank: App) -> None:
    ask = Inbound(MOBILE, "7000", "رمز پویا", T0)
    which = await bank.router.handle(ask)
    assert [r.kind for r in which] == ["otp.which_card"]
    assert fa(CARD[-4:]) in which[0].text and fa(SECOND[-4:]) in which[0].text
    answer = await bank.router.handle(Inbound(MOBILE, "7000", "OTP:" + SECOND[-4:], T0))
    assert [r.kind for r in answer] == ["otp.sms_card"] and answer[0].to == MOBILE
    code = otp_of(answer[0])
    # bound to the card alone: good for any payment once
    assert await bank.otp.authorize(SECOND, 5_000_000, "Any", code, None, T0) == (True, "")


async def test_sms_requests_that_reveal_nothing(bank: App) -> None:
    cases = [Inbound(OTHER, "7000", "OTP", T0),  # only a disabled and a blocked card
             Inbound("989360000000", "7000", "OTP", T0)]  # no card at all
    kinds = [[r.kind for r in await bank.router.handle(m)] for m in cases]
    assert kinds == [["otp.no_card"], ["otp.no_card"]]
    texts = [(await bank.router.handle(Inbound(OTHER, "7000", f"OTP {c[-4:]}", T0)))[0]
             for c in (DISABLED, UNKNOWN)]
    assert {t.kind for t in texts} == {"otp.no_card_ending"}
    assert all(t.to == OTHER for t in texts)  # never to anyone else
    usage = await bank.router.handle(Inbound(MOBILE, "7000", "hello", T0))
    assert [r.kind for r in usage] == ["otp.usage"]


async def test_disabled_blocked_unknown_foreign_look_the_same(bank: App) -> None:
    shapes = []
    for card in (DISABLED, BLOCKED, UNKNOWN, FOREIGN):
        answer = await request(bank, card)
        assert answer.accepted and not answer.replies  # no SMS to anyone
        shapes.append(len(answer.request_id))
        verdicts = [await bank.otp.verify(answer.request_id, "123456", T0) for _ in range(4)]
        assert verdicts == [(False, "wrong_code"), (False, "wrong_code"),
                            (False, "too_many_attempts"), (False, "too_many_attempts")]
    real = await request(bank)
    assert set(shapes) == {len(real.request_id)}
    real_verdicts = [await bank.otp.verify(real.request_id, "not-it", T0) for _ in range(4)]
    assert real_verdicts == verdicts
    assert await bank.otp.verify("made-up-request", "123456", T0) == (False, "wrong_code")


async def test_silent_requests_expire_and_get_replaced_like_real_ones(bank: App) -> None:
    for card in (UNKNOWN, CARD):
        first = await request(bank, card)
        later = T0 + timedelta(seconds=121)
        assert await bank.otp.verify(first.request_id, "123456", later) == (False, "expired")
        second = await request(bank, card, at=T0 + timedelta(seconds=61))
        assert await bank.otp.verify(first.request_id, "123456", T0 + timedelta(seconds=62)) == (
            False, "expired")
        assert second.accepted


async def test_disabled_and_blocked_cards_are_never_approved(bank: App) -> None:
    for card in (DISABLED, BLOCKED, UNKNOWN, FOREIGN):
        assert await bank.otp.authorize(card, 1000, "Shop", None, "static-pw", T0) == (
            False, "declined")
        assert await bank.otp.authorize(card, 1000, "Shop", "123456", None, T0) == (
            False, "otp_invalid")


async def test_disabling_voids_a_live_otp(bank: App) -> None:
    answer = await request(bank)
    await admin.card_action(bank.store, bank.hasher, CARD, "disable", T0)
    assert await bank.otp.authorize(CARD, 1_500_000, "Digikala", otp_of(answer.replies[0]),
                                    None, T0) == (False, "otp_invalid")


async def test_static_password_allowance_per_tehran_day(bank: App) -> None:
    pay = bank.otp.authorize
    evening = parse_timestamp("2026-07-23T23:00:00+03:30")
    assert await pay(CARD, 600_000, "A", None, "static-pw", evening) == (True, "")
    assert await pay(CARD, 400_000, "B", None, "static-pw", evening) == (True, "")
    assert await pay(CARD, 1, "C", None, "static-pw", evening) == (False, "otp_required")
    # 2026-07-23T21:00Z is already 00:30 the next day in Tehran: a fresh allowance
    assert await pay(CARD, 1_000_000, "D", None, "static-pw",
                     parse_timestamp("2026-07-23T21:00:00+00:00")) == (True, "")
    assert await pay(CARD, 1_000_001, "E", None, "static-pw",
                     parse_timestamp("2026-07-25T10:00:00+03:30")) == (False, "otp_required")


async def test_three_wrong_static_passwords_close_the_static_path_for_the_day(bank: App) -> None:
    pay = bank.otp.authorize
    for _ in range(3):
        assert await pay(CARD, 1000, "A", None, "wrong", T0) == (False, "declined")
    assert await pay(CARD, 1000, "A", None, "static-pw", T0) == (False, "declined")
    answer = await request(bank, amount=1000, merchant="A")  # the OTP path still works
    assert await pay(CARD, 1000, "A", otp_of(answer.replies[0]), None, T0) == (True, "")
    tomorrow = T0 + timedelta(days=1)
    assert await pay(CARD, 1000, "A", None, "static-pw", tomorrow) == (True, "")


async def test_set_mobile_moves_the_otp_and_voids_the_live_one(bank: App) -> None:
    answer = await request(bank)
    await admin.card_action(bank.store, bank.hasher, CARD, "set_mobile", T0, mobile=OTHER)
    assert await bank.otp.authorize(CARD, 1_500_000, "Digikala", otp_of(answer.replies[0]),
                                    None, T0) == (False, "otp_invalid")
    moved = await request(bank, at=T0 + timedelta(seconds=61))
    assert moved.replies[0].to == OTHER
    old = await bank.router.handle(Inbound(MOBILE, "7000", "OTP " + CARD[-4:], T0))
    assert old[0].kind == "otp.no_card_ending"
    kinds = [entry["kind"] for entry in await admin.card_history(bank.store, bank.hasher, CARD)]
    assert kinds[:3] == ["otp_issued", "card_set_mobile", "otp_issued"]
    assert "card_add" in kinds


async def test_card_admin_refusals(bank: App) -> None:
    with pytest.raises(admin.CardProblem, match="already registered"):
        await admin.card_add(bank.store, bank.hasher, CARD, MOBILE, "debit", "x1234", T0)
    with pytest.raises(admin.CardProblem, match="not registered"):
        await admin.card_action(bank.store, bank.hasher, UNKNOWN, "block", T0)
    shown = await admin.card_show(bank.store, bank.hasher, CARD)
    assert shown == {"card": "…" + CARD[-4:], "type": "debit", "mobile": MOBILE, "state": "active",
                     "otp_state": "none"}


async def test_requests_that_send_no_sms_use_up_no_real_mobile_allowance(
        store_url: str) -> None:
    """Someone who knows a disabled or blocked card's number could otherwise exhaust its
    owner's mobile (10 an hour) and stop the OTPs of the owner's other cards."""
    app = build_app(make_settings(store_url, otp={"resend_after_seconds": 0}))
    for number in (DISABLED, BLOCKED, SECOND):
        await admin.card_add(app.store, app.hasher, number, OTHER, "debit", "static-pw", T0)
    await admin.card_action(app.store, app.hasher, DISABLED, "disable", T0)
    await admin.card_action(app.store, app.hasher, BLOCKED, "block", T0)
    for minute in range(5):
        for card in (DISABLED, BLOCKED):
            assert (await request(app, card, at=T0 + timedelta(minutes=minute))).accepted
    answer = await request(app, SECOND, at=T0 + timedelta(minutes=6))
    assert answer.accepted and [sms.to for sms in answer.replies] == [OTHER]
    await app.close()
