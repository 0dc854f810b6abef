"""Immutable records that are cheap to make: one place for how smsgw declares them.

A `@record` class is a slotted dataclass that the type checker treats as frozen (mypy
strict refuses any assignment to a field), hashed and compared by value like a frozen
dataclass. At run time it is not frozen: a frozen dataclass's `__init__` sets each field
through `object.__setattr__`, 1.6 µs for a seven-field record against 0.3 µs (measured
on the 2-core box), and a transfer makes about twenty (PDUs, the message, its parse and
log view, its replies). Immutability is a promise the type check enforces, not a run-time
guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T]) -> type[T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
