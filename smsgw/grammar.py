"""Parsing of subscriber commands: grammar/*.lark, built once, and specific errors.

The parser is pure: text in, a command or a `FormatError` out. It never touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from pathlib import Path

import lark

from smsgw.core.text import canonical_msisdn, normalise, normalise_compact

PIN_MIN_DIGITS = 5
PIN_MAX_DIGITS = 8
PIN_TOKEN_PREFIX = "h~"


class FormatError(StrEnum):
    """Which part of a text is wrong; each has its own reply."""

    NOT_A_COMMAND = "not_a_command"
    MISSING_PARTS = "missing_parts"
    TOO_MANY_PARTS = "too_many_parts"
    BAD_RECIPIENT = "bad_recipient"
    BAD_AMOUNT = "bad_amount"
    BAD_PIN = "bad_pin"
    BAD_NEW_PIN = "bad_new_pin"
    PIN_MISMATCH = "pin_mismatch"


@dataclass(frozen=True, slots=True)
class Transfer:
    recipient: str  # canonical MSISDN
    amount: int  # rials
    pin: str  # 5-8 ASCII digits, or a digest token from a message log


@dataclass(frozen=True, slots=True)
class PinChange:
    old_pin: str
    new_pin: str


TransferCommand = Transfer | PinChange


def grammar_dir() -> Path:
    packaged = Path(__file__).parent / "_grammar"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "grammar"


@cache
def _parser(name: str) -> lark.Lark:
    text = (grammar_dir() / f"{name}.lark").read_text(encoding="utf-8")
    return lark.Lark(text, parser="lalr", lexer="contextual", maybe_placeholders=False)


def is_pin_token(value: str) -> bool:
    return value.startswith(PIN_TOKEN_PREFIX)


def _valid_pin(value: str) -> bool:
    return is_pin_token(value) or PIN_MIN_DIGITS <= len(value) <= PIN_MAX_DIGITS


@lru_cache(maxsize=4096)
def parse_transfer_command(text: str) -> TransferCommand | FormatError:
    """Parse once: the result is immutable, and the log masker asks for the same text."""
    compact = normalise_compact(text)
    if not compact:
        return FormatError.NOT_A_COMMAND
    try:
        tree = _parser("transfer").parse(compact)
    except lark.exceptions.UnexpectedInput as exc:
        return _locate_error(compact, exc)
    command = tree.children[0]
    assert isinstance(command, lark.Tree)
    tokens = [_leaf(child) for child in command.children]
    if command.data == "transfer":
        return _transfer_from(tokens)
    return _pin_change_from(tokens)


def _leaf(node: lark.Tree[lark.Token] | lark.Token) -> str:
    if isinstance(node, lark.Tree):
        return _leaf(node.children[0])
    return str(node)


def _transfer_from(tokens: list[str]) -> TransferCommand | FormatError:
    number, amount, pin = tokens
    recipient = canonical_msisdn(number)
    if recipient is None:
        return FormatError.BAD_RECIPIENT
    if not _valid_pin(pin):
        return FormatError.BAD_PIN
    return Transfer(recipient=recipient, amount=int(amount.replace(",", "")), pin=pin)


def _pin_change_from(tokens: list[str]) -> TransferCommand | FormatError:
    _, old, new, repeat = tokens
    if not _valid_pin(old):
        return FormatError.BAD_PIN
    if not _valid_pin(new):
        return FormatError.BAD_NEW_PIN
    if new != repeat:
        return FormatError.PIN_MISMATCH
    return PinChange(old_pin=old, new_pin=new)


_FIELD_ERRORS = {
    "transfer": (FormatError.BAD_RECIPIENT, FormatError.BAD_AMOUNT, FormatError.BAD_PIN),
    "pin_change": (
        FormatError.NOT_A_COMMAND,
        FormatError.BAD_PIN,
        FormatError.BAD_NEW_PIN,
        FormatError.BAD_NEW_PIN,
    ),
}


def _locate_error(compact: str, exc: lark.exceptions.UnexpectedInput) -> FormatError:
    """Name the wrong part: too few or too many fields, else the field where parsing stopped."""
    fields = compact.split(":")
    kind = "pin_change" if fields[0].lower() in ("pin", "رمز") else "transfer"
    if kind == "transfer" and not (fields[0][:1].isdigit() or fields[0][:1] == "+"):
        return FormatError.NOT_A_COMMAND
    field_errors = _FIELD_ERRORS[kind]
    if len(fields) > len(field_errors):
        return FormatError.TOO_MANY_PARTS
    if len(fields) < len(field_errors):
        return FormatError.MISSING_PARTS
    position = getattr(exc, "pos_in_stream", None)
    at_end = getattr(getattr(exc, "token", None), "type", "") == "$END"
    if at_end or not isinstance(position, int) or position < 0:
        position = len(compact)
    field_index = min(compact.count(":", 0, position), len(fields) - 1)
    if fields[field_index] == "":
        return FormatError.MISSING_PARTS
    return field_errors[field_index]


@dataclass(frozen=True, slots=True)
class OtpRequest:
    last_four: str | None


def parse_otp_request(text: str) -> OtpRequest | None:
    """`OTP`, `OTP:1234`, `رمز پویا ۱۲۳۴`...; None when the text is no OTP request."""
    try:
        tree = _parser("otp").parse(normalise(text))
    except lark.exceptions.LarkError:
        return None
    digits = [str(t) for t in tree.children if getattr(t, "type", "") == "LAST_FOUR"]
    return OtpRequest(digits[0] if digits else None)
