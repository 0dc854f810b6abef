"""Lark grammars: each service keeps its `.lark` file beside its parser; this builds
each one once (LALR, contextual lexer) and gives its terminals to field checks."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import lark


@cache
def lalr_parser(path: Path) -> lark.Lark:
    return lark.Lark(path.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                     maybe_placeholders=False)


@cache
def terminal(path: Path, name: str) -> re.Pattern[str]:
    """One terminal of a grammar as a regular expression, to check one field as the
    grammar would (the `.lark` file stays the one definition)."""
    return re.compile(lalr_parser(path).get_terminal(name).pattern.to_regexp())


def leaf(node: lark.Tree[lark.Token] | lark.Token) -> str:
    """The text of a node's first token."""
    if isinstance(node, lark.Tree):
        return leaf(node.children[0])
    return str(node)
