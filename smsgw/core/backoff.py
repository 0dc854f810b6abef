"""Exponential backoff: the one schedule every retry loop uses (reconnects, redeliveries,
polls, and later the outbox and webhooks)."""

from __future__ import annotations

import random


class Backoff:
    """Delays that start at `first` and double up to `ceiling`. With `jitter` j, each
    delay is drawn from [d * (1 - j), d], so that many clients retrying at once spread out.
    `reset()` after a success starts again from `first`."""

    def __init__(self, first: float, ceiling: float, jitter: float = 0.0) -> None:
        if not 0 < first <= ceiling or not 0 <= jitter <= 1:
            raise ValueError("backoff needs 0 < first <= ceiling and 0 <= jitter <= 1")
        self._first = first
        self._ceiling = ceiling
        self._jitter = jitter
        self._next = first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(delay * 2, self._ceiling)
        return delay * (1 - self._jitter * random.random())

    def reset(self) -> None:
        self._next = self._first
