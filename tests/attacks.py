"""Counts of generated hostile inputs, printed at the end of the run.

A hypothesis target that attacks a promise calls `tried("<promise>")` once per input, so
the run shows how hard each promise was attacked (`attack <promise>: N inputs tried`).
"""

from __future__ import annotations

from collections import Counter

INPUTS_TRIED: Counter[str] = Counter()


def tried(promise: str) -> None:
    INPUTS_TRIED[promise] += 1
