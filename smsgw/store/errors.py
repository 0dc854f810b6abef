"""What the store raises."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The store cannot be reached: the message must not be taken (retry later)."""


class WrongStoreMode(Exception):
    """The URL names a Redis Cluster node, but the store was not opened as a cluster."""


class CrossSlotCall(RuntimeError):
    """A programming error: one script call named keys of two cluster slots."""
