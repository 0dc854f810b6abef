"""`Idempotency-Key` on POST /v1/otp and POST /v1/payments/authorize (interfaces.md).

A retry with the same key and the same body within 24 hours gets the first answer again
(same request_id; no second SMS, authorisation or strike); the same key with another
body, or on the other route, gets 422. The store keeps only keyed digests of the key and
of the request (route and body: a body holds a card number and a password).

Design: reserve, work, finish. The key's record sits in its own cluster slot (a key is
not tied to a card: the same key with another card must be found to get 422), and the
work spans the card's and the mobile's slots, so the key cannot share one script call
with the work. Instead:
1. reserve (idempotency_reserve.lua, atomic): an absent key becomes "pending", owned by
   this request, with a lease; a "done" key gives its answer; another fingerprint is
   422; a pending one (a duplicate arriving at once) is polled until it is done, and
   after WAIT_SECONDS answered 409 with Retry-After.
2. the work, once (the SMS is handed on only here).
3. finish (idempotency_finish.lua): a 2xx answer is kept for 24 hours; any other (429,
   an error) gives the key back, so a later retry does the work (as Stripe does).
Failure modes: a process that dies between 1 and 3 leaves a pending record that lapses
after LEASE_SECONDS; meanwhile retries get 409; after it, a retry does the work again:
for /v1/otp a new OTP (under the resend limit: 429 within its gap), for an OTP payment
nothing (that OTP is used up: declined), for a static-password payment a second approval
counted toward the day's static total. Finishing that fails (the store went away after
the work) still gives the caller its answer, and the record lapses the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import field
from typing import Any

from smsgw.core.hashing import Hasher
from smsgw.core.records import record
from smsgw.observability.logs import get_logger
from smsgw.store import Store, StoreUnavailable

log = get_logger("smsgw.transport.idempotency")
LIFETIME_SECONDS = 24 * 3600
LEASE_SECONDS = 60
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.02


@record
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class KeyReused(Exception):
    """The key was used with another request: 422."""


class InProgress(Exception):
    """A request with the key is still being answered: 409."""


Work = Callable[[], Awaitable[Answer]]


class Idempotency:
    def __init__(self, store: Store, hasher: Hasher, wait_seconds: float = WAIT_SECONDS,
                 lease_seconds: int = LEASE_SECONDS) -> None:
        self._store = store
        self._hasher = hasher
        self._wait = wait_seconds
        self._lease = lease_seconds

    async def answer(self, key: str, route: str, body: dict[str, Any], work: Work) -> Answer:
        """The answer to this request: the one kept for the key, or `work`'s (once)."""
        # any text: a header's undecodable bytes arrive as surrogates
        key_digest = self._hasher.digest("idempotency-key",
                                         key.encode("utf-8", "surrogatepass").hex())
        fingerprint = self._hasher.digest("idempotency-request", route, _canonical(body))
        owner = secrets.token_hex(8)
        kept = await self._reserve(key_digest, fingerprint, owner)
        if kept is not None:
            return kept
        try:
            answer = await work()
        except BaseException:
            with contextlib.suppress(StoreUnavailable):
                await self._store.finish_idempotency_key(key_digest, owner, "", 0)
            raise
        await self._finish(key_digest, owner, answer)
        return answer

    async def _reserve(self, key_digest: str, fingerprint: str, owner: str) -> Answer | None:
        """None once this request holds the key; the kept answer if it is done."""
        deadline = time.monotonic() + self._wait
        while True:
            state, kept = await self._store.reserve_idempotency_key(
                key_digest, fingerprint, owner, self._lease)
            if state == "reserved":
                return None
            if state == "mismatch":
                raise KeyReused
            if state == "done":
                stored = json.loads(kept)
                return Answer(int(stored["status"]), stored["body"],
                              {"Idempotent-Replayed": "true"})
            if time.monotonic() >= deadline:
                raise InProgress
            await asyncio.sleep(POLL_SECONDS)

    async def _finish(self, key_digest: str, owner: str, answer: Answer) -> None:
        kept = (json.dumps({"status": answer.status, "body": answer.body})
                if 200 <= answer.status < 300 else "")
        try:
            await self._store.finish_idempotency_key(key_digest, owner, kept, LIFETIME_SECONDS)
        except StoreUnavailable as exc:  # the work is done: its answer still goes out
            log.warning("idempotency key not finished: its lease will lapse", error=str(exc))


def _canonical(body: dict[str, Any]) -> str:
    """The same JSON object, however its keys are ordered or spaced."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
