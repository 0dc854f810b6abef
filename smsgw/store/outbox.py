"""The outbox's scripts (scripts/outbox_*.lua) and reads: replies kept until the SMSC has
taken them (transport/outbox.py decides what goes in and when it leaves).

The outbox is OUTBOX_SHARDS shards (keys.py, `ob:{<n>}`), each three keys in one slot:
the replies, their owners and their ages. A reply goes in the shard of the sender it
answers (or of the mobile it goes to), so one message's replies are one script call and
any gateway finds work by reading the shards, never by a scan. Gateways hold leases in
`ob:{leases}` (a zset: gateway id -> until when, ms).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, NamedTuple

from redis.crc import key_slot

from smsgw.core.records import record
from smsgw.store.keys import OUTBOX_LEASES_KEY, OUTBOX_SHARDS, outbox_decoy_keys, outbox_keys
from smsgw.store.script import Script
from smsgw.store.store import Store

SCRIPTS = Path(__file__).with_name("scripts")
LEASES_KEPT_MS = 7 * 24 * 3600 * 1000  # a gateway silent this long is forgotten


class OutboxKeys(NamedTuple):
    entries: str  # reply id -> JSON (transport/outbox.py: StoredReply)
    owners: str  # reply id -> the gateway that sends it
    times: str  # reply id -> when it was decided (ms): the age, the oldest


class ClaimArgs(NamedTuple):
    claimer: str  # the gateway taking them over
    alive: str  # gateway ids whose lease holds (space-separated)
    dead: str  # gateway ids whose lease ran out
    unknown_before: int  # ms: a reply of an unknown owner older than this is taken
    limit: int  # replies at most
    again: int = 0  # 1: the claimer's own too (an earlier claim's answer was lost)


# ARGV: the owner, the time (ms), then reply id and JSON pairs
OUTBOX_PUT = Script(SCRIPTS / "outbox_put.lua", OutboxKeys, list[Any], int)
# KEYS: each shard's three keys; ARGV: each shard's reply ids, space-separated
OUTBOX_DONE = Script(SCRIPTS / "outbox_done.lua", list[str], list[str], int)
OUTBOX_CLAIM = Script(SCRIPTS / "outbox_claim.lua", OutboxKeys, ClaimArgs, list[str])


@record
class Waiting:
    """A reply in the outbox, as stored."""

    reply_id: str
    shard: int
    entry: str  # its JSON
    created_ms: int
    owner: str = ""
    now_ms: int | None = None  # the store's clock when it was claimed (created_ms's clock)


class OutboxStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def put(self, shard: int, owner: str, created_ms: int,
                  replies: list[tuple[str, str]]) -> None:
        """Replies (id, JSON) in one shard, owned by `owner`, in one atomic call."""
        await self._put(outbox_keys(shard), owner, created_ms, replies)

    async def put_decoy(self, shard: int, owner: str, created_ms: int, entry: str) -> None:
        """The same call as `put` of one reply, on a decoy row (keys.outbox_decoy_keys)."""
        await self._put(outbox_decoy_keys(shard), owner, created_ms, [("decoy", entry)])

    async def _put(self, keys: tuple[str, str, str], owner: str, created_ms: int,
                   replies: list[tuple[str, str]]) -> None:
        args: list[Any] = [owner, created_ms]
        for reply_id, entry in replies:
            args += (reply_id, entry)
        await self._store.run(OUTBOX_PUT, OutboxKeys(*keys), args)

    async def remove(self, by_shard: dict[int, list[str]]) -> None:
        """Drop these replies: one call for all (one per slot on a cluster)."""
        groups: dict[int, tuple[list[str], list[str]]] = {}
        for shard, reply_ids in by_shard.items():
            keys = outbox_keys(shard)
            slot = key_slot(keys[0].encode()) if self._store.single_slot else 0
            group_keys, group_ids = groups.setdefault(slot, ([], []))
            group_keys.extend(keys)
            group_ids.append(" ".join(reply_ids))
        await asyncio.gather(*(self._store.run(OUTBOX_DONE, keys, ids)
                               for keys, ids in groups.values()))

    async def claim(self, shard: int, args: ClaimArgs) -> list[Waiting]:
        found = await self._store.run(OUTBOX_CLAIM, OutboxKeys(*outbox_keys(shard)), args)
        now_ms = int(float(found[-1]))
        return [Waiting(found[i], shard, found[i + 1], int(float(found[i + 2])), args.claimer,
                        now_ms)
                for i in range(0, len(found) - 1, 3)]

    async def owners(self, replies: list[tuple[int, str]]) -> list[str | None]:
        """Who sends each of these (shard, reply id) now (None: gone)."""
        redis = self._store.redis
        async with redis.pipeline(transaction=False) as pipe:
            for shard, reply_id in replies:
                pipe.hget(outbox_keys(shard)[1], reply_id)
            found: list[str | None] = await self._store.plain(pipe.execute())
        return found

    async def renew(self, owner: str, until_ms: int) -> None:
        redis = self._store.redis
        await self._store.plain(redis.zadd(OUTBOX_LEASES_KEY, {owner: until_ms}))

    async def leases(self, now_ms: int) -> dict[str, int]:
        """Gateway id -> until when its lease holds (ms); the long silent are pruned."""
        redis = self._store.redis
        await self._store.plain(redis.zremrangebyscore(
            OUTBOX_LEASES_KEY, "-inf", now_ms - LEASES_KEPT_MS))
        found = await self._store.plain(redis.zrange(OUTBOX_LEASES_KEY, 0, -1,
                                                     withscores=True))
        return {owner: int(until) for owner, until in found}

    async def census(self) -> tuple[int, int | None]:
        """How many replies wait, and when the oldest was decided (ms; None: none)."""
        redis = self._store.redis
        async with redis.pipeline(transaction=False) as pipe:
            for shard in range(OUTBOX_SHARDS):
                times = outbox_keys(shard)[2]
                pipe.zcard(times)
                pipe.zrange(times, 0, 0, withscores=True)
            # a damaged shard (a key of another type) is left out, not the whole census
            found = await self._store.plain(pipe.execute(raise_on_error=False))
        count = sum(each for each in found[0::2] if isinstance(each, int))
        oldest = [int(first[0][1]) for first in found[1::2]
                  if isinstance(first, list) and first]
        return count, min(oldest) if oldest else None

    async def waiting(self) -> list[Waiting]:
        """Every reply in the outbox, oldest first (for `smsgw admin outbox`)."""
        redis = self._store.redis
        found: list[Waiting] = []
        for shard in range(OUTBOX_SHARDS):
            entries_key, owners_key, times_key = outbox_keys(shard)
            times = await self._store.plain(redis.zrange(times_key, 0, -1, withscores=True))
            entries = await self._store.plain(redis.hgetall(entries_key))
            owners = await self._store.plain(redis.hgetall(owners_key))
            found += [Waiting(reply_id, shard, entries[reply_id], int(created),
                              owners.get(reply_id, ""))
                      for reply_id, created in times if reply_id in entries]
        return sorted(found, key=lambda each: each.created_ms)
