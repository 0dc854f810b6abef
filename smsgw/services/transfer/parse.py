"""Parsing of 1112 commands (transfer.lark, beside this file), with specific errors.

The parser is pure: text in, a command or a `FormatError` out. It never touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import lark

from smsgw.core.grammars import lalr_parser, leaf, terminal
from smsgw.core.money import MONEY_CEILING, MONEY_CEILING_DIGITS
from smsgw.core.pins import Pin, is_pin, is_pin_token, pin_value
from smsgw.core.text import canonical_msisdn, looks_like_digit, normalise_compact

GRAMMAR = Path(__file__).parent / "transfer.lark"
PIN_KEYWORDS = ("pin", "رمز")


class FormatError(StrEnum):
    """Which part of a text is wrong; each has its own reply."""

    NOT_A_COMMAND = "not_a_command"
    MISSING_PARTS = "missing_parts"
    TOO_MANY_PARTS = "too_many_parts"
    MISSING_RECIPIENT = "missing_recipient"
    MISSING_AMOUNT = "missing_amount"
    MISSING_PIN = "missing_pin"
    MISSING_NEW_PIN = "missing_new_pin"
    BAD_RECIPIENT = "bad_recipient"
    BAD_AMOUNT = "bad_amount"
    BAD_PIN = "bad_pin"
    BAD_NEW_PIN = "bad_new_pin"
    PIN_MISMATCH = "pin_mismatch"


@dataclass(frozen=True, slots=True)
class Transfer:
    recipient: str  # canonical MSISDN
    amount: int  # rials, at most MONEY_CEILING
    pin: Pin


@dataclass(frozen=True, slots=True)
class PinChange:
    old_pin: Pin
    new_pin: Pin


TransferCommand = Transfer | PinChange


class Role(StrEnum):
    """What a field of a 1112 command stands for, by its position."""

    KEYWORD = "keyword"
    RECIPIENT = "recipient"
    AMOUNT = "amount"
    PIN = "pin"
    NEW_PIN = "new_pin"
    EXTRA = "extra"  # beyond the command's last part


_ROLES = {
    "transfer": (Role.RECIPIENT, Role.AMOUNT, Role.PIN),
    "pin_change": (Role.KEYWORD, Role.PIN, Role.NEW_PIN, Role.NEW_PIN),
}
_MISSING = {Role.RECIPIENT: FormatError.MISSING_RECIPIENT, Role.AMOUNT: FormatError.MISSING_AMOUNT,
            Role.PIN: FormatError.MISSING_PIN, Role.NEW_PIN: FormatError.MISSING_NEW_PIN}
_BAD = {Role.RECIPIENT: FormatError.BAD_RECIPIENT, Role.AMOUNT: FormatError.BAD_AMOUNT,
        Role.PIN: FormatError.BAD_PIN, Role.NEW_PIN: FormatError.BAD_NEW_PIN}


@dataclass(frozen=True, slots=True)
class Field:
    """One colon-separated part of a 1112 text (after normalise_compact)."""

    role: Role
    text: str
    valid: bool


@dataclass(frozen=True, slots=True)
class CommandFields:
    kind: str | None  # "transfer", "pin_change", or None: no command of 1112
    fields: tuple[Field, ...]


def _valid(role: Role, text: str, from_log: bool) -> bool:
    if role is Role.RECIPIENT:
        return (terminal(GRAMMAR, "NUMBER").fullmatch(text) is not None
                and canonical_msisdn(text) is not None)
    if role is Role.AMOUNT:
        return _valid_amount(text)
    if role in (Role.PIN, Role.NEW_PIN):
        return is_pin(text) or (from_log and is_pin_token(text))
    return role is Role.KEYWORD


def _valid_amount(text: str) -> bool:
    if terminal(GRAMMAR, "AMOUNT").fullmatch(text) is None:
        return False
    significant = text.replace(",", "").lstrip("0")  # int() refuses 4,300 digits and more
    return len(significant) <= MONEY_CEILING_DIGITS and int(significant or "0") <= MONEY_CEILING


def _kind(first: str, count: int) -> str | None:
    if first.lower() in PIN_KEYWORDS:
        return "pin_change"
    if first == "":
        return "transfer" if count > 1 else None  # ":1000:12345": the recipient is missing
    if first[0] == "+" or looks_like_digit(first[0]):  # "０٩..." too: a bad recipient
        return "transfer"
    return None


@lru_cache(maxsize=4096)
def command_fields(text: str, from_log: bool = False) -> CommandFields:
    """The text's fields, each with its role and whether it is valid in that role: the
    parser decides from these alone, and the log masker hides by them."""
    compact = normalise_compact(text)
    parts = compact.split(":") if compact else []
    kind = _kind(parts[0], len(parts)) if parts else None
    if kind is None:
        return CommandFields(None, tuple(Field(Role.EXTRA, part, False) for part in parts))
    roles = _ROLES[kind]
    fields = tuple(
        Field(role, part, _valid(role, part, from_log))
        for role, part in zip((*roles, *[Role.EXTRA] * (len(parts) - len(roles))), parts,
                              strict=False)
    )
    return CommandFields(kind, fields)


@lru_cache(maxsize=4096)
def parse_transfer_command(text: str, from_log: bool = False) -> TransferCommand | FormatError:
    """Parse once: the result is immutable. A PIN field may hold a log's digest token only
    when `from_log` (a text read back by `smsgw replay`); on the wire it is a bad PIN."""
    parsed = command_fields(text, from_log)
    problem = _first_problem(parsed)
    if problem is not None:
        return problem
    try:
        tree = lalr_parser(GRAMMAR).parse(":".join(field.text for field in parsed.fields))
    except lark.exceptions.LarkError:
        return FormatError.NOT_A_COMMAND  # the fields and the grammar disagree: a bug
    command = tree.children[0]
    assert isinstance(command, lark.Tree)
    tokens = [leaf(child) for child in command.children]
    if command.data == "transfer":
        number, amount, pin = tokens
        recipient = canonical_msisdn(number)
        assert recipient is not None
        return Transfer(recipient, int(amount.replace(",", "").lstrip("0") or "0"), pin_value(pin))
    return PinChange(old_pin=pin_value(tokens[1]), new_pin=pin_value(tokens[2]))


def _first_problem(parsed: CommandFields) -> FormatError | None:
    """Too few or too many parts, else the first missing or wrong part, left to right."""
    if parsed.kind is None:
        return FormatError.NOT_A_COMMAND
    fields, roles = parsed.fields, _ROLES[parsed.kind]
    if len(fields) > len(roles):
        return FormatError.TOO_MANY_PARTS
    if len(fields) < len(roles):
        return FormatError.MISSING_PARTS
    for field in fields:
        if field.text == "" and field.role in _MISSING:
            return _MISSING[field.role]
        if not field.valid:
            return _BAD[field.role]
    if parsed.kind == "pin_change" and fields[2].text != fields[3].text:
        return FormatError.PIN_MISMATCH
    return None
