"""The key formats shared by several scripts and reads: a subscriber's, a card's, the
message envelope's and the journal's. (A key only one script uses is built by that
script's object: services/<name>/store.py.)

All of one subscriber's keys share the hash tag `{<msisdn>}`, all of one card's
`{<card digest>}`, so that on a Redis Cluster each sits in one slot.
"""

from __future__ import annotations

import zlib

JOURNAL_INDEX_SHARDS = 64


def subscriber_key(msisdn: str) -> str:
    return f"s:{{{msisdn}}}"


def history_key(msisdn: str) -> str:
    return f"s:{{{msisdn}}}:h"


def day_counter_key(msisdn: str, day: str) -> str:
    return f"s:{{{msisdn}}}:d:{day}"


def month_counter_key(msisdn: str, month: str) -> str:
    return f"s:{{{msisdn}}}:m:{month}"


def processed_key(msisdn: str, identity: str) -> str:
    return f"s:{{{msisdn}}}:p:{identity}"


def redelivery_key(msisdn: str, digest: str) -> str:
    return f"s:{{{msisdn}}}:r:{digest}"


def unused_key(msisdn: str) -> str:
    """A placeholder in the sender's slot, for a key a call does not use."""
    return f"s:{{{msisdn}}}:-"


def parts_key(msisdn: str, message_key: str) -> str:
    """The parts of one concatenated message of this sender (a hash)."""
    return f"s:{{{msisdn}}}:parts:{message_key}"


def open_parts_key(msisdn: str) -> str:
    """The sender's incomplete concatenated messages (a zset: parts key -> expiry, ms)."""
    return f"s:{{{msisdn}}}:po"


def order_key(msisdn: str) -> str:
    """The sender's arrival queue across gateway processes (ordering.py)."""
    return f"s:{{{msisdn}}}:o"


def journal_key(msisdn: str) -> str:
    """The sender's transfers debited but not yet settled (txid -> JSON entry)."""
    return f"s:{{{msisdn}}}:tx"


def journal_index_key(msisdn: str) -> str:
    """One of 64 zsets (spread over the cluster's slots) that list journaled transfers
    as `sender|txid`, scored by the message's time in ms: recovery reads these instead of
    scanning the keyspace."""
    return journal_index_shard_key(zlib.crc32(msisdn.encode()) % JOURNAL_INDEX_SHARDS)


def journal_index_shard_key(shard: int) -> str:
    return f"jx:{{{shard}}}"


def reversed_key(msisdn: str, txid: str) -> str:
    """Marks a journaled transfer of this sender that was reversed, not done."""
    return f"s:{{{msisdn}}}:rv:{txid}"


def credited_key(msisdn: str) -> str:
    """The transfer ids recently credited to this subscriber (a zset; score = time)."""
    return f"s:{{{msisdn}}}:in"


def card_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}"


def card_history_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}:h"


def mobile_cards_key(msisdn: str) -> str:
    """card digest -> last four, for every card registered to this mobile (a hash)."""
    return f"s:{{{msisdn}}}:cards"


def idempotency_record_key(key_digest: str) -> str:
    """What an Idempotency-Key of the HTTP API holds (its own slot)."""
    return f"ik:{{{key_digest}}}"


OUTBOX_SHARDS = 16
OUTBOX_LEASES_KEY = "ob:{leases}"  # a zset: gateway id -> until when its lease holds (ms)


def outbox_shard(msisdn: str) -> int:
    """The outbox shard of the replies that answer this sender (or go to this mobile)."""
    return zlib.crc32(msisdn.encode()) % OUTBOX_SHARDS


def outbox_decoy_keys(shard: int) -> tuple[str, str, str]:
    """Shaped as a shard, read by no one: the row that an HTTP OTP request that sends no
    SMS writes (over and over, so each stays one row), doing the work of one that does;
    one per shard, so that decoys spread over a cluster's nodes as real rows do."""
    return f"ob:{{d{shard}}}", f"ob:{{d{shard}}}:o", f"ob:{{d{shard}}}:t"


def outbox_keys(shard: int) -> tuple[str, str, str]:
    """One outbox shard, all in one slot: its replies (a hash: reply id -> JSON), their
    owners (a hash: reply id -> gateway id), their ages (a zset: reply id -> created, ms)."""
    return f"ob:{{{shard}}}", f"ob:{{{shard}}}:o", f"ob:{{{shard}}}:t"
