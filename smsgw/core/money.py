"""Money: an integer number of rials everywhere, and one ceiling for every amount.

No real balance, bill or payment comes near MONEY_CEILING; every door (subscriber files,
`admin topup`, transfers, HTTP) refuses a value beyond it, and every money script checks
that its results stay within it before its first write, so Lua's 64-bit integers and
doubles can never overflow half-way through a change.
"""

from __future__ import annotations

MONEY_CEILING = 10**15  # rials: a thousand times the largest bank balance in the country
MONEY_CEILING_DIGITS = len(str(MONEY_CEILING))


def within_ceiling(amount: int) -> bool:
    """Whether a balance, bill or amount may be stored: |amount| <= MONEY_CEILING."""
    return -MONEY_CEILING <= amount <= MONEY_CEILING
