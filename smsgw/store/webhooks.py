"""The store side of webhook events (services/otp/events.py writes, workers/webhooks.py
delivers): every key in one hash tag, `{hooks}`, so each step is one atomic script call
on one slot of a cluster, and the due and expiry indexes need no scan. (OTP volumes are
a few events per payment: one slot carries them easily.)

Per request: a registration (last four, open/closed), a queue of its events in order,
and the attempts of the queue's first event; an index of requests due for delivery and
one of OTP expiries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from smsgw.core.records import record
from smsgw.store import Store
from smsgw.store.script import Script

SCRIPTS = Path(__file__).with_name("scripts")

REGISTRATION_TTL = 2 * 24 * 3600
TAG = "{hooks}"
DUE_KEY = f"wh:{TAG}:due"
EXPIRY_KEY = f"wh:{TAG}:exp"


def registration_key(request_id: str, sent: bool = True) -> str:
    return f"wh:{TAG}:{'r' if sent else 's'}:{request_id}"


def queue_key(request_id: str) -> str:
    return f"wh:{TAG}:q:{request_id}"


def tries_key(request_id: str) -> str:
    return f"wh:{TAG}:t:{request_id}"


@record
class Head:
    """A request's first undelivered event: its raw JSON, and its attempts so far."""

    request_id: str
    raw: str | None  # None: the queue is empty
    attempts: int
    first_attempt: float | None


class RegisterKeys(NamedTuple):
    registration: str  # the request's (or its silent twin's: no event reads that one)
    expiries: str  # request id -> when its OTP expires (the otp.expired sweep)


class RegisterArgs(NamedTuple):
    last4: str
    expires_at: float  # epoch s
    request_id: str
    lifetime_seconds: int


class EmitKeys(NamedTuple):
    registration: str
    queue: str  # the request's events, in order (a list)
    due: str  # request id -> next attempt (epoch s)
    expiries: str


class EmitArgs(NamedTuple):
    request_id: str
    event_id: str
    kind: str  # otp.sent, otp.delivered, ...
    at: str  # ISO moment
    detail: str  # a JSON object
    now: float
    closes: int  # 1: a verdict (verified, voided, expired), which closes the request
    lifetime_seconds: int


class TakeKeys(NamedTuple):
    due: str


class TakeArgs(NamedTuple):
    now: float
    limit: int
    lease_seconds: float


class DoneKeys(NamedTuple):
    queue: str
    due: str
    tries: str  # the head event's attempts (a hash)


class DoneArgs(NamedTuple):
    request_id: str
    event_id: str
    outcome: str  # "retry" | "done"
    next_at: float
    began: float


REGISTER = Script(SCRIPTS / "webhook_register.lua", RegisterKeys, RegisterArgs, int)
EMIT = Script(SCRIPTS / "webhook_emit.lua", EmitKeys, EmitArgs, int)
TAKE = Script(SCRIPTS / "webhook_take.lua", TakeKeys, TakeArgs, list[str])
DONE = Script(SCRIPTS / "webhook_done.lua", DoneKeys, DoneArgs, int)


class WebhookStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def register(self, request_id: str, last4: str, expires_at: float, sent: bool) -> None:
        await self._store.run(
            REGISTER, RegisterKeys(registration_key(request_id, sent), EXPIRY_KEY),
            RegisterArgs(last4, expires_at, request_id, REGISTRATION_TTL))

    async def emit(self, request_id: str, event_id: str, kind: str, at: str, detail: str,
                   now: float, closes: bool) -> bool:
        appended: int = await self._store.run(
            EMIT, EmitKeys(registration_key(request_id), queue_key(request_id), DUE_KEY,
                           EXPIRY_KEY),
            EmitArgs(request_id, event_id, kind, at, detail, now, int(closes),
                     REGISTRATION_TTL))
        return bool(appended)

    async def expired(self, now: float, limit: int) -> list[str]:
        """Requests whose OTP expired by `now` and that are still in the expiry index."""
        redis = self._store.redis
        return list(await self._store.plain(
            redis.zrangebyscore(EXPIRY_KEY, "-inf", now, start=0, num=limit)))

    async def take(self, now: float, limit: int, lease_seconds: float) -> list[str]:
        return [str(r) for r in await self._store.run(
            TAKE, TakeKeys(DUE_KEY), TakeArgs(now, limit, lease_seconds))]

    async def head(self, request_id: str) -> Head:
        redis = self._store.redis
        raw = await self._store.plain(redis.lindex(queue_key(request_id), 0))
        tries: dict[str, Any] = await self._store.plain(redis.hgetall(tries_key(request_id)))
        first = tries.get("first")
        return Head(request_id, raw, int(tries.get("attempts", 0)),
                    float(first) if first is not None else None)

    async def done(self, request_id: str, event_id: str, began: float) -> None:
        await self._finish(request_id, event_id, "done", began, began)

    async def retry(self, request_id: str, event_id: str, next_at: float, began: float) -> None:
        await self._finish(request_id, event_id, "retry", next_at, began)

    async def _finish(self, request_id: str, event_id: str, outcome: str, next_at: float,
                      began: float) -> None:
        await self._store.run(
            DONE, DoneKeys(queue_key(request_id), DUE_KEY, tries_key(request_id)),
            DoneArgs(request_id, event_id, outcome, next_at, began))

    async def backlog(self) -> int:
        """Requests with events waiting (for metrics and tests)."""
        return int(await self._store.plain(self._store.redis.zcard(DUE_KEY)))

    async def queued(self, request_id: str) -> list[str]:
        return list(await self._store.plain(self._store.redis.lrange(queue_key(request_id),
                                                                    0, -1)))
