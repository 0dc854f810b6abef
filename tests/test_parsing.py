"""Normalisation and the command grammar: every typed form, every error, no crash."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.core.pins import LoggedPin
from smsgw.core.text import canonical_msisdn, national_form, normalise_compact
from smsgw.services.transfer.parse import FormatError, PinChange, Transfer, parse_transfer_command

PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize("form", [
    "09351234567", "9351234567", "989351234567", "+989351234567", "00989351234567",
    "۰۹۳۵۱۲۳۴۵۶۷", "٠٩٣٥١٢٣٤٥٦٧", "+۹۸۹۳۵۱۲۳۴۵۶۷",
])
def test_every_number_form_maps_to_canonical(form: str) -> None:
    assert canonical_msisdn(form) == "989351234567"
    assert national_form("989351234567") == "09351234567"


@pytest.mark.parametrize("bad", [
    "", "0935123456", "093512345678", "02112345678", "2112345678", "+18005551234",
    "98935123456", "0098 9351234567", "09351234567x", "+98", "۰۹۳۵۱۲۳۴۵۶",
])
def test_non_mobile_numbers_are_refused(bad: str) -> None:
    assert canonical_msisdn(bad) is None


@given(st.from_regex(r"9[0-9]{9}", fullmatch=True),
       st.sampled_from(["0{}", "{}", "98{}", "+98{}", "0098{}"]))
def test_canonical_agrees_with_phonenumbers(national: str, shape: str) -> None:
    ours = canonical_msisdn(shape.format(national))
    oracle = phonenumbers.parse("+98" + national)
    assert ours == f"{oracle.country_code}{oracle.national_number}"


@pytest.mark.parametrize("text", [
    "09351234567:10000:12345678",
    " 09351234567 : 10000 : 12345678 ",
    "09351234567:10,000:12345678",
    "09351234567:10٬000:12345678",
    "09351234567:10،000:12345678",
    "\u200f09351234567:10000:12345678\u200e",
    "09351234567：10000：12345678",
    "0935 123 4567:10000:12345678",
])
def test_transfer_forms(text: str) -> None:
    expected = Transfer("989351234567", 10_000, "12345678")
    assert parse_transfer_command(text) == expected
    assert parse_transfer_command(text.translate(PERSIAN)) == expected
    assert parse_transfer_command(text.translate(ARABIC)) == expected


@pytest.mark.parametrize("keyword", ["PIN", "pin", "Pin", "pIN", "رمز"])
def test_pin_change_forms(keyword: str) -> None:
    assert parse_transfer_command(f"{keyword} : 12345678:55555 :55555") == PinChange(
        "12345678", "55555")


@pytest.mark.parametrize("text, error", [
    ("", FormatError.NOT_A_COMMAND),
    ("   ", FormatError.NOT_A_COMMAND),
    ("salam", FormatError.NOT_A_COMMAND),
    ("سلام", FormatError.NOT_A_COMMAND),
    ("09351234567", FormatError.MISSING_PARTS),
    ("09351234567:1000", FormatError.MISSING_PARTS),
    ("09351234567::12345", FormatError.MISSING_AMOUNT),
    ("09351234567:1000:", FormatError.MISSING_PIN),
    (":1000:12345", FormatError.MISSING_RECIPIENT),
    ("PIN::55555:55555", FormatError.MISSING_PIN),
    ("PIN:12345::55555", FormatError.MISSING_NEW_PIN),
    ("PIN:12345", FormatError.MISSING_PARTS),
    ("09351234567:1000:12345:1", FormatError.TOO_MANY_PARTS),
    ("0935123456:1000:12345", FormatError.BAD_RECIPIENT),
    ("02188776655:1000:12345", FormatError.BAD_RECIPIENT),
    ("09351234567:1o00:12345", FormatError.BAD_AMOUNT),
    ("09351234567:-1000:12345", FormatError.BAD_AMOUNT),
    ("09351234567:1000.5:12345", FormatError.BAD_AMOUNT),
    ("09351234567:10,00:12345", FormatError.BAD_AMOUNT),
    ("09351234567:1000:1234", FormatError.BAD_PIN),
    ("09351234567:1000:123456789", FormatError.BAD_PIN),
    ("09351234567:1000:12a45", FormatError.BAD_PIN),
    ("PIN:1234:55555:55555", FormatError.BAD_PIN),
    ("PIN:12345:5555:5555", FormatError.BAD_NEW_PIN),
    ("PIN:12345:555555555:555555555", FormatError.BAD_NEW_PIN),
    ("PIN:12345:55555:55556", FormatError.PIN_MISMATCH),
])
def test_specific_errors(text: str, error: FormatError) -> None:
    assert parse_transfer_command(text) == error


def test_log_digest_token_stands_for_a_pin_only_in_a_log() -> None:
    token = "h~" + "0123456789abcdef" * 2
    assert parse_transfer_command(f"09351234567:1000:{token}", from_log=True) == Transfer(
        "989351234567", 1000, LoggedPin("0123456789abcdef" * 2))
    assert parse_transfer_command(f"09351234567:1000:{token}") == FormatError.BAD_PIN


@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=80))
def test_no_text_crashes_the_parser(text: str) -> None:
    result = parse_transfer_command(text)
    assert isinstance(result, Transfer | PinChange | FormatError)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet="0123456789۰۱۲۳۴۵۶۷۸۹,+ pinPIN", max_size=14),
                          st.just("")), min_size=1, max_size=6))
def test_no_colon_structure_crashes_the_parser(fields: list[str]) -> None:
    result = parse_transfer_command(":".join(fields))
    if isinstance(result, Transfer):
        assert canonical_msisdn(result.recipient) == result.recipient
        assert result.amount >= 0 and 5 <= len(result.pin) <= 8 and result.pin.isdigit()


@given(st.from_regex(r"9[0-9]{9}", fullmatch=True), st.integers(0, 10**9),
       st.from_regex(r"[0-9]{5,8}", fullmatch=True))
def test_every_well_formed_transfer_parses(national: str, amount: int, pin: str) -> None:
    text = f"0{national}:{amount:,}:{pin}".translate(PERSIAN)
    assert parse_transfer_command(text) == Transfer("98" + national, amount, pin)


def test_compact_normalisation_removes_spaces_and_marks() -> None:
    assert normalise_compact(" ۱ ۲\u200c٣ \t:\n4 ") == "123:4"


def test_the_grammar_and_the_pin_rules_spell_the_same_token() -> None:
    """core/pins.py and transfer.lark both define the log's PIN token: they must agree."""
    from smsgw.core.grammars import terminal
    from smsgw.core.pins import PIN_TOKEN
    from smsgw.services.transfer.parse import GRAMMAR

    assert terminal(GRAMMAR, "PIN_TOKEN").pattern == PIN_TOKEN.pattern
