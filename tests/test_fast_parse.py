"""The parsers decide from the grammars' terminals without a Lark parse; Lark is the
oracle. On generated texts near each grammar (digits in three scripts, separators,
spaces, PIN tokens, keywords), the fast parse gives what the Lark parse gives."""

from __future__ import annotations

from pathlib import Path

import lark
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.core.grammars import lalr_parser, leaf
from smsgw.core.money import MONEY_CEILING, MONEY_CEILING_DIGITS
from smsgw.core.pins import is_pin, is_pin_token, pin_value
from smsgw.core.text import canonical_msisdn, normalise, normalise_compact
from smsgw.services.account import parse as account
from smsgw.services.otp import parse as otp
from smsgw.services.transfer import parse as transfer
from smsgw.services.transfer.parse import FormatError, PinChange, Role, Transfer, TransferCommand
from tests.attacks import tried

PROMISE = "fast parse agrees with Lark"
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
KEYWORDS = ["pin", "PIN", "Pin", "pIn", "pın", "PİN", "رمز", "رمز پویا", "رمزپویا", "پویا",
            "otp", "OTP", "Otp", "bal", "BAL", "موجودی", "موجودي", "hist", "HIST", "گزارش",
            "help", "راهنما", "؟", "salam"]
SEPARATORS = [":", "：", "؛", "꞉", " : ", ": ", ",", "٬", "،", "+", "00", "+98", "0098", "~"]
SPACES = [" ", "  ", "\t", "\n", "\u200c", "\u200f", "\u00a0", "\x0b", "\u2003"]
ODD = ["x", "h", "０", "①", "²", "٫", ".", "-", "a", "f"]


def scripts(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from([text, text.translate(PERSIAN), text.translate(ARABIC)])


digits = st.text("0123456789", min_size=1, max_size=14).flatmap(scripts)
national = st.from_regex(r"9[0-9]{9}", fullmatch=True)
numbers = st.tuples(st.sampled_from(["0{}", "{}", "98{}", "+98{}", "0098{}", "00{}"]),
                    national).map(lambda shape: shape[0].format(shape[1])).flatmap(scripts)
amounts = st.one_of(st.integers(0, 10**7).map(str), st.integers(0, 10**9).map("{:,}".format),
                    st.integers(MONEY_CEILING - 2, MONEY_CEILING + 2).map(str)).flatmap(scripts)
pins = st.one_of(st.from_regex(r"[0-9]{5,8}", fullmatch=True),
               st.from_regex(r"[0-9]{1,10}", fullmatch=True)).flatmap(scripts)
tokens = st.one_of(st.from_regex(r"h~[0-9a-f]{32}", fullmatch=True),
                   st.from_regex(r"h~[0-9a-fA-F]{0,34}", fullmatch=True))
pieces = st.one_of(digits, numbers, amounts, pins, tokens, st.sampled_from(KEYWORDS),
                   st.sampled_from(SEPARATORS), st.sampled_from(SPACES), st.sampled_from(ODD))
field = st.one_of(numbers, amounts, pins, tokens, st.sampled_from(KEYWORDS), st.just(""),
                  st.lists(pieces, max_size=3).map("".join))
colon = st.sampled_from([":", " : ", "：", "؛", ": "])
pin_keywords = st.sampled_from(KEYWORDS[:7])
# commands with each field mostly right, fields joined by colons, any run of pieces
transfers = st.tuples(st.one_of(numbers, field), st.one_of(amounts, field),
                      st.one_of(pins, tokens, field)).map(list)
pin_changes = st.tuples(st.one_of(pin_keywords, field), st.one_of(pins, tokens),
                        st.one_of(pins, tokens), st.booleans(), pins).map(
    lambda f: [f[0], f[1], f[2], f[2] if f[3] else f[4]])
otp_requests = st.tuples(st.sampled_from(KEYWORDS), st.sampled_from(["", ":", " ", " : ", "::"]),
                         st.one_of(st.from_regex(r"[0-9]{4}", fullmatch=True).flatmap(scripts),
                                   digits, st.just(""))).map("".join)
well_formed = st.one_of(st.tuples(numbers, amounts, pins).map(list),
                        st.tuples(pin_keywords, pins, pins).map(lambda f: [*f, f[2]]))
texts = st.one_of(
    st.tuples(st.one_of(well_formed, transfers, pin_changes,
                        st.lists(field, min_size=1, max_size=5)),
              colon).map(lambda f: f[1].join(f[0])),
    otp_requests, st.lists(pieces, max_size=10).map("".join))


def lark_parse(grammar: Path, text: str) -> lark.Tree[lark.Token] | None:
    try:
        return lalr_parser(grammar).parse(text)
    except lark.exceptions.LarkError:
        return None


def lark_command(grammar: Path, text: str) -> lark.Tree[lark.Token] | None:
    """The rule `start` chose, by the Lark parse of the compact text."""
    tree = lark_parse(grammar, normalise_compact(text))
    if tree is None:
        return None
    command = tree.children[0]
    assert isinstance(command, lark.Tree)
    return command


def lark_transfer(text: str, from_log: bool) -> TransferCommand | None:
    """The grammar's parse, and the rules it cannot say (a mobile number, the money
    ceiling, PIN lengths, tokens only from a log, the new PIN twice): None if refused."""
    command = lark_command(transfer.GRAMMAR, text)
    if command is None:
        return None
    values = [leaf(child) for child in command.children]
    pins = values[2:] if command.data == "transfer" else values[1:]
    if not all(is_pin(pin) or (from_log and is_pin_token(pin)) for pin in pins):
        return None
    if command.data == "pin_change":
        return PinChange(pin_value(pins[0]), pin_value(pins[1])) if pins[1] == pins[2] else None
    recipient, significant = canonical_msisdn(values[0]), values[1].replace(",", "").lstrip("0")
    if recipient is None or len(significant) > MONEY_CEILING_DIGITS:
        return None
    amount = int(significant or "0")
    return Transfer(recipient, amount, pin_value(pins[0])) if amount <= MONEY_CEILING else None


def lark_otp(text: str) -> otp.OtpRequest | None:
    tree = lark_parse(otp.GRAMMAR, normalise(text))
    if tree is None:
        return None
    digits = [str(t) for t in tree.children if getattr(t, "type", "") == "LAST_FOUR"]
    return otp.OtpRequest(digits[0] if digits else None)


def lark_enquiry(text: str) -> account.Enquiry | None:
    command = lark_command(account.GRAMMAR, text)
    return None if command is None else account.Enquiry(command.data)


@settings(max_examples=3000, deadline=None)
@given(texts, st.booleans())
def test_transfer_fast_parse_agrees_with_lark(text: str, from_log: bool) -> None:
    tried(PROMISE)
    fast = transfer.parse_transfer_command(text, from_log)
    oracle = lark_transfer(text, from_log)
    if oracle is None:
        assert isinstance(fast, FormatError), (text, fast)
    else:
        assert fast == oracle, (text, fast, oracle)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(texts, st.tuples(st.sampled_from(KEYWORDS), st.lists(pieces, max_size=4))
                 .map(lambda parts: parts[0] + "".join(parts[1]))))
def test_otp_and_enquiry_fast_parse_agree_with_lark(text: str) -> None:
    tried(PROMISE)
    assert otp.parse_otp_request(text) == lark_otp(text), text
    assert account.parse_enquiry(text) == lark_enquiry(text), text


@pytest.mark.parametrize("text", [
    "09351234567:10000:12345678", "PIN:12345678:55555:55555", "pın:12345:55555:55555",
    "OTP", "otp 1234", "رمز پویا ۱۲۳۴", "رمز:1234", "otp:", "BAL", "موجودي", "hist",
])
def test_known_forms_agree_with_lark(text: str) -> None:
    fast = transfer.parse_transfer_command(text)
    assert (None if isinstance(fast, FormatError) else fast) == lark_transfer(text, False)
    assert otp.parse_otp_request(text) == lark_otp(text)
    assert account.parse_enquiry(text) == lark_enquiry(text)


SYMBOL_OF_ROLE = {Role.KEYWORD: "PIN_KEYWORD", Role.RECIPIENT: "NUMBER", Role.AMOUNT: "AMOUNT",
                  Role.PIN: "pin", Role.NEW_PIN: "pin"}


def test_field_roles_follow_the_grammar_rules() -> None:
    """The roles the fast parse gives each field are the grammar's rules, colons apart."""
    rules = {str(rule.origin.name): [symbol.name for symbol in rule.expansion
                                     if symbol.name != "COLON"]
             for rule in lalr_parser(transfer.GRAMMAR).rules
             if rule.origin.name in ("transfer", "pin_change")}
    assert rules == {kind: [SYMBOL_OF_ROLE[role] for role in roles]
                     for kind, roles in transfer._ROLES.items()}
