"""What a text to 1113 asks: account.lark, built once. Pure: text in, an Enquiry or None."""

from __future__ import annotations

from enum import StrEnum
from functools import cache, lru_cache
from pathlib import Path

import lark

from smsgw.core.text import normalise_compact

GRAMMAR = Path(__file__).with_name("account.lark")


class Enquiry(StrEnum):
    BALANCE = "balance"
    HISTORY = "history"


@cache
def _parser() -> lark.Lark:
    return lark.Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", lexer="contextual")


@lru_cache(maxsize=1024)
def parse_enquiry(text: str) -> Enquiry | None:
    """`BAL`, `موجودی`, `hist`, `گزارش`...; None when the text is no enquiry."""
    try:
        tree = _parser().parse(normalise_compact(text))
    except lark.exceptions.LarkError:
        return None
    (command,) = tree.children
    assert isinstance(command, lark.Tree)
    return Enquiry(command.data)
