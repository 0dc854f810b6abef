"""The store: Redis (a server, or the embedded fakeredis) and its server-side scripts.

Every change to money, limits, PINs and strikes happens inside one Lua script call, so two
messages can never interleave half-way. Scripts are loaded once and called by SHA
(redis-py's `register_script` falls back to loading on NOSCRIPT).

Keys: all of one subscriber's keys share the hash tag `{<msisdn>}` so that on a Redis
Cluster they sit in one slot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from smsgw.messages import Inbound
from smsgw.store.batcher import ScriptBatcher

SCRIPT_DIR = Path(__file__).parent / "scripts"
HISTORY_LENGTH = 1000
DAY_COUNTER_TTL = 3 * 24 * 3600
MONTH_COUNTER_TTL = 70 * 24 * 3600
MAX_CONNECTIONS = 64


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


def card_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}"


def card_history_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}:h"


def card_requests_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}:rq"


def card_silent_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}:silent"


def card_static_key(card_hash: str, day: str) -> str:
    return f"c:{{{card_hash}}}:st:{day}"


def mobile_cards_key(msisdn: str) -> str:
    return f"s:{{{msisdn}}}:cards"


def mobile_requests_key(msisdn: str) -> str:
    return f"s:{{{msisdn}}}:otprq"


def request_key(request_id: str) -> str:
    return f"q:{{{request_id}}}"


def unused_key(msisdn: str) -> str:
    """A placeholder in the sender's slot, for an envelope key a message does not use."""
    return f"s:{{{msisdn}}}:-"


class StoreUnavailable(Exception):
    """The store cannot be reached: the message must not be taken (retry later)."""


@dataclass(frozen=True, slots=True)
class SubscriberRow:
    msisdn: str
    plan: str
    balance: int
    bill: int
    language: str


class Store:
    """Thin, typed access to Redis and the scripts; no business rule lives here."""

    def __init__(self, client: aioredis.Redis, embedded: bool) -> None:
        self.redis = client
        self.embedded = embedded
        prelude = (SCRIPT_DIR / "_prelude.lua").read_text(encoding="utf-8")
        sources = {path.stem: prelude + path.read_text(encoding="utf-8")
                   for path in sorted(SCRIPT_DIR.glob("[!_]*.lua"))}
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(source) for name, source in sources.items()}
        self._batcher = ScriptBatcher(client, sources)

    @classmethod
    def connect(cls, url: str) -> Store:
        """A server store for a `redis://` URL; the embedded in-process store for ""."""
        if url:
            # A bounded pool that waits for a free connection rather than failing a burst.
            pool = aioredis.BlockingConnectionPool.from_url(
                url, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=10,
                socket_timeout=5, socket_connect_timeout=2, health_check_interval=30,
            )
            return cls(aioredis.Redis(connection_pool=pool), embedded=False)
        import fakeredis

        client = fakeredis.FakeAsyncRedis(
            decode_responses=True, max_connections=MAX_CONNECTIONS,
            connection_pool_class=aioredis.BlockingConnectionPool,
        )
        return cls(client, embedded=True)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
            return False

    async def run_script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One atomic script call, pipelined with the others of this event-loop turn."""
        return await self._batcher.call(name, keys, args)

    async def run_json_script(self, name: str, keys: list[str], args: list[Any]) -> dict[str, Any]:
        return cast(dict[str, Any], orjson.loads(await self.run_script(name, keys, args)))

    async def run_command(self, name: str, message: Inbound, keys: list[str],
                          args: list[Any]) -> dict[str, Any]:
        """A command script with the message's envelope (see scripts/_prelude.lua)."""
        envelope_keys, envelope_args = _envelope(message)
        return await self.run_json_script(name, envelope_keys + keys, envelope_args + args)

    async def add_part(self, sender: str, message_key: str, number: int, total: int,
                       text: str, ttl: int) -> str | None:
        """Store one part of a concatenated message; the whole text once all are in."""
        texts = await self.run_script(
            "add_part", [f"s:{{{sender}}}:parts:{message_key}"], [number, total, text, ttl])
        return "".join(texts) if texts else None

    async def confirm_answered(self, answered: list[tuple[str, str, str]]) -> None:
        """Drop the redelivery candidates (sender, digest, field) of safely answered
        messages: one script call per batch, not a command per message."""
        await self.run_script("confirm",
                              [redelivery_key(sender, digest) for sender, digest, _ in answered],
                              [field for _, _, field in answered])

    async def subscriber(self, msisdn: str) -> dict[str, str]:
        return cast(dict[str, str], await self.redis.hgetall(subscriber_key(msisdn)))

    async def subscriber_language(self, msisdn: str) -> str:
        try:
            value = await self.redis.hget(subscriber_key(msisdn), "lang")
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return cast(str, value or "")

    async def sent_in(self, msisdn: str, day: str, month: str) -> tuple[int, int]:
        today, this_month = await self.redis.mget(
            day_counter_key(msisdn, day), month_counter_key(msisdn, month)
        )
        return int(today or 0), int(this_month or 0)

    async def history(self, msisdn: str, limit: int = HISTORY_LENGTH) -> list[dict[str, Any]]:
        entries = await self.redis.lrange(history_key(msisdn), 0, limit - 1)
        return [json.loads(entry) for entry in entries]

    async def append_history(self, msisdn: str, entry: dict[str, Any]) -> None:
        key = history_key(msisdn)
        async with self.redis.pipeline(transaction=True) as pipe:
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
        script = self._scripts["upsert_subscriber"]
        async with self.redis.pipeline(transaction=False) as pipe:
            for row in rows:
                await script(
                    keys=[subscriber_key(row.msisdn), history_key(row.msisdn)],
                    args=[row.plan, row.balance, row.bill, row.language,
                          int(replace), at, HISTORY_LENGTH],
                    client=pipe,
                )
            return cast(list[str], await pipe.execute())

    async def cards_of_mobile(self, msisdn: str) -> dict[str, str]:
        """card digest -> last four digits, for every card registered to this mobile."""
        return cast(dict[str, str], await self._read(self.redis.hgetall(mobile_cards_key(msisdn))))

    async def active_cards(self, card_hashes: list[str]) -> list[str]:
        if not card_hashes:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for card_hash in card_hashes:
                pipe.hget(card_key(card_hash), "state")
            states = await self._read(pipe.execute())
        return [h for h, state in zip(card_hashes, states, strict=True) if state == "active"]

    async def card_mobile(self, card_hash: str) -> str | None:
        return cast(str | None, await self._read(self.redis.hget(card_key(card_hash), "mobile")))

    async def card(self, card_hash: str) -> dict[str, str]:
        return cast(dict[str, str], await self._read(self.redis.hgetall(card_key(card_hash))))

    async def request_record(self, request_id: str) -> dict[str, str]:
        return cast(dict[str, str], await self._read(self.redis.hgetall(request_key(request_id))))

    async def card_history(
        self, card_hash: str, limit: int = HISTORY_LENGTH
    ) -> list[dict[str, Any]]:
        entries = await self._read(self.redis.lrange(card_history_key(card_hash), 0, limit - 1))
        return [json.loads(entry) for entry in entries]

    async def card_action(self, action: str, card_hash: str, at: str, last4: str = "",
                          card_type: str = "", mobile: str = "", static_digest: str = "",
                          old_mobile: str = "") -> dict[str, Any]:
        return await self.run_json_script(
            "card_admin",
            [card_key(card_hash), card_history_key(card_hash),
             mobile_cards_key(mobile) if mobile else unused_key("none"),
             mobile_cards_key(old_mobile) if old_mobile else unused_key("none")],
            [action, at, HISTORY_LENGTH, card_hash, last4, card_type, mobile, static_digest])

    async def _read(self, pending: Any) -> Any:
        try:
            return await pending
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def all_subscribers(self) -> dict[str, dict[str, str]]:
        """Every subscriber hash (for audits and the money check; scans the keyspace)."""
        found: dict[str, dict[str, str]] = {}
        async for key in self.redis.scan_iter(match="s:{*}", count=1000):
            if key.endswith("}"):
                found[key[3:-1]] = cast(dict[str, str], await self.redis.hgetall(key))
        return found


def _envelope(message: Inbound) -> tuple[list[str], list[Any]]:
    sender = message.sender
    remember = message.identity is not None and message.remember_seconds > 0
    processed = (processed_key(sender, message.identity)
                 if remember and message.identity is not None else unused_key(sender))
    redelivery = message.redelivery
    if redelivery is None:
        return [processed, unused_key(sender)], [int(remember), message.remember_seconds, "", "", 0]
    session = redelivery.field.partition("|")[2]
    return (
        [processed, redelivery_key(sender, redelivery.digest)],
        [int(remember), message.remember_seconds, session, redelivery.field,
         redelivery.window_seconds],
    )


def money_total(subscribers: dict[str, dict[str, str]]) -> int:
    """The spec's invariant: sum of prepaid balances - sum of postpaid bills + fees collected."""
    total = 0
    for fields in subscribers.values():
        total += int(fields.get("balance") or 0) - int(fields.get("bill") or 0)
        total += int(fields.get("fees_paid") or 0)
    return total
