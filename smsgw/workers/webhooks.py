"""The webhook delivery worker (interfaces.md, "Webhooks"): POSTs the events that
services/otp/events.py recorded in the store to `[otp] webhook_url`, signed.

Each pass: otp.expired for OTPs whose time is up (the sweep), then the requests whose
next event is due are taken (leased, so several gateways sharing the store share the
work), and each one's first queued event is POSTed: a 2xx answer within TIMEOUT_SECONDS
delivers it and makes the request's next event due at once (in order per request); any
other answer, or none, is retried after a growing gap (core/backoff.py: the first within
10 s), for RETRY_FOR_SECONDS (a day, at least an hour), then given up (logged, counted)
so the request's later events still go. Events stay in the store until delivered: a
restart loses none, and a receiver that was down gets its backlog when it is back.

It runs in its own task with its own HTTP session and at most BATCH deliveries at once:
a slow or dead receiver never slows the SMS path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import aiohttp

from smsgw.core.backoff import Backoff
from smsgw.observability import metrics
from smsgw.observability.logs import get_logger
from smsgw.services.otp.events import OtpEvents
from smsgw.store import Store, StoreUnavailable
from smsgw.store.webhooks import Head, WebhookStore

log = get_logger("smsgw.workers.webhooks")
TIMEOUT_SECONDS = 5.0
FIRST_RETRY_SECONDS = 5.0  # then 10, 20, ... up to MAX_GAP_SECONDS
MAX_GAP_SECONDS = 900.0
RETRY_FOR_SECONDS = 24 * 3600
POLL_SECONDS = 0.5
BATCH = 16
LEASE_SECONDS = 30.0  # longer than one attempt can take
SIGNATURE_HEADER = "X-Smsgw-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of the secret over "<t>.<raw body>">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookWorker:
    def __init__(self, store: Store, events: OtpEvents, url: str, secret: str, *,
                 timeout: float = TIMEOUT_SECONDS, first_retry: float = FIRST_RETRY_SECONDS,
                 max_gap: float = MAX_GAP_SECONDS, retry_for: float = RETRY_FOR_SECONDS,
                 poll: float = POLL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self._hooks = WebhookStore(store)
        self._events = events
        self._url, self._secret = url, secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._first_retry, self._max_gap, self._retry_for = first_retry, max_gap, retry_for
        self._poll = poll
        self._clock = clock
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while not self._stopping.is_set():
                try:
                    busy = await self.run_once(session)
                except StoreUnavailable as exc:
                    log.warning("webhooks: store unavailable", error=str(exc))
                    busy = 0
                if not busy:
                    await self._pause()

    def stop(self) -> None:
        self._stopping.set()

    async def run_once(self, session: aiohttp.ClientSession) -> int:
        """One pass: the expiry sweep, then one attempt per due request; how many."""
        await self._events.expire_due()
        due = await self._hooks.take(self._clock(), BATCH, LEASE_SECONDS)
        await asyncio.gather(*(self._deliver(session, request_id) for request_id in due))
        return len(due)

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._poll)

    async def _deliver(self, session: aiohttp.ClientSession, request_id: str) -> None:
        head = await self._hooks.head(request_id)
        began = self._clock()
        if head.raw is None:  # nothing left: forget the request
            await self._hooks.done(request_id, "", began)
            return
        event_id = str(json.loads(head.raw)["id"])
        if await self._post(session, head.raw.encode()):
            metrics.WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
            await self._hooks.done(request_id, event_id, began)
        elif began - (head.first_attempt or began) >= self._retry_for:
            metrics.WEBHOOK_DELIVERIES.labels(outcome="given_up").inc()
            log.error("webhook event given up", event_id=event_id, attempts=head.attempts + 1)
            await self._hooks.done(request_id, event_id, began)
        else:
            metrics.WEBHOOK_DELIVERIES.labels(outcome="retried").inc()
            await self._hooks.retry(request_id, event_id, began + self.gap(head), began)

    def gap(self, head: Head) -> float:
        """The wait after the (attempts + 1)th failed attempt of an event."""
        backoff = Backoff(self._first_retry, self._max_gap, jitter=0.2)
        delay = backoff.next_delay()
        for _ in range(head.attempts):
            delay = backoff.next_delay()
        return delay

    async def _post(self, session: aiohttp.ClientSession, body: bytes) -> bool:
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: signature(self._secret, int(time.time()), body)}
        try:
            async with session.post(self._url, data=body, headers=headers,
                                    timeout=self._timeout, allow_redirects=False) as answer:
                return 200 <= answer.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("webhook receiver did not answer", error=type(exc).__name__)
            return False
