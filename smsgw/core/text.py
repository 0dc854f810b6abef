"""The one place that normalises digits and subscriber numbers.

Canonical MSISDN: "98" + the 10-digit national number ("989351234567"). A hand-written
canonicaliser, not `phonenumbers`: the accepted forms are a short fixed list, and
`phonenumbers.parse` measured 30-43 us per call here, a fifth of a core at the target
rate. The tests check this module against `phonenumbers` as an oracle.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

ASCII_DIGITS = "0123456789"
PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ARABIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
# The only characters that count as digits. str.isdigit, \d and NFKC accept many more
# (superscripts, circled and fullwidth digits, other scripts): those stay what they are.
DIGITS = frozenset(ASCII_DIGITS + PERSIAN_DIGITS + ARABIC_DIGITS)
_TO_ASCII = {ord(c): str(i) for i, c in enumerate(PERSIAN_DIGITS)}
_TO_ASCII.update({ord(c): str(i) for i, c in enumerate(ARABIC_DIGITS)})
# Thousands separators people type: ASCII comma, Arabic thousands separator, Arabic comma.
_TO_ASCII.update({ord("٬"): ",", ord("،"): ",", ord("٫"): "."})
# Colon look-alikes a phone keyboard may produce.
_TO_ASCII.update({ord("："): ":", ord("꞉"): ":", ord("∶"): ":", ord("؛"): ":"})
_TO_PERSIAN = {ord(str(i)): c for i, c in enumerate(PERSIAN_DIGITS)}

# Zero-width and bidi marks that phones insert silently.
_INVISIBLE_MARKS = (
    "\u200b\u200c\u200d\u200e\u200f"  # zero-width space/joiners, LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2066\u2067\u2068\u2069\ufeff\u00ad"  # bidi isolates, BOM, soft hyphen
)
_INVISIBLE: dict[int, None] = dict.fromkeys(map(ord, _INVISIBLE_MARKS), None)

_NATIONAL_MOBILE = re.compile(r"9[0-9]{9}")
_ANY_SPACE = re.compile(r"\s+")


def is_digits(text: str) -> bool:
    """Non-empty and only ASCII digits (after `normalise`, every digit that counts)."""
    return text.isascii() and text.isdigit()


@lru_cache(maxsize=4096)
def looks_like_digit(char: str) -> bool:
    """A digit that counts, or a character that Unicode treats as numeric or that NFKC
    turns into a digit (`²`, `①`, `１`, `٣`, `३`...): what a log must hide."""
    return (char in DIGITS or unicodedata.numeric(char, None) is not None
            or any(c in DIGITS for c in unicodedata.normalize("NFKC", char)))


def _becomes_a_digit(char: str) -> bool:
    return not char.isascii() and char not in DIGITS and looks_like_digit(char)


def _nfkc_keeping_digit_lookalikes(text: str) -> str:
    """NFKC, except that a character NFKC would turn into a digit is kept as it is."""
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text
    pieces: list[str] = []
    start = 0
    for index, char in enumerate(text):
        if _becomes_a_digit(char):
            pieces += [unicodedata.normalize("NFKC", text[start:index]), char]
            start = index + 1
    pieces.append(unicodedata.normalize("NFKC", text[start:]))
    return "".join(pieces)


def normalise(text: str) -> str:
    """ASCII digits and separators, no invisible marks, NFKC; spacing kept. Only ASCII,
    Persian and Arabic-Indic digits become digits (see DIGITS)."""
    text = _nfkc_keeping_digit_lookalikes(text.translate(_INVISIBLE))
    return text.translate(_TO_ASCII).strip()


def normalise_compact(text: str) -> str:
    """`normalise`, and every run of white space removed (for colon-separated commands)."""
    return _ANY_SPACE.sub("", normalise(text))


def canonical_msisdn(raw: str) -> str | None:
    """Map any accepted form of an Iranian mobile number to "98" + 10 digits, else None.

    Accepted: 09xxxxxxxxx, 9xxxxxxxxx, 989xxxxxxxxx, +989xxxxxxxxx, 00989xxxxxxxxx.
    """
    digits = raw.translate(_TO_ASCII).strip()
    if digits.startswith("+98"):
        national = digits[3:]
    elif digits.startswith("0098"):
        national = digits[4:]
    elif digits.startswith("98") and len(digits) == 12:
        national = digits[2:]
    elif digits.startswith("0") and len(digits) == 11:
        national = digits[1:]
    else:
        national = digits
    if not (len(national) == 10 and national.isascii() and _NATIONAL_MOBILE.fullmatch(national)):
        return None
    return "98" + national


def national_form(msisdn: str) -> str:
    """"989351234567" -> "09351234567" (the form replies show)."""
    return "0" + msisdn[2:] if msisdn.startswith("98") and len(msisdn) == 12 else msisdn


def any_number_to_canonical(raw: str) -> str:
    """Canonical form for a mobile number, else the input's digits (short codes, etc.)."""
    return canonical_msisdn(raw) or raw.translate(_TO_ASCII).strip()


def to_persian_digits(text: str) -> str:
    return text.translate(_TO_PERSIAN)


def parse_prefix_ranges(specs: list[str]) -> frozenset[str]:
    """["0900-0905", "0930"] -> the set of 4-digit national prefixes "0900".."0905", "0930"."""
    prefixes: set[str] = set()
    for spec in specs:
        first, _, last = spec.partition("-")
        last = last or first
        if not (len(first) == len(last) == 4 and is_digits(first) and is_digits(last)):
            raise ValueError(f"bad operator prefix {spec!r}: use 4 digits like 0935 or 0900-0905")
        prefixes.update(f"{n:04d}" for n in range(int(first), int(last) + 1))
    return frozenset(prefixes)


def in_prefixes(msisdn: str, prefixes: frozenset[str]) -> bool:
    return national_form(msisdn)[:4] in prefixes
