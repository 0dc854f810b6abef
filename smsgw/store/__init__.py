"""The store: Redis (a server, or the embedded fakeredis) and its server-side scripts.

Every change to money, limits, PINs and strikes happens inside one Lua script call, so two
messages can never interleave half-way. Scripts are loaded once and called by SHA, in
pipelines (batcher.py); a NOSCRIPT answer loads them again.

Keys: all of one subscriber's keys share the hash tag `{<msisdn>}`, all of one card's
`{<card digest>}`, so that on a Redis Cluster each sits in one slot. No script touches
keys of two slots: work that spans two subscribers (a transfer) is done in journaled
steps (services/transfer.py), and `Store(single_slot=True)` refuses a call that breaks
the rule, on any server, so that the tests catch it without a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from smsgw.core.money import MONEY_CEILING
from smsgw.messages import Inbound
from smsgw.store.batcher import UNAVAILABLE, ScriptBatcher
from smsgw.store.pipe import ScriptPipe

SCRIPT_DIR = Path(__file__).parent / "scripts"
HISTORY_LENGTH = 1000
DAY_COUNTER_TTL = 3 * 24 * 3600
MONTH_COUNTER_TTL = 70 * 24 * 3600
MAX_CONNECTIONS = 64
MAX_CLUSTER_CONNECTIONS = 256  # per node; the cluster client fails (not waits) beyond it
UPSERT_CHUNK = 5000
REQUEST_TTL = 3600  # an OTP request id's record (the scripts keep decoy state as long)


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


def parts_key(msisdn: str, message_key: str) -> str:
    """The parts of one concatenated message of this sender (a hash)."""
    return f"s:{{{msisdn}}}:parts:{message_key}"


def open_parts_key(msisdn: str) -> str:
    """The sender's incomplete concatenated messages (a zset: parts key -> expiry, ms)."""
    return f"s:{{{msisdn}}}:po"


def journal_key(msisdn: str) -> str:
    """The sender's transfers debited but not yet settled (txid -> JSON entry)."""
    return f"s:{{{msisdn}}}:tx"


JOURNAL_INDEX_SHARDS = 64


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


def order_key(msisdn: str) -> str:
    """The sender's arrival queue across gateway processes (ordering.py)."""
    return f"s:{{{msisdn}}}:o"


def card_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}"


def card_history_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}:h"


def card_requests_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}:rq"


def card_decoy_key(card_hash: str) -> str:
    """The OTP and strike state of requests that send no SMS (services/otp.py), so that
    they are checked by the same work as a real card's, without the card key existing."""
    return f"c:{{{card_hash}}}:decoy"


def card_decoy_history_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}:decoy:h"


def card_static_key(card_hash: str, day: str) -> str:
    return f"c:{{{card_hash}}}:st:{day}"


def mobile_cards_key(msisdn: str) -> str:
    return f"s:{{{msisdn}}}:cards"


def mobile_requests_key(msisdn: str) -> str:
    return f"s:{{{msisdn}}}:otprq"


def request_key(request_id: str) -> str:
    return f"q:{{{request_id}}}"


def idempotency_record_key(key_digest: str) -> str:
    """What an Idempotency-Key of the HTTP API holds (its own slot)."""
    return f"ik:{{{key_digest}}}"


def unused_key(msisdn: str) -> str:
    """A placeholder in the sender's slot, for an envelope key a message does not use."""
    return f"s:{{{msisdn}}}:-"


def script_prelude() -> str:
    """What every script starts with: the money ceiling (the one definition is money.py's),
    then _prelude.lua."""
    return (f"local MONEY_CEILING = {MONEY_CEILING}\n"
            + (SCRIPT_DIR / "_prelude.lua").read_text(encoding="utf-8"))


class StoreUnavailable(Exception):
    """The store cannot be reached: the message must not be taken (retry later)."""


class WrongStoreMode(Exception):
    """The URL names a Redis Cluster node, but the store was not opened as a cluster."""


class CrossSlotCall(RuntimeError):
    """A programming error: one script call named keys of two cluster slots."""


@dataclass(frozen=True, slots=True)
class PartLimits:
    """How long a concatenated message's parts wait for the rest (from the first part),
    and how many incomplete messages one sender may have at once."""

    ttl_seconds: int
    open_messages: int


@dataclass(frozen=True, slots=True)
class Assembly:
    """What `add_part` found: "partial", "whole" (with the text and the message's id),
    "too_many" (the sender has too many incomplete messages), "total_changed" (this part
    names another total than the message's first part)."""

    state: str
    text: str = ""
    message_id: str = ""


@dataclass(frozen=True, slots=True)
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
        prelude = script_prelude()
        sources = {path.stem: prelude + path.read_text(encoding="utf-8")
                   for path in sorted(SCRIPT_DIR.glob("[!_]*.lua"))}
        pipe = None
        if not (embedded or cluster):
            pool = client.connection_pool
            if ScriptPipe.supports(pool.connection_class):
                pipe = ScriptPipe(pool.connection_kwargs)
        self._batcher = ScriptBatcher(client, sources, pipe)

    @classmethod
    def connect(cls, url: str, cluster: bool = False, single_slot: bool | None = None) -> Store:
        """A server store for a `redis://` URL (one node of it, when `cluster`); the
        embedded in-process store for ""."""
        if url and cluster:
            nodes = RedisCluster.from_url(
                url, decode_responses=True, max_connections=MAX_CLUSTER_CONNECTIONS,
                socket_timeout=5, socket_connect_timeout=2, health_check_interval=30,
            )
            return cls(cast(aioredis.Redis, nodes), embedded=False, cluster=True,
                       single_slot=single_slot)
        if url:
            # A bounded pool that waits for a free connection rather than failing a burst.
            pool = aioredis.BlockingConnectionPool.from_url(
                url, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=10,
                socket_timeout=5, socket_connect_timeout=2, health_check_interval=30,
                **_checked_pool_options(),
            )
            return cls(aioredis.Redis(connection_pool=pool), embedded=False,
                       single_slot=single_slot)
        import fakeredis

        client = fakeredis.FakeAsyncRedis(
            decode_responses=True, max_connections=MAX_CONNECTIONS,
            connection_pool_class=aioredis.BlockingConnectionPool,
        )
        return cls(client, embedded=True, single_slot=single_slot)

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
        if (await self._read(self.redis.info("cluster"))).get("cluster_enabled"):
            raise WrongStoreMode("the Redis URL names a Redis Cluster node: set [redis] "
                                 "cluster = true (or SMSGW_REDIS_CLUSTER=true)")

    async def run_script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One atomic script call, pipelined with the others of this event-loop turn."""
        if self._check_slots and len({key_slot(key.encode()) for key in keys}) > 1:
            raise CrossSlotCall(f"{name}: keys of several slots: {keys}")
        return await self._batcher.call(name, keys, args)

    async def run_json_script(self, name: str, keys: list[str], args: list[Any]) -> dict[str, Any]:
        return cast(dict[str, Any], orjson.loads(await self.run_script(name, keys, args)))

    async def run_command(self, name: str, message: Inbound, keys: list[str],
                          args: list[Any]) -> dict[str, Any]:
        """A command script with the message's envelope (see scripts/_prelude.lua)."""
        envelope_keys, envelope_args = _envelope(message)
        return await self.run_json_script(name, envelope_keys + keys, envelope_args + args)

    async def add_part(self, sender: str, message_key: str, number: int, total: int,
                       text: str, limits: PartLimits, message_id: str) -> Assembly:
        """Store one part of a concatenated message (`message_id` names the message if
        this part is its first); the whole once every part is in. The parts stay until
        `forget_parts`, so a whole whose command failed is found again on redelivery."""
        found = await self.run_script(
            "add_part", [parts_key(sender, message_key), open_parts_key(sender)],
            [number, total, text, limits.ttl_seconds, limits.open_messages, message_id])
        state = str(found[0])
        if state != "whole":
            return Assembly(state)
        return Assembly(state, "".join(found[2:]), str(found[1]))

    async def forget_parts(self, sender: str, message_key: str) -> None:
        """Drop the parts of a message whose command has been applied."""
        key = parts_key(sender, message_key)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            pipe.zrem(open_parts_key(sender), key)
            await self._read(pipe.execute())

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
        await asyncio.gather(*(self.run_script("confirm", keys, fields)
                               for keys, fields in groups.values()))

    async def order_take(self, sender: str, ticket: str, lease_ms: int) -> str:
        """Join the sender's arrival queue (ordering.py); the ticket at its head."""
        return str(await self.run_script("order_take", [order_key(sender)], [ticket, lease_ms]))

    async def order_head(self, sender: str) -> str:
        return str(await self.run_script("order_head", [order_key(sender)], []))

    async def order_leave(self, sender: str, ticket: str) -> None:
        await self.run_script("order_leave", [order_key(sender)], [ticket])

    async def subscriber(self, msisdn: str) -> dict[str, str]:
        return cast(dict[str, str], await self.redis.hgetall(subscriber_key(msisdn)))

    async def subscriber_language(self, msisdn: str) -> str:
        (value,) = await self.subscriber_fields(msisdn, "lang")
        return value or ""

    async def subscriber_fields(self, msisdn: str, *fields: str) -> list[str | None]:
        return cast(list[str | None],
                    await self.run_script("read_fields", [subscriber_key(msisdn)], list(fields)))

    async def sent_in(self, msisdn: str, day: str, month: str) -> tuple[int, int]:
        today, this_month = await self.redis.mget(
            day_counter_key(msisdn, day), month_counter_key(msisdn, month)
        )
        return int(today or 0), int(this_month or 0)

    async def history(self, msisdn: str, limit: int = HISTORY_LENGTH) -> list[dict[str, Any]]:
        entries = await self._read(self.redis.lrange(history_key(msisdn), 0, limit - 1))
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
        return await self.run_json_script(
            "care",
            [subscriber_key(msisdn), history_key(msisdn)],
            [action, at, HISTORY_LENGTH, amount, note],
        )

    async def upsert_subscribers(
        self, rows: list[SubscriberRow], replace: bool, at: str
    ) -> list[str]:
        outcomes: list[str] = []
        for start in range(0, len(rows), UPSERT_CHUNK):
            outcomes += await asyncio.gather(*(
                self.run_script(
                    "upsert_subscriber",
                    [subscriber_key(row.msisdn), history_key(row.msisdn)],
                    [row.plan, row.balance, row.bill, row.language, int(replace), at,
                     HISTORY_LENGTH])
                for row in rows[start:start + UPSERT_CHUNK]))
        return outcomes

    async def cards_of_mobile(self, msisdn: str) -> dict[str, str]:
        """card digest -> last four digits, for every card registered to this mobile.
        (The index may name a card that has moved since: see `active_cards`.)"""
        return cast(dict[str, str], await self._read(self.redis.hgetall(mobile_cards_key(msisdn))))

    async def active_cards(self, card_hashes: list[str], mobile: str) -> list[str]:
        """Those of the cards that are active and registered to this mobile now."""
        if not card_hashes:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for card_hash in card_hashes:
                pipe.hmget(card_key(card_hash), ["state", "mobile"])
            found = await self._read(pipe.execute())
        return [card_hash for card_hash, (state, owner) in zip(card_hashes, found, strict=True)
                if state == "active" and owner == mobile]

    async def card_route(self, card_hash: str) -> tuple[str | None, str | None]:
        """The card's state and registered mobile (None, None for an unknown card)."""
        state, mobile = await self._read(self.redis.hmget(card_key(card_hash),
                                                          ["state", "mobile"]))
        return state, mobile

    async def card(self, card_hash: str) -> dict[str, str]:
        return cast(dict[str, str], await self._read(self.redis.hgetall(card_key(card_hash))))

    async def reserve_mobile_request(self, mobile: str, now: float, request_id: str,
                                     max_per_hour: int) -> tuple[int, str]:
        """Count a request against the mobile's hourly limit: (0, or seconds to wait;
        the mobile's reply language, '' if none chosen)."""
        wait, language = await self.run_script(
            "otp_mobile_reserve", [mobile_requests_key(mobile), subscriber_key(mobile)],
            [now, request_id, max_per_hour])
        return int(wait), str(language)

    async def release_mobile_request(self, mobile: str, request_id: str) -> None:
        await self._read(self.redis.zrem(mobile_requests_key(mobile), request_id))

    async def record_request(self, request_id: str, card_hash: str) -> None:
        """Which card a request id is for (the same record, sent an SMS or not)."""
        key = request_key(request_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, "card", card_hash)
            pipe.expire(key, REQUEST_TTL)
            await self._read(pipe.execute())

    async def request_card(self, request_id: str) -> str | None:
        return cast(str | None, await self._read(self.redis.hget(request_key(request_id),
                                                                 "card")))

    async def reserve_idempotency_key(self, key_digest: str, fingerprint: str, owner: str,
                                      lease_seconds: int) -> tuple[str, str]:
        """("reserved" | "mismatch" | "pending" | "done", the answer kept if done)."""
        found = await self.run_script("idempotency_reserve", [idempotency_record_key(key_digest)],
                                      [fingerprint, owner, lease_seconds])
        return str(found[0]), str(found[1]) if len(found) > 1 else ""

    async def finish_idempotency_key(self, key_digest: str, owner: str, answer: str,
                                     lifetime_seconds: int) -> bool:
        """Keep the answer (or, for "", give the key back) if `owner` still holds it."""
        return bool(await self.run_script(
            "idempotency_finish", [idempotency_record_key(key_digest)],
            [owner, answer, lifetime_seconds]))

    async def card_history(
        self, card_hash: str, limit: int = HISTORY_LENGTH
    ) -> list[dict[str, Any]]:
        entries = await self._read(self.redis.lrange(card_history_key(card_hash), 0, limit - 1))
        return [json.loads(entry) for entry in entries]

    async def card_action(self, action: str, card_hash: str, at: str, last4: str = "",
                          card_type: str = "", mobile: str = "",
                          static_digest: str = "") -> dict[str, Any]:
        """One card action. The mobile -> cards index (another slot) is kept around it:
        an entry is added before the card names the mobile and removed after it stops,
        so the index is never missing a card; readers check the card's own mobile."""
        if mobile:
            last4 = last4 or (await self.card(card_hash)).get("last4", "")
            if last4:
                await self._read(self.redis.hset(mobile_cards_key(mobile), card_hash, last4))
        outcome = await self.run_json_script(
            "card_admin", [card_key(card_hash), card_history_key(card_hash)],
            [action, at, HISTORY_LENGTH, last4, card_type, mobile, static_digest])
        if outcome["status"] == "ok":
            stale = outcome.get("old_mobile") or ""
        else:  # "exists": the entry added above is wrong unless the card has that mobile
            stale = mobile if outcome.get("mobile") != mobile else ""
        if stale and stale != mobile:
            await self._read(self.redis.hdel(mobile_cards_key(stale), card_hash))
        return outcome

    async def read(self, pending: Any) -> Any:
        """Await one plain command; StoreUnavailable when the store can't be reached."""
        return await self._read(pending)

    async def _read(self, pending: Any) -> Any:
        try:
            return await pending
        except UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def all_subscribers(self) -> dict[str, dict[str, str]]:
        """Every subscriber hash (for audits and the money check; scans the keyspace)."""
        found: dict[str, dict[str, str]] = {}
        async for key in self.redis.scan_iter(match="s:{*}", count=1000):
            if key.endswith("}"):
                found[key[3:-1]] = cast(dict[str, str], await self.redis.hgetall(key))
        return found

    # -- journaled transfers (single-slot mode) -----------------------------------------

    async def journal_entries(self, sender: str, *txids: str) -> dict[str, dict[str, Any]]:
        """The sender's debited, unsettled transfers (these ids, or all): txid -> entry."""
        key = journal_key(sender)
        if txids:
            found = await self._read(self.redis.hmget(key, list(txids)))
            entries = {t: e for t, e in zip(txids, found, strict=True) if e is not None}
        else:
            entries = await self._read(self.redis.hgetall(key))
        return {txid: orjson.loads(entry) for txid, entry in entries.items()}

    async def index_journal(self, sender: str, txid: str, at_ms: int) -> None:
        """Written before the debit: an entry whose debit never happened, or whose
        transfer is finished, is only dropped by the next recovery."""
        await self._read(self.redis.zadd(journal_index_key(sender), {f"{sender}|{txid}": at_ms}))

    async def unindex_journal(self, sender: str, txid: str) -> None:
        await self._read(self.redis.zrem(journal_index_key(sender), f"{sender}|{txid}"))

    async def indexed_journals(self, cutoff_ms: int) -> tuple[list[tuple[str, str]], int]:
        """The (sender, txid) of indexed transfers from before `cutoff_ms`, and how many
        are younger (left to their own gateway)."""
        old: list[tuple[str, str]] = []
        young = 0
        for shard in range(JOURNAL_INDEX_SHARDS):
            key = journal_index_shard_key(shard)
            for member in await self._read(self.redis.zrangebyscore(key, "-inf", cutoff_ms)):
                sender, _, txid = member.partition("|")
                old.append((sender, txid))
            young += await self._read(self.redis.zcount(key, f"({cutoff_ms}", "+inf"))
        return old, young

    async def journal_senders(self) -> list[str]:
        """Senders with unsettled transfers, by a scan of the whole keyspace (a full
        recovery: finds journals written before the index existed too)."""
        senders = []
        async for key in self.redis.scan_iter(match="s:{*}:tx", count=1000):
            senders.append(key[3:key.index("}")])
        return senders

    async def reversal_reason(self, sender: str, txid: str) -> str | None:
        """Why this journaled transfer was reversed (the refusal its sender is told), or
        None if it was not. (A marker from before reasons were kept says "1".)"""
        reason = await self._read(self.redis.get(reversed_key(sender, txid)))
        if reason is None:
            return None
        return "unknown_recipient" if reason == "1" else str(reason)

    async def was_credited(self, recipient: str, txid: str) -> bool:
        return await self._read(self.redis.zscore(credited_key(recipient), txid)) is not None

    async def money(self) -> int:
        """The spec's invariant over the whole store, counting once each transfer that is
        debited but not yet credited (in flight between two slots)."""
        total = money_total(await self.all_subscribers())
        for sender in await self.journal_senders():
            for txid, entry in (await self.journal_entries(sender)).items():
                if not await self.was_credited(entry["recipient"], txid):
                    total += int(entry["amount"])
        return total


def _checked_pool_options() -> dict[str, Any]:
    """redis-py 8 hands out a pooled connection without checking that the server has not
    closed it (a restarted Redis) while its maintenance notifications are on, as they are
    by default ("auto"): the first command after a restart failed. Off, the pool checks
    each connection before a command goes to it and replaces a dead one."""
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:  # a redis-py without them: it always checks
        return {}
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


def _envelope(message: Inbound) -> tuple[list[str], list[Any]]:
    sender = message.sender
    remember = message.identity is not None and message.remember_seconds > 0
    processed = (processed_key(sender, message.identity)
                 if remember and message.identity is not None else unused_key(sender))
    redelivery = message.redelivery
    if redelivery is None:
        return ([processed, unused_key(sender)],
                [int(remember), message.remember_seconds, "", "", 0, 0])
    session = redelivery.field.partition("|")[2]
    return (
        [processed, redelivery_key(sender, redelivery.digest)],
        [int(remember), message.remember_seconds, session, redelivery.field,
         redelivery.window_seconds, int(redelivery.retry)],
    )


def money_total(subscribers: dict[str, dict[str, str]]) -> int:
    """The spec's invariant: sum of prepaid balances - sum of postpaid bills + fees collected."""
    total = 0
    for fields in subscribers.values():
        total += int(fields.get("balance") or 0) - int(fields.get("bill") or 0)
        total += int(fields.get("fees_paid") or 0)
    return total
