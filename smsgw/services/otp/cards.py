"""Bank card numbers: 16 digits with a valid Luhn check, and the bank's own BINs."""

from __future__ import annotations

from smsgw.core.text import normalise_compact

CARD_DIGITS = 16


def normalise_card(raw: str) -> str:
    """Persian/Arabic digits to ASCII; spaces and dashes (as printed on cards) removed."""
    return normalise_compact(raw).replace("-", "")


def luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_problem(number: str) -> str | None:
    """Why a card number is not well formed, or None."""
    if len(number) != CARD_DIGITS or not (number.isascii() and number.isdigit()):
        return "card must be 16 digits"
    if not luhn_ok(number):
        return "card number fails the Luhn check"
    return None


def is_our_card(number: str, bins: list[str]) -> bool:
    return any(number.startswith(prefix) for prefix in bins)


def last_four(number: str) -> str:
    return number[-4:]


def with_luhn(first_fifteen: str) -> str:
    """Complete 15 digits with their Luhn check digit (for tests and synthetic data)."""
    for check in "0123456789":
        if luhn_ok(first_fifteen + check):
            return first_fifteen + check
    raise AssertionError("unreachable")
