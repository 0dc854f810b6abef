"""Money: an integer number of rials everywhere, and one ceiling for every amount.

No real balance, bill or payment comes near MONEY_CEILING; every door (subscriber files,
`admin topup`, transfers, HTTP) refuses a value beyond it, and every money script checks
that its results stay within it before its first write, so Lua's 64-bit integers and
doubles can never overflow half-way through a change.
"""

from __future__ import annotations

import re

from smsgw.core.text import normalise

MONEY_CEILING = 10**15  # rials: a thousand times the largest bank balance in the country
MONEY_CEILING_DIGITS = len(str(MONEY_CEILING))

_PLAIN = re.compile(r"-?[0-9]+")
_GROUPED = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3})+")  # 20,000 (or ۲۰٬۰۰۰ once normalised)


def within_ceiling(amount: int) -> bool:
    """Whether a balance, bill or amount may be stored: |amount| <= MONEY_CEILING."""
    return -MONEY_CEILING <= amount <= MONEY_CEILING


def parse_rials(raw: str) -> int:
    """A whole number of rials as people write it, within the ceiling: ASCII, Persian or
    Arabic-Indic digits, plain or in groups of three (`20000`, `20,000`, `۲۰٬۰۰۰`), a
    leading minus allowed (the caller says whether it may be negative). ValueError, with
    what is wrong, for anything else: empty, `50,00,0`, `1.5`, `1e5`, `+5`, beyond."""
    text = normalise(raw)
    if not (_PLAIN.fullmatch(text) or _GROUPED.fullmatch(text)):
        raise ValueError(f"{shown(raw)} is not a whole number of rials")
    digits = text.replace(",", "").lstrip("-").lstrip("0")
    if len(digits) > MONEY_CEILING_DIGITS or not within_ceiling(int(digits or "0")):
        raise ValueError(f"{shown(raw)} is beyond the ceiling of {MONEY_CEILING:,} rials")
    return int(text.replace(",", ""))


def shown(raw: str, limit: int = 24) -> str:
    """A value quoted for an error message, cut short when long."""
    return repr(raw if len(raw) <= limit else raw[:limit] + "…")
