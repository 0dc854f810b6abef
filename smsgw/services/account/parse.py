"""What a text to 1113 asks (account.lark): the whole text is one of the grammar's two
keyword terminals, checked by their regular expressions (compiled from the `.lark` file
at import; tests/test_fast_parse.py checks them against the Lark parse). Pure: text in,
an Enquiry or None."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from smsgw.core.grammars import terminal
from smsgw.core.text import normalise_compact

GRAMMAR = Path(__file__).with_name("account.lark")


class Enquiry(StrEnum):
    BALANCE = "balance"
    HISTORY = "history"


# each rule of the grammar is one terminal: the rule's name is the enquiry
_KEYWORDS = ((terminal(GRAMMAR, "BALANCE"), Enquiry.BALANCE),
             (terminal(GRAMMAR, "HISTORY"), Enquiry.HISTORY))


def parse_enquiry(text: str) -> Enquiry | None:
    """`BAL`, `موجودی`, `hist`, `گزارش`...; None when the text is no enquiry."""
    compact = normalise_compact(text)
    for keyword, enquiry in _KEYWORDS:
        if keyword.fullmatch(compact) is not None:
            return enquiry
    return None
