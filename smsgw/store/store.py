"""The store: Redis (a server, or the embedded fakeredis) and its server-side scripts.

Every change to money, limits, PINs and strikes happens inside one Lua script call, so two
messages can never interleave half-way. A script is an object (script.py) that the
services' and the shared store modules declare; calls are pipelined per event-loop turn
(batcher.py), and a NOSCRIPT answer loads the scripts again.

No script touches keys of two slots (keys.py): work that spans two subscribers (a
transfer) is done in journaled steps (services/transfer/), and `Store(single_slot=True)`
refuses a call that breaks the rule, on any server, so that the tests catch it without a
cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from smsgw.core.records import record
from smsgw.messages import Inbound
from smsgw.store import audit, connect, durability
from smsgw.store.batcher import UNAVAILABLE, ScriptBatcher
from smsgw.store.errors import CrossSlotCall, StoreUnavailable, WrongStoreMode
from smsgw.store.keys import (
    JOURNAL_INDEX_SHARDS,
    card_history_key,
    card_key,
    credited_key,
    day_counter_key,
    history_key,
    idempotency_record_key,
    journal_index_key,
    journal_index_shard_key,
    journal_key,
    month_counter_key,
    open_parts_key,
    order_key,
    parts_key,
    redelivery_key,
    subscriber_key,
)
from smsgw.store.node_pipes import NodePipes
from smsgw.store.pipe import ScriptPipe
from smsgw.store.script import HISTORY_LENGTH, Script, envelope
from smsgw.store.shared import (
    ADD_PART,
    CARE,
    CONFIRM,
    IDEMPOTENCY_FINISH,
    IDEMPOTENCY_RESERVE,
    JOURNAL_INDEX,
    ORDER_HEAD,
    ORDER_LEAVE,
    ORDER_TAKE,
    READ_FIELDS,
    UPSERT_SUBSCRIBER,
    AddPartArgs,
    AddPartKeys,
    CareArgs,
    CareKeys,
    FinishArgs,
    HashKeys,
    IdempotencyKeys,
    JournalIndexArgs,
    JournalIndexKeys,
    LeaveArgs,
    NoArgs,
    QueueKeys,
    ReserveArgs,
    TakeArgs,
    UpsertArgs,
)

UPSERT_CHUNK = 5000
KeysT = TypeVar("KeysT", bound=Sequence[str])
ArgsT = TypeVar("ArgsT", bound=Sequence[Any])
ResultT = TypeVar("ResultT")


@record
class PartLimits:
    """How long a concatenated message's parts wait for the rest (from the first part),
    and how many incomplete messages one sender may have at once."""

    ttl_seconds: int
    open_messages: int


@record
class Assembly:
    """What `add_part` found: "partial", "whole" (with the text and the message's id),
    "too_many" (the sender has too many incomplete messages), "total_changed" (this part
    names another total than the message's first part), "unreadable" (a stored part
    that does not open)."""

    state: str
    text: str = ""
    message_id: str = ""


@record
class SubscriberRow:
    msisdn: str
    plan: str
    balance: int
    bill: int
    language: str


class Store:
    """Thin, typed access to Redis and the scripts; no business rule lives here."""

    def __init__(self, client: aioredis.Redis, embedded: bool, cluster: bool = False,
                 single_slot: bool | None = None) -> None:
        self.redis = client
        self.embedded = embedded
        self.cluster = cluster
        # single-slot mode: every script call keeps to one slot (journaled transfers).
        self.single_slot = cluster if single_slot is None else single_slot
        # ... checked here off a cluster; on one, redis-py itself refuses a cross-slot call
        self._check_slots = self.single_slot and not cluster
        pipe = None
        if not (embedded or cluster):
            pool = client.connection_pool
            if ScriptPipe.supports(pool.connection_class):
                pipe = ScriptPipe(pool.connection_kwargs)
        nodes = (NodePipes(cast(RedisCluster, client))
                 if cluster and NodePipes.usable_for(cast(RedisCluster, client)) else None)
        self._batcher = ScriptBatcher(client, pipe, nodes)

    @classmethod
    def connect(cls, url: str, cluster: bool = False, single_slot: bool | None = None) -> Store:
        """A server store for a `redis://` URL (one node of it, when `cluster`); the
        embedded in-process store for ""."""
        if url and cluster:
            return cls(connect.cluster_client(url), embedded=False, cluster=True,
                       single_slot=single_slot)
        if url:
            return cls(connect.server_client(url), embedded=False, single_slot=single_slot)
        return cls(connect.embedded_client(), embedded=True, single_slot=single_slot)

    async def close(self) -> None:
        self._batcher.close()
        await self.redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except UNAVAILABLE:
            return False

    async def load_scripts(self) -> None:
        """Load every script now, if the store answers (else the first call loads them)."""
        with contextlib.suppress(*UNAVAILABLE):
            await self._batcher.load()

    async def check_mode(self) -> None:
        """Refuse a plain client on a cluster node: it would see one node's keys only."""
        if self.embedded or self.cluster:
            return
        info = await self.refusable(self.redis.info("cluster"))  # refused: not known
        if isinstance(info, dict) and info.get("cluster_enabled"):
            raise WrongStoreMode("the Redis URL names a Redis Cluster node: set [redis] "
                                 "cluster = true (or SMSGW_REDIS_CLUSTER=true)")

    async def durability_gaps(self) -> list[str]:
        """What of Redis's settings would let a power cut take back what was answered
        (durability.py)."""
        return await durability.gaps(self)

    async def refusable(self, pending: Any) -> Any:
        """A command's answer, or None where the server refuses it (an ACL without it, a
        renamed command)."""
        try:
            return await self.plain(pending)
        except aioredis.ResponseError:
            return None

    # -- script calls ---------------------------------------------------------------

    async def run(self, script: Script[KeysT, ArgsT, ResultT], keys: KeysT,
                  args: ArgsT) -> ResultT:
        """One atomic script call, pipelined with the others of this event-loop turn."""
        return script.result(await self._call(script, keys, args))

    async def run_command(self, script: Script[KeysT, ArgsT, ResultT], message: Inbound,
                          keys: KeysT, args: ArgsT) -> ResultT:
        """A command script, with the message's envelope (scripts/_prelude.lua) first."""
        if not script.envelope:
            raise TypeError(f"{script.name} takes no envelope")
        envelope_keys, envelope_args = envelope(message, not self.single_slot)
        return script.result(await self._call(script, envelope_keys + tuple(keys),
                                              envelope_args + tuple(args)))

    def _call(self, script: Script[Any, Any, Any], keys: Sequence[str],
              args: Sequence[Any]) -> asyncio.Future[Any]:
        if self._check_slots and len({key_slot(key.encode()) for key in keys}) > 1:
            raise CrossSlotCall(f"{script.name}: keys of several slots: {keys}")
        return self._batcher.call(script, keys, args)

    async def plain(self, pending: Any) -> Any:
        """A plain Redis command's answer; StoreUnavailable if the store can't be reached."""
        try:
            return await pending
        except UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    # -- the transport's calls ------------------------------------------------------

    async def add_part(self, sender: str, message_key: str, number: int, total: int,
                       text: str, limits: PartLimits, message_id: str,
                       open_part: Callable[[int, str], str] | None = None) -> Assembly:
        """Store one part of a concatenated message (`message_id` names the message if
        this part is its first); the whole once every part is in. The parts stay until
        `forget_parts`, so a whole whose command failed is found again on redelivery.
        `open_part(number, stored)`: how a stored part reads back (the transport seals
        them: a command's PIN is never in the store in clear); ValueError from it:
        "unreadable"."""
        found = await self.run(
            ADD_PART, AddPartKeys(parts_key(sender, message_key), open_parts_key(sender)),
            AddPartArgs(number, total, text, limits.ttl_seconds, limits.open_messages,
                        message_id))
        state = str(found[0])
        if state != "whole":
            return Assembly(state)
        parts = [str(part) for part in found[2:]]
        try:
            if open_part is not None:
                parts = [open_part(number, part) for number, part in enumerate(parts, 1)]
        except ValueError:  # sealed with another key (rotated meanwhile), or damaged
            return Assembly("unreadable")
        return Assembly(state, "".join(parts), str(found[1]))

    async def forget_parts(self, sender: str, message_key: str) -> None:
        """Drop the parts of a message whose command has been applied."""
        key = parts_key(sender, message_key)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            pipe.zrem(open_parts_key(sender), key)
            await self.plain(pipe.execute())

    async def confirm_answered(self, answered: list[tuple[str, str, str]]) -> None:
        """Drop the redelivery candidates (sender, digest, field) of safely answered
        messages: one script call per batch (per slot on a cluster), not one per message."""
        groups: dict[int, tuple[list[str], list[str]]] = {}
        for sender, digest, field in answered:
            key = redelivery_key(sender, digest)
            slot = key_slot(key.encode()) if self.single_slot else 0
            keys, fields = groups.setdefault(slot, ([], []))
            keys.append(key)
            fields.append(field)
        await asyncio.gather(*(self.run(CONFIRM, keys, fields)
                               for keys, fields in groups.values()))

    async def order_take(self, sender: str, ticket: str, lease_ms: int) -> str:
        """Join the sender's arrival queue (ordering.py); the ticket at its head."""
        return await self.run(ORDER_TAKE, QueueKeys(order_key(sender)), TakeArgs(ticket, lease_ms))

    async def order_head(self, sender: str) -> str:
        return await self.run(ORDER_HEAD, QueueKeys(order_key(sender)), NoArgs())

    async def order_leave(self, sender: str, ticket: str) -> None:
        await self.run(ORDER_LEAVE, QueueKeys(order_key(sender)), LeaveArgs(ticket))

    # -- subscribers ----------------------------------------------------------------

    async def subscriber(self, msisdn: str) -> dict[str, str]:
        return cast(dict[str, str], await self.redis.hgetall(subscriber_key(msisdn)))

    async def subscriber_language(self, msisdn: str) -> str:
        (value,) = await self.subscriber_fields(msisdn, "lang")
        return value or ""

    async def subscriber_fields(self, msisdn: str, *fields: str) -> list[str | None]:
        return await self.run(READ_FIELDS, HashKeys(subscriber_key(msisdn)), list(fields))

    async def sent_in(self, msisdn: str, day: str, month: str) -> tuple[int, int]:
        today, this_month = await self.redis.mget(
            day_counter_key(msisdn, day), month_counter_key(msisdn, month)
        )
        return int(today or 0), int(this_month or 0)

    async def history(self, msisdn: str, limit: int = HISTORY_LENGTH) -> list[dict[str, Any]]:
        entries = await self.plain(self.redis.lrange(history_key(msisdn), 0, limit - 1))
        return [json.loads(entry) for entry in entries]

    async def append_history(self, msisdn: str, entry: dict[str, Any]) -> None:
        key = history_key(msisdn)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(key, json.dumps(entry, ensure_ascii=False))
            pipe.ltrim(key, 0, HISTORY_LENGTH - 1)
            await pipe.execute()

    async def care_action(
        self, msisdn: str, action: str, at: str, amount: int = 0, note: str = ""
    ) -> dict[str, Any]:
        return await self.run(CARE, CareKeys(subscriber_key(msisdn), history_key(msisdn)),
                              CareArgs(action, at, amount, note))

    async def upsert_subscribers(
        self, rows: list[SubscriberRow], replace: bool, at: str
    ) -> list[str]:
        outcomes: list[str] = []
        for start in range(0, len(rows), UPSERT_CHUNK):
            outcomes += await asyncio.gather(*(
                self.run(UPSERT_SUBSCRIBER,
                         CareKeys(subscriber_key(row.msisdn), history_key(row.msisdn)),
                         UpsertArgs(row.plan, row.balance, row.bill, row.language,
                                    int(replace), at))
                for row in rows[start:start + UPSERT_CHUNK]))
        return outcomes

    async def all_subscribers(self) -> dict[str, dict[str, str]]:
        """Every subscriber hash (for audits and the money check; scans the keyspace)."""
        found: dict[str, dict[str, str]] = {}
        async for key in self.redis.scan_iter(match="s:{*}", count=1000):
            if key.endswith("}"):
                found[key[3:-1]] = cast(dict[str, str], await self.redis.hgetall(key))
        return found

    # -- Idempotency-Key records of the HTTP API (transport/idempotency.py) ------------

    async def reserve_idempotency_key(self, key_digest: str, fingerprint: str, owner: str,
                                      lease_seconds: int) -> tuple[str, str]:
        """("reserved" | "mismatch" | "pending" | "done", the answer kept if done)."""
        found = await self.run(IDEMPOTENCY_RESERVE, IdempotencyKeys(
            idempotency_record_key(key_digest)), ReserveArgs(fingerprint, owner, lease_seconds))
        return str(found[0]), str(found[1]) if len(found) > 1 else ""

    async def finish_idempotency_key(self, key_digest: str, owner: str, answer: str,
                                     lifetime_seconds: int) -> bool:
        """Keep the answer (or, for "", give the key back) if `owner` still holds it."""
        kept: int = await self.run(IDEMPOTENCY_FINISH, IdempotencyKeys(
            idempotency_record_key(key_digest)), FinishArgs(owner, answer, lifetime_seconds))
        return bool(kept)

    # -- cards (their scripts: services/otp/store.py) --------------------------------

    async def card(self, card_hash: str) -> dict[str, str]:
        return cast(dict[str, str], await self.plain(self.redis.hgetall(card_key(card_hash))))

    async def card_history(
        self, card_hash: str, limit: int = HISTORY_LENGTH
    ) -> list[dict[str, Any]]:
        entries = await self.plain(self.redis.lrange(card_history_key(card_hash), 0, limit - 1))
        return [json.loads(entry) for entry in entries]

    # -- journaled transfers (single-slot mode; their scripts: services/transfer/) ----

    async def journal_entries(self, sender: str, *txids: str) -> dict[str, dict[str, Any]]:
        """The sender's debited, unsettled transfers (these ids, or all): txid -> entry."""
        key = journal_key(sender)
        if txids:
            found = await self.plain(self.redis.hmget(key, list(txids)))
            entries = {t: e for t, e in zip(txids, found, strict=True) if e is not None}
        else:
            entries = await self.plain(self.redis.hgetall(key))
        return {txid: orjson.loads(entry) for txid, entry in entries.items()}

    async def index_journal(self, sender: str, txid: str, at_ms: int) -> None:
        """Written before the debit: an entry whose debit never happened, or whose
        transfer is finished, is only dropped by the next recovery."""
        await self.run(JOURNAL_INDEX, JournalIndexKeys(journal_index_key(sender)),
                       JournalIndexArgs(f"{sender}|{txid}", str(at_ms)))

    async def unindex_journal(self, sender: str, txid: str) -> None:
        await self.run(JOURNAL_INDEX, JournalIndexKeys(journal_index_key(sender)),
                       JournalIndexArgs(f"{sender}|{txid}", ""))

    async def indexed_journals(self, cutoff_ms: int) -> tuple[list[tuple[str, str]], int]:
        """The (sender, txid) of indexed transfers from before `cutoff_ms`, and how many
        are younger (left to their own gateway)."""
        old: list[tuple[str, str]] = []
        young = 0
        for shard in range(JOURNAL_INDEX_SHARDS):
            key = journal_index_shard_key(shard)
            for member in await self.plain(self.redis.zrangebyscore(key, "-inf", cutoff_ms)):
                sender, _, txid = member.partition("|")
                old.append((sender, txid))
            young += await self.plain(self.redis.zcount(key, f"({cutoff_ms}", "+inf"))
        return old, young

    async def journal_senders(self) -> list[str]:
        """Senders with unsettled transfers, by a scan of the whole keyspace (a full
        recovery: finds journals written before the index existed too)."""
        senders = []
        async for key in self.redis.scan_iter(match="s:{*}:tx", count=1000):
            senders.append(key[3:key.index("}")])
        return senders

    async def was_credited(self, recipient: str, txid: str) -> bool:
        return await self.plain(self.redis.zscore(credited_key(recipient), txid)) is not None

    async def money(self) -> int:
        """The money invariant over the whole store (audit.py)."""
        return await audit.money(self)

