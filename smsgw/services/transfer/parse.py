"""Parsing of 1112 commands (transfer.lark, beside this file), with specific errors.

The parser is pure: text in, a command or a `FormatError` out. It never touches the store.
Each colon-separated field is checked alone against its terminal of the grammar (compiled
from the `.lark` file at import), and those checks decide everything: the command is
built from the fields, without a Lark parse (~50 µs a new text). Lark stays the oracle:
tests/test_fast_parse.py checks on generated texts that this agrees with it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from smsgw.core.grammars import terminal
from smsgw.core.money import MONEY_CEILING, MONEY_CEILING_DIGITS
from smsgw.core.pins import LoggedPin, Pin, is_pin, is_pin_token, pin_value
from smsgw.core.records import record
from smsgw.core.text import canonical_msisdn, looks_like_digit, normalise_compact

GRAMMAR = Path(__file__).parent / "transfer.lark"
# the terminals a field is checked against, as the grammar spells them
_PIN_KEYWORD = terminal(GRAMMAR, "PIN_KEYWORD")
_NUMBER = terminal(GRAMMAR, "NUMBER")
_AMOUNT = terminal(GRAMMAR, "AMOUNT")


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


@record
class Transfer:
    recipient: str  # canonical MSISDN
    amount: int  # rials, at most MONEY_CEILING
    pin: Pin


@record
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


# the fields of each rule of the grammar, colons left out (the test checks they match)
_ROLES = {
    "transfer": (Role.RECIPIENT, Role.AMOUNT, Role.PIN),
    "pin_change": (Role.KEYWORD, Role.PIN, Role.NEW_PIN, Role.NEW_PIN),
}
_MISSING = {Role.RECIPIENT: FormatError.MISSING_RECIPIENT, Role.AMOUNT: FormatError.MISSING_AMOUNT,
            Role.PIN: FormatError.MISSING_PIN, Role.NEW_PIN: FormatError.MISSING_NEW_PIN}
_BAD = {Role.RECIPIENT: FormatError.BAD_RECIPIENT, Role.AMOUNT: FormatError.BAD_AMOUNT,
        Role.PIN: FormatError.BAD_PIN, Role.NEW_PIN: FormatError.BAD_NEW_PIN}


FieldValue = str | int | LoggedPin  # a recipient (canonical), rials, a PIN, the keyword


class Field(NamedTuple):
    """One colon-separated part of a 1112 text (after normalise_compact)."""

    role: Role
    text: str
    value: FieldValue | None  # what the field stands for; None: not valid in its role

    @property
    def valid(self) -> bool:
        return self.value is not None


class CommandFields(NamedTuple):
    kind: str | None  # "transfer", "pin_change", or None: no command of 1112
    fields: tuple[Field, ...]
    compact: str  # the text after normalise_compact


def _recipient(text: str, from_log: bool) -> str | None:
    return canonical_msisdn(text) if _NUMBER.fullmatch(text) is not None else None


def _amount(text: str, from_log: bool) -> int | None:
    if _AMOUNT.fullmatch(text) is None:
        return None
    significant = text.replace(",", "").lstrip("0")  # int() refuses 4,300 digits and more
    if len(significant) > MONEY_CEILING_DIGITS:
        return None
    amount = int(significant or "0")
    return amount if amount <= MONEY_CEILING else None


def _pin(text: str, from_log: bool) -> Pin | None:
    if is_pin(text):
        return text
    return pin_value(text) if from_log and is_pin_token(text) else None


def _keyword(text: str, from_log: bool) -> str:
    return text  # told by _kind


_VALUE_OF: dict[Role, Callable[[str, bool], FieldValue | None]] = {
    Role.KEYWORD: _keyword, Role.RECIPIENT: _recipient, Role.AMOUNT: _amount,
    Role.PIN: _pin, Role.NEW_PIN: _pin}


def _kind(first: str, count: int) -> str | None:
    if _PIN_KEYWORD.fullmatch(first) is not None:
        return "pin_change"
    if first == "":
        return "transfer" if count > 1 else None  # ":1000:12345": the recipient is missing
    if first[0] == "+" or looks_like_digit(first[0]):  # "０٩..." too: a bad recipient
        return "transfer"
    return None


def command_fields(text: str, from_log: bool = False) -> CommandFields:
    """The text's fields, each with its role and its value in that role: the parser
    decides from these alone, and the log masker hides by them."""
    compact = normalise_compact(text)
    parts = compact.split(":") if compact else []
    kind = _kind(parts[0], len(parts)) if parts else None
    roles = _ROLES[kind] if kind is not None else ()
    fields = [Field(role, part, _VALUE_OF[role](part, from_log))
              for role, part in zip(roles, parts, strict=False)]
    fields += [Field(Role.EXTRA, part, None) for part in parts[len(roles):]]
    return CommandFields(kind, tuple(fields), compact)


def parse_transfer_command(text: str, from_log: bool = False) -> TransferCommand | FormatError:
    """A PIN field may hold a log's digest token only when `from_log` (a text read back by
    `smsgw replay`); on the wire it is a bad PIN."""
    return command_of(command_fields(text, from_log))


def command_of(parsed: CommandFields) -> TransferCommand | FormatError:
    """The command the fields make, or the first thing wrong with them."""
    problem = _first_problem(parsed)
    if problem is not None:
        return problem
    first, second, third = (field.value for field in parsed.fields[:3])
    if parsed.kind == "transfer":
        assert isinstance(first, str) and isinstance(second, int) and third is not None
        return Transfer(first, second, _as_pin(third))
    assert second is not None and third is not None
    return PinChange(old_pin=_as_pin(second), new_pin=_as_pin(third))


def _as_pin(value: FieldValue) -> Pin:
    assert not isinstance(value, int)  # a PIN field's value
    return value


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
