"""The transfers in a subscriber's history list, newest first (pure: entries in, lines out).

The history (store `history_key`) holds every event of a subscriber, newest first; the
transfer scripts write three kinds of it:
- `transfer_out` (to, amount, ref, at): sent, written when the sender is debited;
- `transfer_in` (from, amount, ref, at): received;
- `transfer_reversed` (to, amount, ref, at): a journaled transfer (Redis Cluster) whose
  recipient could not be credited, given back after its `transfer_out` was written.
A reversed transfer shows once, as reversed (never as sent): its money came back, and the
sender may have seen the debit in between. Every other kind (PIN strikes and changes,
care actions, delivery receipts, loads) is no transfer and is skipped; so is an entry
that lacks a field a line needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from smsgw.core.clock import parse_timestamp
from smsgw.core.records import record


class Direction(StrEnum):
    SENT = "sent"
    RECEIVED = "received"
    REVERSED = "reversed"


_DIRECTIONS = {"transfer_out": (Direction.SENT, "to"),
               "transfer_in": (Direction.RECEIVED, "from"),
               "transfer_reversed": (Direction.REVERSED, "to")}


@record
class TransferLine:
    at: datetime
    direction: Direction
    other: str  # the other subscriber, canonical MSISDN
    amount: int  # rials


def last_transfers(entries: Iterable[dict[str, Any]], count: int) -> list[TransferLine]:
    """The newest `count` transfers of a history (newest first), each reversed one once."""
    found: list[TransferLine] = []
    reversed_ones: set[tuple[Any, ...]] = set()
    for entry in entries:
        line = _line_of(entry)
        if line is None:
            continue
        identity = (entry.get("ref"), line.other, line.amount)
        if line.direction is Direction.REVERSED:
            reversed_ones.add(identity)
        elif line.direction is Direction.SENT and identity in reversed_ones:
            continue  # already shown, as reversed (its reversal is newer)
        found.append(line)
        if len(found) == count:
            break
    return found


def _line_of(entry: dict[str, Any]) -> TransferLine | None:
    kind = _DIRECTIONS.get(str(entry.get("kind")))
    if kind is None:
        return None
    direction, other_field = kind
    try:
        return TransferLine(parse_timestamp(str(entry["at"])), direction,
                            str(entry[other_field]), int(entry["amount"]))
    except (KeyError, ValueError, TypeError):
        return None
