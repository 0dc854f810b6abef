"""PINs as the whole system sees them: what a subscriber may choose, and the form the
message log writes one in (a keyed digest token), which only `smsgw replay` accepts."""

from __future__ import annotations

import re

from smsgw.core.records import record

PIN_MIN_DIGITS = 5
PIN_MAX_DIGITS = 8
PIN_TOKEN_PREFIX = "h~"
# The token: the prefix and the 32 hex digits of the keyed digest the store keeps
# (core/hashing.py); services/transfer/transfer.lark spells the same terminal.
PIN_TOKEN = re.compile(r"h~[0-9a-f]{32}")
_ASCII_DIGITS = re.compile(r"[0-9]+")


@record
class LoggedPin:
    """A PIN as the message log writes it: the keyed digest the store keeps. Parsed, only
    a text read back from a log (`smsgw replay`) may hold one; on the wire it is no PIN.
    A service's log view also hands a wire PIN to the log this way, as the digest its
    store call uses (made once per message)."""

    digest: str


Pin = str | LoggedPin  # str: 5-8 ASCII digits, as typed


def is_pin(value: str) -> bool:
    """5-8 ASCII digits: what a subscriber may choose as a PIN."""
    return (PIN_MIN_DIGITS <= len(value) <= PIN_MAX_DIGITS
            and _ASCII_DIGITS.fullmatch(value) is not None)


def is_pin_token(value: str) -> bool:
    return PIN_TOKEN.fullmatch(value) is not None


def pin_value(text: str) -> Pin:
    """A valid PIN field's value: the PIN as typed, or a log's token as its digest."""
    return LoggedPin(text[len(PIN_TOKEN_PREFIX):]) if is_pin_token(text) else text
