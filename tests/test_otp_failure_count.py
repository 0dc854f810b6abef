"""NIST SP 800-63B: generating a new secret does not reset the failure count.

A card's wrong codes carry over to the OTP that replaces the one they were typed for; a
success starts the count again, and so does an hour after the last OTP expired. The
decoy state of requests that send no SMS carries the same way (the answers still tell
nothing about the card).
"""

from __future__ import annotations

from datetime import timedelta

from smsgw.app import App
from tests.test_otp_rules import CARD, T0, UNKNOWN, bank, otp_of, request

__all__ = ["bank"]
WRONG = "wrong!"  # never a code: codes are digits


async def test_a_new_otp_keeps_the_wrong_codes_of_the_one_it_replaces(bank: App) -> None:
    first = await request(bank)
    for _ in range(2):
        assert await bank.otp.verify(first.request_id, WRONG, T0) == (False, "wrong_code")
    later = T0 + timedelta(seconds=61)
    second = await request(bank, at=later)
    assert second.accepted
    # the third wrong code of the card voids the new OTP at once
    assert await bank.otp.verify(second.request_id, WRONG, later) == (False, "too_many_attempts")
    assert await bank.otp.verify(second.request_id, otp_of(second.replies[0]), later) == (
        False, "too_many_attempts")


async def test_unknown_cards_carry_their_wrong_codes_the_same(bank: App) -> None:
    verdicts = {}
    for card in (CARD, UNKNOWN):
        first = await request(bank, card)
        await bank.otp.verify(first.request_id, WRONG, T0)
        await bank.otp.verify(first.request_id, WRONG, T0)
        later = T0 + timedelta(seconds=61)
        second = await request(bank, card, at=later)
        verdicts[card] = await bank.otp.verify(second.request_id, WRONG, later)
    assert verdicts[CARD] == verdicts[UNKNOWN] == (False, "too_many_attempts")


async def test_a_success_starts_the_count_again(bank: App) -> None:
    first = await request(bank)
    await bank.otp.verify(first.request_id, WRONG, T0)
    await bank.otp.verify(first.request_id, WRONG, T0)
    assert await bank.otp.verify(first.request_id, otp_of(first.replies[0]), T0) == (True, "")
    later = T0 + timedelta(seconds=61)
    second = await request(bank, at=later)
    assert await bank.otp.verify(second.request_id, WRONG, later) == (False, "wrong_code")


async def test_wrong_codes_lapse_an_hour_after_their_otp_expired(bank: App) -> None:
    first = await request(bank)
    for _ in range(3):
        await bank.otp.verify(first.request_id, WRONG, T0)
    later = T0 + timedelta(seconds=120 + 3601)
    second = await request(bank, at=later)
    assert await bank.otp.verify(second.request_id, WRONG, later) == (False, "wrong_code")
